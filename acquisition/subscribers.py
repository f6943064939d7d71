"""Subscribers for the marketer and the compliance officer: list and filter, one person's
consent history, the ledger as CSV, and erasure of a person's identifiers on request.

Status is derived here from the ledger (the latest consent event by provider time), never read
from a stored column. Erasure keeps what proves consent was given and withdrawn (kinds, times,
method, attribution, evidence hashes) and removes what identifies the person.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select
from sqlalchemy.orm import Session, aliased

from acquisition import fields, messengers
from acquisition.errors import Invalid, NotFound
from acquisition.models import (
    Channel,
    ConsentEvent,
    Link,
    Placement,
    Start,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
    utcnow,
)

STATUSES = ("subscribed", "unsubscribed")
UTM = ("source", "medium", "campaign", "content", "term")
# A spreadsheet runs a cell starting with one of these as a formula (CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True)
class SubscriberQuery:
    channel: int | None = None
    status: str | None = None
    source: str | None = None
    campaign: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int = 50
    before: int | None = None


def _number(params: Mapping[str, str], name: str, low: int, high: int) -> int | None:
    raw = params.get(name)
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Invalid(f"must be a whole number from {low} to {high}", field=name)
    return fields.integer(int(raw), name, low=low, high=high)


def parse_query(params: Mapping[str, str]) -> SubscriberQuery:
    problems = fields.Problems()
    channel = problems.take(_number, params, "channel", 1, 2**31 - 1)
    status = problems.take(fields.choice, params, "status", STATUSES)
    source = problems.take(fields.text, params, "source", max_length=100)
    campaign = problems.take(fields.text, params, "campaign", max_length=100)
    since = problems.take(fields.timestamp, params, "since")
    until = problems.take(fields.timestamp, params, "until")
    limit = problems.take(_number, params, "limit", 1, 500)
    before = problems.take(_number, params, "before", 1, 2**63 - 1)
    problems.check()
    return SubscriberQuery(channel, status, source, campaign, since, until, limit or 50, before)


def _latest(column: Any) -> Any:
    """The given column of the person's consent event in force now (correlated subquery)."""
    event = aliased(ConsentEvent)
    return (
        select(getattr(event, column))
        .where(event.subscriber_id == Subscriber.id)
        .order_by(event.at.desc(), event.received_at.desc(), event.id.desc())
        .limit(1)
        .correlate(Subscriber)
        .scalar_subquery()
    )


def _first_touch() -> Any:
    """The person's first touch: earliest start with a known click, else earliest start."""
    start = aliased(Start)
    return (
        select(start.id)
        .where(start.subscriber_id == Subscriber.id)
        .order_by(start.click_id.is_(None), start.at, start.id)
        .limit(1)
        .correlate(Subscriber)
        .scalar_subquery()
    )


def _listing() -> tuple[Select[Any], Any, Any]:
    touch = aliased(Start)
    kind, since = _latest("kind"), _latest("at")
    query = (
        select(
            Subscriber,
            Channel.messenger,
            kind.label("kind"),
            since.label("since"),
            touch,
            Link.code,
            Placement.name,
        )
        .join(Channel, Channel.id == Subscriber.channel_id)
        .outerjoin(touch, touch.id == _first_touch())
        .outerjoin(Link, Link.id == touch.link_id)
        .outerjoin(Placement, Placement.id == touch.placement_id)
    )
    return query, kind, touch


def page(session: Session, query: SubscriberQuery) -> list[dict[str, Any]]:
    """Newest first; `before` is the id of the last subscriber of the previous page."""
    stmt, kind, touch = _listing()
    conditions: list[ColumnElement[bool]] = []
    if query.channel is not None:
        conditions.append(Subscriber.channel_id == query.channel)
    if query.status == "subscribed":
        conditions.append(kind == "opt_in")
    elif query.status == "unsubscribed":
        conditions.append(or_(kind.is_(None), kind == "opt_out"))
    if query.source is not None:
        conditions.append(func.coalesce(touch.source, "direct") == query.source)
    if query.campaign is not None:
        conditions.append(touch.campaign == query.campaign)
    if query.since is not None:
        conditions.append(Subscriber.first_seen_at >= query.since)
    if query.until is not None:
        conditions.append(Subscriber.first_seen_at < query.until)
    if query.before is not None:
        conditions.append(Subscriber.id < query.before)
    if conditions:
        stmt = stmt.where(*conditions)
    stmt = stmt.order_by(Subscriber.id.desc()).limit(query.limit)
    return [_public(*row) for row in session.execute(stmt)]


def one(session: Session, subscriber_id: int) -> dict[str, Any]:
    stmt, _kind, _touch = _listing()
    row = session.execute(stmt.where(Subscriber.id == subscriber_id)).first()
    if row is None:
        raise NotFound(f"no subscriber with id {subscriber_id}", field="id")
    return _public(*row)


