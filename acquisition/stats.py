"""Funnel numbers by source, medium, campaign, content, placement, channel, messenger, link or
day (read-only): clicks, starts, opt-ins, opt-outs and conversion.

Counting rules:
- clicks are human clicks; bots and previews are reported apart;
- starts are touches (every start counts, each under its own click's attribution);
- opt-ins and opt-outs count people: one per subscriber (a subscriber is one person in one
  channel) per period, at their first such event in it, attributed to that event's first touch
  (default) or last touch (`attribution=last`); an opt-in with no touch at all is "direct";
- conversion is opt-ins per click of the same row (0 when the row has no clicks);
- placement and link rows use the link's current placement, for clicks and opt-ins alike;
  channel, messenger and day rows use where and when the event itself happened.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, case, func, select
from sqlalchemy.orm import Session, aliased

from acquisition import fields

# One vocabulary of groupings for the API, the CLI and the dashboard.
from acquisition.dashboard import GROUPS as GROUPS
from acquisition.models import Channel, Click, ConsentEvent, Link, Placement, Start

UTM = ("source", "medium", "campaign", "content", "term")
ATTRIBUTIONS = ("first", "last")


@dataclass(frozen=True)
class StatsQuery:
    group_by: str
    since: datetime | None
    until: datetime | None
    campaign: str | None
    attribution: str = "first"


def parse(params: Mapping[str, str]) -> StatsQuery:
    problems = fields.Problems()
    group = params.get("group_by", "source")
    if group not in GROUPS:
        problems.add("group_by", f"must be one of: {', '.join(GROUPS)}")
    since = problems.take(fields.timestamp, params, "from")
    until = problems.take(fields.timestamp, params, "to")
    campaign = problems.take(fields.text, params, "campaign", max_length=100)
    attribution = problems.take(fields.choice, params, "attribution", ATTRIBUTIONS, default="first")
    problems.check()
    return StatsQuery(group, since, until, campaign, attribution or "first")


def _day(session: Session, column: Any) -> ColumnElement[Any]:
    if session.get_bind().dialect.name == "sqlite":
        return func.date(column)
    return func.to_char(func.timezone("UTC", column), "YYYY-MM-DD")


def _click_counts(session: Session, query: StatsQuery) -> dict[Any, dict[str, int]]:
    group = query.group_by
    if group in UTM:
        key: ColumnElement[Any] = getattr(Click, group)
    elif group == "placement":
        key = Placement.name.expression
    elif group in ("channel", "messenger"):
        key = (Channel.name if group == "channel" else Channel.messenger).expression
    elif group == "link":
        key = Link.code.expression
    else:
        key = _day(session, Click.at)
    key = key.label("key")
    humans = func.sum(case((Click.visitor == "human", 1), else_=0))
    bots = func.sum(case((Click.visitor != "human", 1), else_=0))
    previews = func.sum(case((Click.visitor == "preview", 1), else_=0))
    stmt = select(key, humans, bots, previews).select_from(Click)
    if group in ("placement", "link") or query.campaign is not None:
        stmt = stmt.join(Link, Link.id == Click.link_id)
    if group == "placement":
        stmt = stmt.outerjoin(Placement, Placement.id == Link.placement_id)
    if group in ("channel", "messenger"):
        stmt = stmt.outerjoin(Channel, Channel.id == Click.channel_id)
    if query.since is not None:
        stmt = stmt.where(Click.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Click.at < query.until)
    if query.campaign is not None:
        stmt = stmt.where(Link.campaign == query.campaign)
    return {
        row[0]: {
            "clicks": int(row[1] or 0),
            "bot_visits": int(row[2] or 0),
            "previews": int(row[3] or 0),
        }
        for row in session.execute(stmt.group_by(key))
    }


def _by_touch(
    session: Session,
    query: StatsQuery,
    stmt: Select[Any],
    touch: Any,
    channel_id: Any,
    at: Any,
    counted: ColumnElement[Any],
) -> dict[Any, int]:
    """Group `stmt` (which selects from something joined to `touch`, a Start or its alias) by
    the query's key and count `counted`."""
    group = query.group_by
    if group == "source":
        # No touch at all (an opt-in without any start) is direct, like a start without a ref.
        key: ColumnElement[Any] = case((touch.id.is_(None), "direct"), else_=touch.source)
    elif group in UTM:
        key = getattr(touch, group)
    elif group == "placement":
        key = Placement.name.expression
    elif group in ("channel", "messenger"):
        key = (Channel.name if group == "channel" else Channel.messenger).expression
    elif group == "link":
        key = Link.code.expression
    else:
        key = _day(session, at)
    key = key.label("key")
    stmt = stmt.add_columns(key, func.count(counted))
    if group in ("placement", "link") or query.campaign is not None:
        stmt = stmt.outerjoin(Link, Link.id == touch.link_id)
    if group == "placement":
        stmt = stmt.outerjoin(Placement, Placement.id == Link.placement_id)
    if group in ("channel", "messenger"):
        stmt = stmt.outerjoin(Channel, Channel.id == channel_id)
    if query.campaign is not None:
        stmt = stmt.where(Link.campaign == query.campaign)
    return {row[0]: int(row[1] or 0) for row in session.execute(stmt.group_by(key))}


