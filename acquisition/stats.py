"""Funnel numbers by source, medium, campaign, placement, channel, link or day (read-only)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from acquisition import fields
from acquisition.errors import Invalid
from acquisition.models import Channel, Click, Link, Placement

GROUPS = ("source", "medium", "campaign", "content", "placement", "channel", "link", "day")


@dataclass(frozen=True)
class StatsQuery:
    group_by: str
    since: datetime | None
    until: datetime | None
    campaign: str | None


def parse(params: Mapping[str, str]) -> StatsQuery:
    problems = fields.Problems()
    group = params.get("group_by", "source")
    if group not in GROUPS:
        problems.add("group_by", f"must be one of: {', '.join(GROUPS)}")
    since = problems.take(fields.timestamp, params, "from")
    until = problems.take(fields.timestamp, params, "to")
    campaign = problems.take(fields.text, params, "campaign", max_length=100)
    problems.check()
    return StatsQuery(group, since, until, campaign)


def _key(session: Session, group: str) -> ColumnElement[Any]:
    if group in ("source", "medium", "campaign", "content"):
        return getattr(Click, group)
    if group == "placement":
        return Placement.name
    if group == "channel":
        return Channel.name
    if group == "link":
        return Link.code
    if session.get_bind().dialect.name == "sqlite":
        return func.date(Click.at)
    return func.to_char(func.timezone("UTC", Click.at), "YYYY-MM-DD")


def clicks(session: Session, query: StatsQuery) -> list[dict[str, Any]]:
    key = _key(session, query.group_by).label("key")
    humans = func.sum(case((Click.visitor == "human", 1), else_=0))
    bots = func.sum(case((Click.visitor != "human", 1), else_=0))
    previews = func.sum(case((Click.visitor == "preview", 1), else_=0))
    stmt = select(key, humans, bots, previews).select_from(Click)
    if query.group_by in ("placement", "link") or query.campaign is not None:
        stmt = stmt.join(Link, Link.id == Click.link_id)
    if query.group_by == "placement":
        stmt = stmt.outerjoin(Placement, Placement.id == Link.placement_id)
    if query.group_by == "channel":
        stmt = stmt.outerjoin(Channel, Channel.id == Click.channel_id)
    if query.since is not None:
        stmt = stmt.where(Click.at >= query.since)
    if query.until is not None:
        stmt = stmt.where(Click.at < query.until)
    if query.campaign is not None:
        stmt = stmt.where(Link.campaign == query.campaign)
    stmt = stmt.group_by(key).order_by(humans.desc(), key)
    return [
        {query.group_by: row[0], "clicks": int(row[1] or 0), "bot_visits": int(row[2] or 0),
         "previews": int(row[3] or 0)}
        for row in session.execute(stmt)
    ]


