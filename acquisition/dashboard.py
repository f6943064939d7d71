"""What the marketer's dashboard shows (read-only): the funnel of a period, a series per day, a
breakdown by one key, and a comparison with the previous period.

Every number comes from the rollup (`weekly_stats` for a period's whole weeks, `daily_stats` for
the days around them; see acquisition/rollups.py) plus the small link, placement and channel
tables, never from raw clicks, so it stays fast with millions of clicks. The counting rules are
those of acquisition/stats.py:

- clicks are human clicks; preview fetches and other bots are counted apart;
- starts are touches, each under its own click's attribution;
- opt-ins and opt-outs count people, once per channel in a period, at their first such event in
  it, under that event's first touch (default) or last touch; no touch at all is "direct";
- placement rows use the link's current placement; channel and day are where and when the
  event itself happened; a campaign or source filter matches the row's own UTM values;
- still subscribed after 7 (30) days counts the period's opt-ins that were at least 7 (30)
  days old at the last refresh and whose consent was still in force 7 (30) days after the
  opt-in; `matured_7d` (`matured_30d`) says how many opt-ins were old enough to be judged;
- cost is the sum of the costs of the placements active in the filter (with any visit, start,
  impression, opt-in or opt-out in it), each counted once, whatever the period's length (a
  placement's cost is what it cost in all); cost per subscriber divides it by the opt-ins.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, case, func, literal_column, or_, select
from sqlalchemy.orm import Session

from acquisition import messengers
from acquisition.errors import Invalid
from acquisition.models import Channel, DailyStat, Link, Placement, WeeklyStat

GROUPS = (
    "source",
    "medium",
    "campaign",
    "content",
    "placement",
    "channel",
    "messenger",
    "link",
    "day",
)
EVENTS = ("impressions", "clicks", "previews", "bots", "starts")
FUNNEL = (*EVENTS, "optins", "optouts")
NUMBERS = (*FUNNEL, "retained_7d", "retained_30d", "matured_7d", "matured_30d")
CENT = Decimal("0.01")
NOT_SET = "(not set)"
_COLUMNS = {  # the rollup column a group reads
    "source": "source",
    "medium": "medium",
    "campaign": "campaign",
    "content": "content",
    "channel": "channel_id",
    "messenger": "channel_id",
    "link": "link_id",
    "day": "day",
}


@dataclass(frozen=True)
class Filters:
    since: date  # inclusive, UTC day
    until: date  # exclusive
    campaign: str | None = None
    source: str | None = None
    channel_id: int | None = None
    placement_id: int | None = None
    attribution: Literal["first", "last"] = "first"


@dataclass(frozen=True)
class Funnel:
    impressions: int
    clicks: int
    previews: int
    bots: int
    starts: int
    optins: int
    optouts: int
    still_subscribed_7d: int
    still_subscribed_30d: int
    cost: Decimal | None
    matured_7d: int = 0  # of the opt-ins, how many were at least 7 days old (judged at all)
    matured_30d: int = 0

    @property
    def conversion(self) -> float:
        return self.optins / self.clicks if self.clicks else 0.0

    @property
    def cost_per_subscriber(self) -> Decimal | None:
        return _per(self.cost, self.optins)


@dataclass(frozen=True)
class Row:
    key: str | int | None
    label: str
    impressions: int
    clicks: int
    previews: int
    bots: int
    starts: int
    optins: int
    optouts: int
    conversion: float
    cost: Decimal | None
    cost_per_subscriber: Decimal | None
    still_subscribed_7d: int = 0
    still_subscribed_30d: int = 0
    matured_7d: int = 0
    matured_30d: int = 0


@dataclass(frozen=True)
class Point:
    day: date
    impressions: int
    clicks: int
    starts: int
    optins: int
    optouts: int


def funnel(session: Session, filters: Filters) -> Funnel:
    """The period's totals."""
    _check(filters)
    return _funnels(session, [filters])[0]


def series(session: Session, filters: Filters) -> list[Point]:
    """One point per day in [since, until), days without activity included as zeros. People
    count on the day of their first event in the period, so the points add up to the funnel."""
    _check(filters)
    found = _grouped(session, [filters], "day")
    points = []
    day = filters.since
    while day < filters.until:
        counts = found.get((0, day), _empty())[0]
        names = ("impressions", "clicks", "starts", "optins", "optouts")
        points.append(Point(day, **{name: counts[name] for name in names}))
        day += timedelta(days=1)
    return points