def _public(
    subscriber: Subscriber,
    messenger: str,
    kind: str | None,
    since: datetime | None,
    touch: Start | None,
    link_code: str | None,
    placement: str | None,
) -> dict[str, Any]:
    return {
        "id": subscriber.id,
        "channel": subscriber.channel_id,
        "messenger": messenger,
        "messenger_user_id": subscriber.messenger_user_id,
        "name": subscriber.name,
        "language": subscriber.language,
        "status": "subscribed" if kind == "opt_in" else "unsubscribed",
        "status_since": since.isoformat() if since else None,
        "first_seen_at": subscriber.first_seen_at.isoformat(),
        "last_seen_at": subscriber.last_seen_at.isoformat(),
        "erased": subscriber.erased_at is not None,
        "first_touch": _touch(touch, link_code, placement),
    }


def _touch(start: Start | None, link: str | None, placement: str | None) -> dict[str, Any] | None:
    if start is None:
        return None
    return {
        "start": start.id,
        "at": start.at.isoformat(),
        "ref": start.ref,
        "click": start.click_id,
        "link": link,
        "placement": placement,
        **{name: getattr(start, name) for name in UTM},
    }


def get(session: Session, subscriber_id: int) -> Subscriber:
    subscriber = session.get(Subscriber, subscriber_id)
    if subscriber is None:
        raise NotFound(f"no subscriber with id {subscriber_id}", field="id")
    return subscriber


def touches(session: Session, ids: set[int]) -> dict[int, dict[str, Any] | None]:
    rows = session.execute(
        select(Start, Link.code, Placement.name)
        .outerjoin(Link, Link.id == Start.link_id)
        .outerjoin(Placement, Placement.id == Start.placement_id)
        .where(Start.id.in_(ids))
    ).all()
    return {row[0].id: _touch(*row) for row in rows}


def history(session: Session, subscriber_id: int) -> list[dict[str, Any]]:
    """The person's consent events in force order (provider time), with evidence and touches."""
    get(session, subscriber_id)
    rows = session.execute(
        select(ConsentEvent, WebhookEvent, WebhookDelivery)
        .join(WebhookEvent, WebhookEvent.id == ConsentEvent.webhook_event_id)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookEvent.delivery_id)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.at, ConsentEvent.received_at, ConsentEvent.id)
    ).all()
    wanted = {i for row in rows for i in (row[0].first_start_id, row[0].last_start_id) if i}
    found = touches(session, wanted) if wanted else {}
    return [
        {
            "id": event.id,
            "kind": event.kind,
            "at": event.at.isoformat(),
            "received_at": event.received_at.isoformat(),
            "method": event.method,
            "consent_version": event.consent_version,
            "evidence": {
                "event_id": hook.event_id,
                "event_type": hook.event_type,
                "via": delivery.via,
                "delivery": delivery.id,
                "body_sha256": delivery.body_sha256,
                "body_kept": delivery.body is not None,
            },
            "first_touch": found.get(event.first_start_id) if event.first_start_id else None,
            "last_touch": found.get(event.last_start_id) if event.last_start_id else None,
        }
        for event, hook, delivery in rows
    ]


# CSV export ---------------------------------------------------------------------------------

CSV_COLUMNS = (
    "consent_event_id",
    "subscriber_id",
    "channel_id",
    "messenger",
    "messenger_user_id",
    "kind",
    "at",
    "received_at",
    "method",
    "consent_version",
    "event_id",
    "event_type",
    "body_sha256",
    *(f"first_{name}" for name in (*UTM, "link", "placement")),
    *(f"last_{name}" for name in (*UTM, "link", "placement")),
)


def escape_cell(value: object) -> object:
    """Neutralise a cell a spreadsheet would run as a formula; numbers pass unchanged."""
    if isinstance(value, str) and value.startswith(FORMULA_START):
        return "'" + value
    return value


def ledger_rows(
    session: Session, channel: int | None, after: int, limit: int = 1000
) -> list[tuple[Any, ...]]:
    """One page of the ledger in id order, flattened for CSV (`after`: last id seen)."""
    first, last = aliased(Start), aliased(Start)
    first_link, last_link = aliased(Link), aliased(Link)
    first_place, last_place = aliased(Placement), aliased(Placement)
    stmt = (
        select(
            ConsentEvent.id,
            ConsentEvent.subscriber_id,
            ConsentEvent.channel_id,
            Channel.messenger,
            Subscriber.messenger_user_id,
            ConsentEvent.kind,
            ConsentEvent.at,
            ConsentEvent.received_at,
            ConsentEvent.method,
            ConsentEvent.consent_version,
            WebhookEvent.event_id,
            WebhookEvent.event_type,
            WebhookDelivery.body_sha256,
            *(getattr(first, name) for name in UTM),
            first_link.code,
            first_place.name,
            *(getattr(last, name) for name in UTM),
            last_link.code,
            last_place.name,
        )
        .join(Channel, Channel.id == ConsentEvent.channel_id)
        .join(Subscriber, Subscriber.id == ConsentEvent.subscriber_id)
        .join(WebhookEvent, WebhookEvent.id == ConsentEvent.webhook_event_id)
        .join(WebhookDelivery, WebhookDelivery.id == WebhookEvent.delivery_id)
        .outerjoin(first, first.id == ConsentEvent.first_start_id)
        .outerjoin(first_link, first_link.id == first.link_id)
        .outerjoin(first_place, first_place.id == first.placement_id)
        .outerjoin(last, last.id == ConsentEvent.last_start_id)
        .outerjoin(last_link, last_link.id == last.link_id)
        .outerjoin(last_place, last_place.id == last.placement_id)
        .where(ConsentEvent.id > after)
        .order_by(ConsentEvent.id)
        .limit(limit)
    )
    if channel is not None:
        stmt = stmt.where(ConsentEvent.channel_id == channel)
    return [
        tuple(escape_cell(v.isoformat() if isinstance(v, datetime) else v) for v in row)
        for row in session.execute(stmt)
    ]


