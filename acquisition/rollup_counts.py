"""What each counter of the daily rollup counts: the INSERT … SELECT … GROUP BY that
recomputes days of `daily_stats` from the base tables (acquisition/rollups.py decides which
days, when, and under which lock).

- clicks, preview fetches and bots: `clicks` rows by their own link, channel and UTM values;
- starts: every start, under its own attribution (the click it came through; else "direct");
- impressions: widget beacons (see count_impressions);
- opt-ins and opt-outs: person-days, a subscriber's first event of the kind in a UTC day,
  under the event's first touch and its last, with the day of the person's previous event of
  the kind (so a period counts each person once) and, for opt-ins, whether they were still
  subscribed 7 and 30 days later, once that long has passed.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Date,
    Integer,
    Interval,
    Select,
    String,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    true,
    type_coerce,
    union_all,
    update,
)
from sqlalchemy.orm import Session, aliased
from sqlalchemy.sql.elements import BindParameter

from acquisition.models import Base, Click, ConsentEvent, DailyStat, Start, WeeklyStat
from acquisition.models.rollups import NEVER

KEY = (
    "day",
    "link_id",
    "placement_id",
    "channel_id",
    "source",
    "medium",
    "campaign",
    "content",
    "previous_day",
)
PERSON_COUNTERS = (
    "optins",
    "optouts",
    "matured_7d",
    "retained_7d",
    "matured_30d",
    "retained_30d",
)
# People counters, once under the first touch and once under the last.
PEOPLE = tuple(f"{name}_{touch}" for name in PERSON_COUNTERS for touch in ("first", "last"))
COUNTERS = ("impressions", "clicks", "previews", "bots", "starts", *PEOPLE)
UTM = ("source", "medium", "campaign", "content")
_BASE = [(kind, touch) for kind in ("optins", "optouts") for touch in ("first", "last")]
RETENTION_DAYS = (7, 30)

_impressions: Select[Any] | None = None


def count_impressions(query: Select[Any] | None) -> None:
    """Say where widget impressions come from (None: back to the default).

    `query` selects one row per impression, or per counter, with columns labelled `at` (UTC;
    an hour is fine) and optionally `count` (impressions the row stands for, else 1),
    `link_id`, `placement_id`, `channel_id`, `source`, `medium`, `campaign`, `content`. Without
    a call, the `widget_events` table is read when the models define it.
    """
    global _impressions
    _impressions = query


def recompute(session: Session, days: set[date], people: bool, now: datetime) -> None:
    """Replace the rows of `days`, or only their people counters when `people` (which spares
    scanning the days' clicks again)."""
    for lo, hi in ranges(days):
        in_days = (DailyStat.day >= lo, DailyStat.day < hi)
        start, end = midnight(lo), midnight(hi)
        parts = _people_parts(session, start, end, now)
        if people:
            # Only rows that count people (retention implies an opt-in); click rows stay put.
            counted = or_(*[getattr(DailyStat, f"{kind}_{touch}") != 0 for kind, touch in _BASE])
            session.execute(
                update(DailyStat).where(*in_days, counted).values(dict.fromkeys(PEOPLE, 0))
            )
        else:
            session.execute(delete(DailyStat).where(*in_days))
            parts = [*_event_parts(session, start, end), *parts]
        rows = union_all(*parts).subquery()
        keys = [rows.c[name] for name in KEY]
        totals = select(*keys, *[func.sum(rows.c[name]) for name in COUNTERS]).group_by(*keys)
        if not people:
            session.execute(insert(DailyStat).from_select([*KEY, *COUNTERS], totals))
            continue
        # SQLite needs a WHERE in an INSERT … SELECT … ON CONFLICT (a parsing ambiguity).
        upsert = insert_for(session)(DailyStat).from_select([*KEY, *COUNTERS], totals.where(true()))
        upsert = upsert.on_conflict_do_update(
            index_elements=list(KEY), set_={name: upsert.excluded[name] for name in PEOPLE}
        )
        session.execute(upsert)
        empty = [getattr(DailyStat, name) == 0 for name in COUNTERS]
        session.execute(delete(DailyStat).where(*in_days, *empty))


def recompute_weeks(session: Session, days: Iterable[date]) -> None:
    """Replace the weekly rows of the weeks these days fall in, from their daily rows."""
    key = [getattr(DailyStat, name) for name in KEY[1:]]
    sums = [func.sum(getattr(DailyStat, name)) for name in COUNTERS]
    for week in sorted({monday(day) for day in days}):
        session.execute(delete(WeeklyStat).where(WeeklyStat.day == week))
        totals = (
            select(literal(week, Date), *key, *sums)
            .where(DailyStat.day >= week, DailyStat.day < week + timedelta(days=7))
            .group_by(*key)
        )
        session.execute(insert(WeeklyStat).from_select([*KEY, *COUNTERS], totals))


def _event_parts(session: Session, start: datetime, end: datetime) -> list[Select[Any]]:
    """Clicks (humans, previews, bots), starts and impressions, grouped per day and key."""
    human = func.sum(case((Click.visitor == "human", 1), else_=0))
    preview = func.sum(case((Click.visitor == "preview", 1), else_=0))
    bot = func.sum(case((Click.visitor == "bot", 1), else_=0))
    clicks = _part(
        session,
        Click.at,
        {"link_id": Click.link_id, "channel_id": Click.channel_id}
        | {name: getattr(Click, name) for name in UTM},
        {"clicks": human, "previews": preview, "bots": bot},
    ).where(Click.at >= start, Click.at < end)
    starts = _part(
        session,
        Start.at,
        {"link_id": Start.link_id, "channel_id": Start.channel_id}
        | {name: getattr(Start, name) for name in UTM},
        {"starts": func.count()},
    ).where(Start.at >= start, Start.at < end)
    parts = [clicks, starts]
    query = impression_query()
    if query is not None:
        rows = query.subquery()
        names = ("link_id", "placement_id", "channel_id", *UTM)
        named = {name: rows.c[name] for name in names if name in rows.c}
        count = rows.c["count"] if "count" in rows.c else literal_column("1", Integer)
        impressions = _part(session, rows.c.at, named, {"impressions": func.sum(count)}).where(
            rows.c.at >= start, rows.c.at < end
        )
        parts.append(impressions)
    return parts


def _people_parts(session: Session, start: datetime, end: datetime, now: datetime) -> list[Any]:
    """Opt-ins and opt-outs as person-days (a subscriber's first event of a kind in a day), each
    under its first touch and under its last, with the day of the person's previous event of
    that kind and, for opt-ins, whether they were still subscribed 7 and 30 days later."""
    event = ConsentEvent
    day = day_of(session, event.at)
    ranked = (
        select(
            event.id,
            event.subscriber_id,
            event.channel_id,
            event.kind,
            event.at,
            event.first_start_id,
            event.last_start_id,
            func.row_number()
            .over(
                partition_by=(event.subscriber_id, event.kind, day), order_by=(event.at, event.id)
            )
            .label("n"),
        )
        .where(event.at >= start, event.at < end)
        .subquery()
    )
    earlier = aliased(ConsentEvent)
    previous = (
        select(func.max(earlier.at))
        .where(
            earlier.subscriber_id == ranked.c.subscriber_id,
            earlier.kind == ranked.c.kind,
            earlier.at < ranked.c.at,
        )
        .scalar_subquery()
    )
    opt_in = ranked.c.kind == "opt_in"
    columns: list[Any] = [
        ranked.c.channel_id,
        ranked.c.first_start_id,
        ranked.c.last_start_id,
        day_of(session, ranked.c.at).label("day"),
        func.coalesce(day_of(session, previous), literal(NEVER, Date)).label("previous_day"),
        case((opt_in, 1), else_=0).label("optins"),
        case((opt_in, 0), else_=1).label("optouts"),
    ]
    # A day's opt-ins and opt-outs are few next to its clicks: the correlated look-ups below
    # (the previous event, the status 7 and 30 days on) run through (subscriber_id, at).
    for n in RETENTION_DAYS:
        old_enough = and_(opt_in, ranked.c.at <= literal(now - timedelta(days=n), event.at.type))
        kept = _kind_at(session, ranked.c.subscriber_id, _plus_days(session, ranked.c.at, n))
        columns.append(case((old_enough, 1), else_=0).label(f"matured_{n}d"))
        columns.append(
            case((and_(old_enough, kept == "opt_in"), 1), else_=0).label(f"retained_{n}d")
        )
    persons = select(*columns).where(ranked.c.n == 1).cte("persons")
    parts = []
    for touch_name, pointer in (
        ("first", persons.c.first_start_id),
        ("last", persons.c.last_start_id),
    ):
        touch = aliased(Start)
        source = case((touch.id.is_(None), "direct"), else_=func.coalesce(touch.source, ""))
        key = {
            "day": persons.c.day,
            "link_id": func.coalesce(touch.link_id, 0),
            "placement_id": literal_column("0", Integer),
            "channel_id": persons.c.channel_id,
            "source": source,
            **{name: func.coalesce(getattr(touch, name), "") for name in UTM[1:]},
            "previous_day": persons.c.previous_day,
        }
        counted = {f"{name}_{touch_name}": func.sum(persons.c[name]) for name in PERSON_COUNTERS}
        parts.append(
            select(*_columns(key, counted))
            .select_from(persons)
            .outerjoin(touch, touch.id == pointer)
            .group_by(*_grouped(key))
        )
    return parts


def _part(session: Session, at: Any, dims: dict[str, Any], counted: dict[str, Any]) -> Select[Any]:
    """One event source, grouped by day and key; absent ids are 0 and absent text is ''."""
    key: dict[str, Any] = {"day": day_of(session, at)}
    for name in ("link_id", "placement_id", "channel_id"):
        key[name] = func.coalesce(dims[name], 0) if name in dims else literal_column("0", Integer)
    for name in UTM:
        key[name] = func.coalesce(dims[name], "") if name in dims else literal_column("''", String)
    key["previous_day"] = literal(NEVER, Date)
    return select(*_columns(key, counted)).group_by(*_grouped(key))


def _grouped(key: dict[str, Any]) -> list[Any]:
    # Constants stay out of GROUP BY: both engines read a bare integer there as a position.
    return [
        value
        for value in key.values()
        if not isinstance(value, BindParameter) and not getattr(value, "is_literal", False)
    ]


def _columns(key: dict[str, Any], counted: dict[str, Any]) -> list[Any]:
    values = [key[name].label(name) for name in KEY]
    for name in COUNTERS:
        values.append(counted.get(name, literal_column("0", Integer)).label(name))
    return values


def _kind_at(session: Session, subscriber_id: Any, at: Any) -> Any:
    """The kind of the person's consent event in force at `at` (as optins.latest orders them)."""
    event = aliased(ConsentEvent)
    return (
        select(event.kind)
        .where(event.subscriber_id == subscriber_id, event.at <= at)
        .order_by(event.at.desc(), event.received_at.desc(), event.id.desc())
        .limit(1)
        .scalar_subquery()
    )


# dialects and days -------------------------------------------------------------------------------


def day_of(session: Session, at: Any) -> ColumnElement[Any]:
    """The UTC calendar day of a timestamp."""
    if session.get_bind().dialect.name == "postgresql":
        return cast(func.timezone("UTC", at), Date)
    return type_coerce(func.date(at), Date)


def _plus_days(session: Session, at: Any, days: int) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "postgresql":
        # Hours, not days: a day of the session's time zone may be 23 or 25 hours long.
        shifted: ColumnElement[Any] = at + literal_column(
            f"interval '{int(days) * 24} hours'", Interval
        )
        return shifted
    # SQLite keeps 'YYYY-MM-DD HH:MM:SS.ffffff': shift the date and time, keep the microseconds
    # (strftime's %f has only three digits, and these strings are compared as text).
    moved = func.strftime("%Y-%m-%d %H:%M:%S", at, f"+{int(days)} days")
    return type_coerce(moved.op("||")(func.substr(at, 20)), ConsentEvent.at.type)


def insert_for(session: Session) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (both have it, with the same API)."""
    from sqlalchemy.dialects import postgresql, sqlite

    return postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert


def impression_query() -> Select[Any] | None:
    if _impressions is not None:
        return _impressions
    events, widgets = Base.metadata.tables.get("widget_events"), Base.metadata.tables.get("widgets")
    if events is None or not {"hour", "kind", "count"} <= set(events.c.keys()):
        return None
    columns = [events.c.hour.label("at"), events.c["count"].label("count")]
    columns += [events.c[name].label(name) for name in UTM if name in events.c]
    query = select(*columns).where(events.c.kind == "impression")
    if widgets is not None and "widget_id" in events.c and "placement_id" in widgets.c:
        query = query.add_columns(widgets.c.placement_id.label("placement_id")).join_from(
            events, widgets, widgets.c.id == events.c.widget_id
        )
    return query


def monday(day: date) -> date:
    return day - timedelta(days=day.weekday())


def midnight(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def ranges(days: Iterable[date]) -> list[tuple[date, date]]:
    """Runs of consecutive days as [first, last + 1) pairs."""
    runs: list[tuple[date, date]] = []
    for day in sorted(set(days)):
        if runs and runs[-1][1] == day:
            runs[-1] = (runs[-1][0], day + timedelta(days=1))
        else:
            runs.append((day, day + timedelta(days=1)))
    return runs