def breakdown(session: Session, filters: Filters, group_by: str, limit: int = 200) -> list[Row]:
    """One row per value of `group_by`, most opt-ins first, then most clicks."""
    _check(filters)
    if group_by not in GROUPS:
        raise Invalid(f"must be one of: {', '.join(GROUPS)}", field="group_by")
    found = {
        value: numbers for (_, value), numbers in _grouped(session, [filters], group_by).items()
    }
    labels = _labels(session, group_by, list(found))
    costs = _costs(session, set().union(*(placements for _, placements in found.values())))
    rows = []
    for value, (counts, placements) in found.items():
        cost = _sum_costs(costs, placements) if group_by != "day" else None
        optins, clicks = counts["optins"], counts["clicks"]
        rows.append(
            Row(
                key=_public_key(group_by, value),
                label=labels.get(value, NOT_SET),
                **{name: counts[name] for name in FUNNEL},
                conversion=round(optins / clicks, 4) if clicks else 0.0,
                cost=cost,
                cost_per_subscriber=_per(cost, optins),
                still_subscribed_7d=counts["retained_7d"],
                still_subscribed_30d=counts["retained_30d"],
                matured_7d=counts["matured_7d"],
                matured_30d=counts["matured_30d"],
            )
        )
    rows.sort(key=lambda row: (-row.optins, -row.clicks, row.label))
    return rows[:limit]


def compare(session: Session, filters: Filters) -> tuple[Funnel, Funnel]:
    """This period's funnel and the one of the period of the same length just before it."""
    _check(filters)
    length = filters.until - filters.since
    previous = replace(filters, since=filters.since - length, until=filters.since)
    this, before = _funnels(session, [filters, previous])  # both in one scan
    return this, before


# one pass over the rollup ------------------------------------------------------------------


Counts = dict[str, int]


def _check(filters: Filters) -> None:
    if filters.until <= filters.since:
        raise Invalid("must be after the first day", field="until")
    if filters.attribution not in ("first", "last"):
        raise Invalid("must be 'first' or 'last'", field="attribution")


def _empty() -> tuple[Counts, set[int]]:
    return dict.fromkeys(NUMBERS, 0), set()


def _funnels(session: Session, periods: list[Filters]) -> list[Funnel]:
    found = _grouped(session, periods, None)
    costs = _costs(session, set().union(*(placements for _, placements in found.values())))
    funnels = []
    for index in range(len(periods)):
        counts, placements = found.get((index, None), _empty())
        funnels.append(
            Funnel(
                **{name: counts[name] for name in FUNNEL},
                still_subscribed_7d=counts["retained_7d"],
                still_subscribed_30d=counts["retained_30d"],
                cost=_sum_costs(costs, placements),
                matured_7d=counts["matured_7d"],
                matured_30d=counts["matured_30d"],
            )
        )
    return funnels


def _grouped(
    session: Session, periods: list[Filters], group_by: str | None
) -> dict[tuple[int, Any], tuple[Counts, set[int]]]:
    """Each period's numbers per value of `group_by` (one group, None, when it is None), with
    the placements active in each group, keyed by (period index, value). The periods differ
    only in their days.

    A scan of the rollup per table (whole weeks from `weekly_stats`, the days around them from
    `daily_stats`), grouped by the key's column and by link, with no join: a link's placement
    (and a channel's messenger) is looked up afterwards among the few links and channels
    found, which keeps each scan as cheap as the rows it reads.
    """
    costed = group_by != "day"
    carrying = _carrying(session, periods[0].placement_id)
    found: list[tuple[Any, ...]] = []
    by_day = group_by == "day"
    for table in (DailyStat,) if by_day else (DailyStat, WeeklyStat):
        spans = [
            [(period.since, period.until)] if by_day else _spans(period, table is WeeklyStat)
            for period in periods
        ]
        if not any(spans):
            continue
        column = None if group_by in (None, "placement") else getattr(table, _COLUMNS[group_by])
        zero: ColumnElement[Any] = literal_column("0")  # for what the group leaves out
        # Every row comes back as (value, link, own placement, period, numbers...).
        groups = {
            "value": column,
            "link": table.link_id if costed else None,
            "own": table.placement_id if costed else None,
            "period": case(
                *[(table.day >= p.since, n) for n, p in enumerate(periods[:-1])],
                else_=len(periods) - 1,
            )
            if len(periods) > 1
            else None,
        }
        grouped = [g for g in groups.values() if g is not None]
        shown = [(zero if g is None else g).label(name) for name, g in groups.items()]
        query = select(*shown, *_sums(table, periods[0])).where(
            *_conditions(table, periods, spans, carrying)
        )
        found += session.execute(query.group_by(*grouped) if grouped else query).all()
    links = _link_placements(session, {row[1] for row in found}) if costed else {}
    messengers = _channel_messengers(session) if group_by == "messenger" else {}
    result: dict[tuple[int, Any], tuple[Counts, set[int]]] = {}
    for value, link, own, period, *raw in found:
        numbers = [int(number or 0) for number in raw]
        if not any(numbers[: len(FUNNEL)]):
            continue  # only people counted under the other attribution
        placement = (links.get(link) if link else own or None) if costed else None
        if group_by is None:
            value = None
        elif group_by == "placement":
            value = placement
        elif group_by == "messenger":
            value = messengers.get(value)
        counts, placements = result.setdefault((period, value), _empty())
        for name, number in zip(NUMBERS, numbers, strict=True):
            counts[name] += number
        if placement is not None:
            placements.add(placement)
    return result


