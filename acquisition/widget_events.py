"""What the widget's beacon reports (impressions, desktop QR hand-offs, clicks): parse it, check
that it comes from a site allowed to embed the widget, count it in hourly counters; read the
counts back for the dashboard.

Counting rules: human visitors only (the edge drops bots and preview fetchers before calling
`record`); one impression per page view on which the widget appeared; a click here is the
script's report of a button press: the click that attributes an opt-in is the one the short
link records itself, which counts even when this beacon is blocked or lost.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import ColumnElement, case, func, select
from sqlalchemy.orm import Session

from acquisition import fields, messengers, origins
from acquisition.errors import Invalid
from acquisition.models import WidgetEvent

KINDS = ("impression", "qr", "click")
MAX_BYTES = 4096
MAX_VALUE = 2000  # the script crops every value to 300 characters; allow some slack
GROUPS = ("day", "source", "medium", "campaign", "path", "referrer", "messenger")
COLUMNS = (
    "widget_id",
    "hour",
    "kind",
    "messenger",
    "path",
    "source",
    "medium",
    "campaign",
    "referrer_host",
)


@dataclass(frozen=True)
class Beacon:
    kind: str
    messenger: str  # '' for impressions
    page: str  # the page URL as sent ('' when absent); only its origin and path are used
    path: str
    source: str
    medium: str
    campaign: str
    referrer_host: str


def parse(data: object) -> Beacon:
    """A beacon body (widgets/README.md §8). Unknown keys are ignored: newer scripts may send
    more than this server knows."""
    body = fields.obj(data)
    for key, value in body.items():
        if not isinstance(value, str) or len(value) > MAX_VALUE:
            raise Invalid(f"must be a string of at most {MAX_VALUE} characters", field=str(key))
    kind = body.get("t")
    if kind not in KINDS:
        raise Invalid(f"must be one of: {', '.join(KINDS)}", field="t")
    messenger = body.get("m") or ""
    if kind != "impression" and messenger not in messengers.NAMES:
        raise Invalid(f"must be one of: {', '.join(messengers.NAMES)}", field="m")
    if kind == "impression":
        messenger = ""
    page = body.get("page", "")
    parts = urlsplit(page) if page else None
    path = parts.path if parts and parts.scheme in ("http", "https") else ""
    return Beacon(
        kind=kind,
        messenger=messenger,
        page=page,
        path=_clean(path, 200),
        source=_clean(body.get("utm_source", ""), 100),
        medium=_clean(body.get("utm_medium", ""), 100),
        campaign=_clean(body.get("utm_campaign", ""), 100),
        referrer_host=_clean(_host(body.get("ref_url", "")), 100),
    )


def _host(url: str) -> str:
    try:
        return (urlsplit(url).hostname or "") if url else ""
    except ValueError:
        return ""


def _clean(value: str, limit: int) -> str:
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value[:limit].strip()


def allowed(allowed_origins: Collection[str], header: str | None, beacon: Beacon) -> bool:
    """Whether the beacon comes from a page on one of the widget's origins.

    Browsers send Origin with every POST, but as "null" when the page's Referrer-Policy hides it
    (`no-referrer`, `same-origin`, or https to http): then the page URL the beacon carries is
    checked instead. A request with no Origin at all is not from a browser and is refused.
    """
    if not header:
        return False
    if header.strip() == "null":
        return origins.of_url(beacon.page) in allowed_origins
    return origins.of_url(header.strip()) in allowed_origins


@dataclass(frozen=True)
class Counted:
    """One acknowledged beacon of one widget, at the time it arrived."""

    widget_id: int
    beacon: Beacon
    at: datetime


def record(session: Session, items: Sequence[Counted]) -> None:
    """Add the beacons to their hourly counters: summed per key first, then one upsert per key,
    in key order (two workers committing overlapping batches lock rows in the same order)."""
    totals: Counter[tuple[Any, ...]] = Counter()
    for item in items:
        b = item.beacon
        hour = item.at.replace(minute=0, second=0, microsecond=0)
        key = (item.widget_id, hour, b.kind, b.messenger, b.path, b.source, b.medium, b.campaign)
        totals[(*key, b.referrer_host)] += 1
    if not totals:
        return
    if session.get_bind().dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        from sqlalchemy.dialects.postgresql import insert  # type: ignore[assignment]
    stmt = insert(WidgetEvent)
    stmt = stmt.on_conflict_do_update(
        index_elements=list(COLUMNS), set_={"count": WidgetEvent.count + stmt.excluded.count}
    )
    rows = [{**dict(zip(COLUMNS, key, strict=True)), "count": n} for key, n in totals.items()]
    session.execute(stmt, sorted(rows, key=lambda row: tuple(str(row[c]) for c in COLUMNS)))


# --- reading -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CountsQuery:
    group_by: str
    since: datetime | None
    until: datetime | None


def parse_query(params: Mapping[str, str]) -> CountsQuery:
    problems = fields.Problems()
    group = params.get("group_by", "day")
    if group not in GROUPS:
        problems.add("group_by", f"must be one of: {', '.join(GROUPS)}")
    since = problems.take(fields.timestamp, params, "from")
    until = problems.take(fields.timestamp, params, "to")
    problems.check()
    return CountsQuery(group, since, until)


def counts(session: Session, widget_id: int, query: CountsQuery) -> list[dict[str, Any]]:
    """Impressions, QR hand-offs and clicks per day, source, medium, campaign, path, referrer
    host or messenger ('' reads as null: not known)."""
    key: ColumnElement[Any]
    if query.group_by == "day":
        if session.get_bind().dialect.name == "sqlite":
            key = func.date(WidgetEvent.hour)
        else:
            key = func.to_char(func.timezone("UTC", WidgetEvent.hour), "YYYY-MM-DD")
    else:
        column = "referrer_host" if query.group_by == "referrer" else query.group_by
        key = WidgetEvent.__table__.c[column]
    key = key.label("key")
    totals = [
        func.sum(case((WidgetEvent.kind == kind, WidgetEvent.count), else_=0)) for kind in KINDS
    ]
    stmt = select(key, *totals).where(WidgetEvent.widget_id == widget_id)
    if query.since is not None:
        stmt = stmt.where(WidgetEvent.hour >= query.since)
    if query.until is not None:
        stmt = stmt.where(WidgetEvent.hour < query.until)
    rows = session.execute(stmt.group_by(key).order_by(key))
    return [
        {
            query.group_by: row[0] or None,
            "impressions": int(row[1] or 0),
            "qr": int(row[2] or 0),
            "clicks": int(row[3] or 0),
        }
        for row in rows
    ]