def _start_counts(session: Session, query: StatsQuery) -> dict[Any, int]:
    stmt = select().select_from(Start)
    if query.since is not None:
        stmt = stmt.where(Start.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Start.at < query.until)
    return _by_touch(session, query, stmt, Start, Start.channel_id, Start.at, Start.id.expression)


def _people(session: Session, query: StatsQuery, kind: str) -> dict[Any, int]:
    """Each subscriber once: their first `kind` event in the period, by its touch."""
    pointer = (
        ConsentEvent.first_start_id if query.attribution == "first" else ConsentEvent.last_start_id
    )
    ranked = select(
        ConsentEvent.id,
        ConsentEvent.channel_id,
        ConsentEvent.at,
        pointer.label("start_id"),
        func.row_number()
        .over(partition_by=ConsentEvent.subscriber_id, order_by=(ConsentEvent.at, ConsentEvent.id))
        .label("n"),
    ).where(ConsentEvent.kind == kind)
    if query.since is not None:
        ranked = ranked.where(ConsentEvent.at >= query.since)
    if query.until is not None:
        ranked = ranked.where(ConsentEvent.at < query.until)
    people = ranked.subquery()
    touch = aliased(Start)
    stmt = (
        select()
        .select_from(people)
        .outerjoin(touch, touch.id == people.c.start_id)
        .where(people.c.n == 1)
    )
    return _by_touch(session, query, stmt, touch, people.c.channel_id, people.c.at, people.c.id)


def funnel(session: Session, query: StatsQuery) -> list[dict[str, Any]]:
    """One row per key: clicks, bot_visits, previews, starts, optins, optouts, conversion."""
    clicks = _click_counts(session, query)
    starts = _start_counts(session, query)
    optins = _people(session, query, "opt_in")
    optouts = _people(session, query, "opt_out")
    rows = []
    for key in {*clicks, *starts, *optins, *optouts}:
        row: dict[str, Any] = {query.group_by: key}
        row.update(clicks.get(key, {"clicks": 0, "bot_visits": 0, "previews": 0}))
        row["starts"] = starts.get(key, 0)
        row["optins"] = optins.get(key, 0)
        row["optouts"] = optouts.get(key, 0)
        row["conversion"] = round(row["optins"] / row["clicks"], 4) if row["clicks"] else 0.0
        rows.append(row)
    rows.sort(key=lambda r: (-r["clicks"], -r["optins"], -r["starts"], str(r[query.group_by])))
    return rows


# The CLI's name for the funnel (it used to report clicks alone).
clicks = funnel