# erasure ------------------------------------------------------------------------------------


def pseudonym(secret_key: str, channel_id: int, user_id: str) -> str:
    """A keyed hash, not a plain one: user ids are phone numbers and small integers, which a
    plain hash would give back to anyone willing to try them all. Whoever holds the key and
    is given the id again (say, in a dispute) can still find the person's proof."""
    digest = hmac.new(
        secret_key.encode(), f"{channel_id}:{user_id}".encode(), hashlib.sha256
    ).hexdigest()
    return f"erased:{digest[:40]}"


def erase(session: Session, subscriber: Subscriber, secret_key: str) -> dict[str, Any]:
    """Remove the person's identifiers; keep the ledger as proof. Idempotent."""
    if subscriber.erased_at is None:
        user_id = subscriber.messenger_user_id
        # The id suffix keeps two erased records of one returning person apart.
        token = f"{pseudonym(secret_key, subscriber.channel_id, user_id)}:{subscriber.id}"
        messenger = session.scalars(
            select(Channel.messenger).where(Channel.id == subscriber.channel_id)
        ).one()
        hooks = session.scalars(
            select(WebhookEvent).where(WebhookEvent.subscriber_id == subscriber.id)
        ).all()
        for hook in hooks:
            hook.event_id = hook.event_id.replace(user_id, token)[:200]
        delivery_ids = {hook.delivery_id for hook in hooks}
        deliveries = session.scalars(
            select(WebhookDelivery).where(WebhookDelivery.id.in_(delivery_ids))
        ).all()
        now = utcnow()
        for delivery in deliveries:
            delivery.body = _scrub(delivery.body, delivery.via, messenger, user_id, token)
            delivery.erased_at = now
        subscriber.messenger_user_id = token
        subscriber.name = subscriber.language = None
        subscriber.erased_at = now
        session.flush()
    return {
        "id": subscriber.id,
        "messenger_user_id": subscriber.messenger_user_id,
        "erased_at": subscriber.erased_at.isoformat() if subscriber.erased_at else None,
        "kept": [
            "consent events: kind, provider and received times, method, attribution",
            "evidence: provider event ids (identifiers replaced), body SHA-256 digests",
        ],
        "removed": [
            "messenger user id (replaced by a keyed hash)",
            "name",
            "language",
            "raw webhook bodies (parts about other people stay)",
        ],
    }


def _scrub(body: str | None, via: str, messenger: str, user_id: str, token: str) -> str | None:
    """Drop a body that is only about this person; in a batch about several people, replace
    each innermost list item that mentions them by the SHA-256 of that item."""
    if body is None or via != "webhook":
        return None
    try:
        events = messengers.get(messenger).parse(body.encode())
        data = json.loads(body)
    except (Invalid, ValueError):
        return None
    if not ({event.user_id for event in events} - {user_id, ""}):
        return None
    return json.dumps(_redact(data, user_id, token), ensure_ascii=False)


def _mentions(node: Any, user_id: str) -> bool:
    if isinstance(node, dict):
        return any(_mentions(value, user_id) for value in node.values())
    if isinstance(node, list):
        return any(_mentions(value, user_id) for value in node)
    return not isinstance(node, bool) and node is not None and str(node) == user_id


def _nested_mention(node: Any, user_id: str) -> bool:
    """Whether a list somewhere inside `node` has an item mentioning the person."""
    children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else []
    for child in children:
        if isinstance(child, list) and any(_mentions(item, user_id) for item in child):
            return True
        if _nested_mention(child, user_id):
            return True
    return False


def _redact(node: Any, user_id: str, token: str) -> Any:
    if isinstance(node, dict):
        return {key: _redact(value, user_id, token) for key, value in node.items()}
    if isinstance(node, list):
        return [
            {"erased": hashlib.sha256(json.dumps(item, sort_keys=True).encode()).hexdigest()}
            if _mentions(item, user_id) and not _nested_mention(item, user_id)
            else _redact(item, user_id, token)
            for item in node
        ]
    return token if _mentions(node, user_id) else node