def _spans(period: Filters, weekly: bool) -> list[tuple[date, date]]:
    """The [first, last) day ranges of a period to read from one table: its whole weeks
    (Monday to Sunday) from the weekly one, the days before and after them from the daily."""
    first = period.since + timedelta(days=(7 - period.since.weekday()) % 7)
    weeks = max((period.until - first).days // 7, 0)
    last = first + timedelta(days=7 * weeks)
    if weekly:
        return [(first, last)] if weeks else []
    if not weeks:
        return [(period.since, period.until)]
    return [(a, b) for a, b in ((period.since, first), (last, period.until)) if a < b]


def _sums(table: Any, filters: Filters) -> list[ColumnElement[Any]]:
    """The period's counters, people ones under the filter's attribution."""
    sums: list[ColumnElement[Any]] = []
    for name in NUMBERS:
        stored = name if name in EVENTS else f"{name}_{filters.attribution}"
        sums.append(func.sum(getattr(table, stored)))
    return sums


def _carrying(session: Session, placement_id: int | None) -> list[int]:
    """The links a placement filter stands for (their rows carry no placement of their own)."""
    if placement_id is None:
        return []
    return list(session.scalars(select(Link.id).where(Link.placement_id == placement_id)))


def _conditions(
    table: Any,
    periods: list[Filters],
    spans: list[list[tuple[date, date]]],
    carrying: list[int],
) -> list[ColumnElement[bool]]:
    days = [
        and_(
            or_(*[and_(table.day >= a, table.day < b) for a, b in ranges]),
            # A person-day whose person already counted earlier in the period is left out.
            table.previous_day < period.since,
        )
        for period, ranges in zip(periods, spans, strict=True)
        if ranges
    ]
    filters = periods[0]
    conditions = [days[0] if len(days) == 1 else or_(*days)]
    if filters.campaign is not None:
        conditions.append(table.campaign == filters.campaign)
    if filters.source is not None:
        conditions.append(table.source == filters.source)
    if filters.channel_id is not None:
        conditions.append(table.channel_id == filters.channel_id)
    if filters.placement_id is not None:
        conditions.append(
            or_(
                table.link_id.in_(carrying),
                and_(table.link_id == 0, table.placement_id == filters.placement_id),
            )
        )
    return conditions


def _link_placements(session: Session, ids: set[int]) -> dict[int, int | None]:
    ids.discard(0)
    if not ids:
        return {}
    found = session.execute(select(Link.id, Link.placement_id).where(Link.id.in_(ids)))
    return dict(found.all())


def _channel_messengers(session: Session) -> dict[int, str]:
    return dict(session.execute(select(Channel.id, Channel.messenger)).all())


def _public_key(group_by: str, value: Any) -> str | int | None:
    if group_by == "day":
        return value.isoformat() if isinstance(value, date) else str(value)
    if value in (None, "", 0):
        return None
    return value


def _labels(session: Session, group_by: str, values: list[Any]) -> dict[Any, str]:
    """Human labels: placement names, channel names with their messenger, link codes."""
    ids = [value for value in values if value not in (None, "", 0)]
    if group_by == "placement":
        found = session.execute(select(Placement.id, Placement.name).where(Placement.id.in_(ids)))
        return {key: name for key, name in found}
    if group_by == "channel":
        rows = session.execute(
            select(Channel.id, Channel.name, Channel.messenger).where(Channel.id.in_(ids))
        )
        return {key: f"{name} ({_messenger(messenger)})" for key, name, messenger in rows}
    if group_by == "messenger":
        return {value: _messenger(value) for value in ids}
    if group_by == "link":
        return dict(session.execute(select(Link.id, Link.code).where(Link.id.in_(ids))).all())
    if group_by == "day":
        return {value: _public_key("day", value) for value in values}  # type: ignore[misc]
    return {value: value for value in ids}


def _messenger(name: str) -> str:
    adapter = messengers.REGISTRY.get(name)
    return adapter.LABEL if adapter is not None else name


def _costs(session: Session, ids: set[int]) -> dict[int, Decimal | None]:
    if not ids:
        return {}
    rows = session.execute(select(Placement.id, Placement.cost).where(Placement.id.in_(ids)))
    return dict(rows.all())


def _sum_costs(costs: dict[int, Decimal | None], ids: set[int]) -> Decimal | None:
    known = [cost for i in ids if (cost := costs.get(i)) is not None]
    if not known:
        return None
    return sum(known, Decimal(0)).quantize(CENT)


def _per(cost: Decimal | None, optins: int) -> Decimal | None:
    if cost is None or not optins:
        return None
    return (cost / optins).quantize(CENT)
