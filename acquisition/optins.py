"""Starts, subscribers and the consent ledger: verified messenger events become touches and
opt-in/opt-out records attributed to the click that brought the person.

Rules, in one place:
- every start is a touch (a `starts` row); a ref resolves to its click, link, placement and UTM;
  no ref, or one we do not know, is "direct";
- status is the latest consent event by provider time (ties: received time, then id), derived
  on read, never stored; so an opt-out delivered after a later opt-in still lands before it;
- explicit signals are always written (an opt-out, an unblock or resume, a Telegram or MAX
  Start, a bot's report): a late-arriving event with an earlier time must find them to be
  ordered right. Implicit ones (a message, a referral, a first WhatsApp text) are written only
  when they change the status at their own time, so chatting adds no rows; and they do not
  lift a marketing stop (WhatsApp, Messenger), which only its explicit resume lifts;
- each consent event points at its first touch (earliest start with a known click) and its last
  touch (the start that carried it, else the latest start before it);
- a provider event is stored once per (channel, event id): duplicates are no-ops.
"""

from __future__ import annotations

import hashlib
import threading
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from acquisition import attribution, messengers, refs, rollups

# Late clicks are attribution's business; the click drainer and readers reach them from here.
from acquisition.attribution import resolvable as resolvable
from acquisition.attribution import resolve_pending as resolve_pending
from acquisition.attribution import resolver as resolver
from acquisition.messengers.base import Event
from acquisition.models import (
    Channel,
    ConsentEvent,
    Link,
    Start,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
)

COUNTERS: Counter[str] = Counter()
_COUNTERS_LOCK = threading.Lock()

# Marketing stops are lifted only by their explicit resume, not by the person writing again
# (a WhatsApp "stop" stays in force while the person keeps chatting with the business).
STICKY_OPTOUTS = frozenset({"whatsapp_marketing_stop", "meta_stop_notifications"})
# Signals that only imply the person may be messaged: kept only when they change the status.
IMPLICIT = frozenset(
    {
        "telegram_message",
        "viber_first_message",
        "vk_message",
        "max_message",
        "meta_referral",
        "meta_message",
        "whatsapp_first_message",
    }
)

_METHODS = {
    ("telegram", "start"): "telegram_start",
    ("telegram", "message"): "telegram_message",
    ("telegram", "optin"): "telegram_unblocked",
    ("telegram", "optout"): "telegram_blocked",
    ("viber", "message"): "viber_first_message",
    ("viber", "optin"): "viber_subscribed",
    ("viber", "optout"): "viber_unsubscribed",
    ("vk", "start"): "vk_message",
    ("vk", "message"): "vk_message",
    ("vk", "optin"): "vk_message_allow",
    ("vk", "optout"): "vk_message_deny",
    ("max", "start"): "max_bot_started",
    ("max", "message"): "max_message",
    ("max", "optout"): "max_bot_stopped",
    ("messenger", "start"): "meta_referral",
    ("instagram", "start"): "meta_referral",
    ("messenger", "message"): "meta_message",
    ("instagram", "message"): "meta_message",
    ("messenger", "optin"): "meta_optin",
    ("messenger", "optout"): "meta_stop_notifications",
    ("whatsapp", "start"): "whatsapp_first_message",
    ("whatsapp", "message"): "whatsapp_first_message",
    ("whatsapp", "optin"): "whatsapp_marketing_resume",
    ("whatsapp", "optout"): "whatsapp_marketing_stop",
}


def count(name: str, n: int = 1) -> None:
    """In-process counters for /metrics (hook outcomes, relay results)."""
    with _COUNTERS_LOCK:
        COUNTERS[name] += n


@dataclass(frozen=True)
class Evidence:
    """The verified raw body the events came in, and when we received it."""

    body: bytes
    received_at: datetime
    via: str = "webhook"  # or "api" (a bot's report)


@dataclass
class Outcome:
    recorded: int = 0
    duplicates: int = 0
    ignored: int = 0  # not about a person's consent (receipts, reads, unknown types)
    unchanged: int = 0  # about a person, but changes nothing (one more message)
    starts: list[Start] = field(default_factory=list)
    subscribers: list[Subscriber] = field(default_factory=list)
    reply: dict[str, object] | None = None  # a welcome the webhook response may carry


def record(
    session: Session, channel: Channel, events: Sequence[Event], evidence: Evidence
) -> Outcome:
    """Apply one verified delivery's events. Never commits; the edge commits, then answers."""
    outcome = Outcome()
    delivery: list[int] = []  # created lazily: a body whose events change nothing is not kept
    # People are locked in one order (by id; a stable sort keeps each person's own events in
    # delivery order), so two batches naming the same people cannot deadlock each other.
    days = []  # of the events stored: a delayed one changes an earlier day's rollup
    for event in sorted(events, key=lambda e: e.user_id):
        recorded = outcome.recorded
        _apply(session, channel, event, evidence, delivery, outcome)
        if outcome.recorded > recorded:
            days.append(event.at)
    rollups.mark_dirty(session, days)
    for name in ("recorded", "duplicates", "ignored", "unchanged"):
        count(f"events.{name}", getattr(outcome, name))
    return outcome


def _apply(
    session: Session,
    channel: Channel,
    event: Event,
    evidence: Evidence,
    delivery: list[int],
    outcome: Outcome,
) -> None:
    if event.kind == "ignored" or not event.user_id:
        outcome.ignored += 1
        return
    key = event_key(event.event_id)
    # A re-delivery changes nothing, and creates no one (the person may have been erased since).
    if _stored(session, channel.id, key) is not None:
        outcome.duplicates += 1
        known = session.scalar(
            select(Subscriber).where(
                Subscriber.channel_id == channel.id,
                Subscriber.messenger_user_id == event.user_id[:128],
            )
        )
        outcome.subscribers.extend([known] if known is not None else [])
        return
    subscriber = _subscriber(session, channel.id, event)
    outcome.subscribers.append(subscriber)
    # Again under the person's lock: a concurrent copy of this event may have been stored.
    if _stored(session, channel.id, key) is not None:
        outcome.duplicates += 1
        return
    method = "bot_report" if evidence.via == "api" else _method(channel.messenger, event)
    consent = _transition(session, subscriber, event, method)
    if event.kind != "start" and consent is None:
        outcome.unchanged += 1
        return
    if not delivery:
        delivery.append(_delivery(session, channel.id, evidence))
    # The subscriber row is locked (PostgreSQL) or the database is (SQLite BEGIN IMMEDIATE),
    # so a concurrent copy of this event waits above and then finds it; the unique
    # constraint is the last word all the same.
    event_row = insert_ignore(
        session,
        WebhookEvent,
        {
            "channel_id": channel.id,
            "event_id": key,
            "event_type": event.event_type[:64],
            "delivery_id": delivery[0],
            "subscriber_id": subscriber.id,
            "at": event.at,
            "received_at": evidence.received_at,
        },
        ("channel_id", "event_id"),
    )
    if event_row is None:
        outcome.duplicates += 1
        return
    outcome.recorded += 1
    start = None
    if event.kind == "start":
        start = _start(session, subscriber, event, event_row, evidence.received_at)
        outcome.starts.append(start)
    if consent is not None:
        session.add(
            ConsentEvent(
                channel_id=channel.id,
                subscriber_id=subscriber.id,
                kind=consent,
                method=method,
                at=event.at,
                received_at=evidence.received_at,
                webhook_event_id=event_row,
            )
        )
    session.flush()
    attribution.repoint(session, subscriber.id)
    if start is not None and outcome.reply is None:
        outcome.reply = _welcome(session, channel, subscriber, event, start)


def _stored(session: Session, channel_id: int, key: str) -> int | None:
    return session.scalar(
        select(WebhookEvent.id).where(
            WebhookEvent.channel_id == channel_id, WebhookEvent.event_id == key
        )
    )


def _method(messenger: str, event: Event) -> str:
    return _METHODS.get((messenger, event.kind), f"{messenger}_{event.event_type}")[:48]


def event_key(event_id: str) -> str:
    """Provider ids fit 200 characters in practice; a longer one is kept as its digest."""
    if len(event_id) <= 200:
        return event_id
    return "sha256:" + hashlib.sha256(event_id.encode("utf-8", "replace")).hexdigest()


def insert_ignore(
    session: Session, model: Any, values: dict[str, Any], keys: tuple[str, ...]
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING RETURNING id: the new id, or None when the row exists."""
    if session.get_bind().dialect.name == "postgresql":
        statement: Any = postgresql.insert(model)
    else:
        statement = sqlite.insert(model)
    statement = statement.values(**values).on_conflict_do_nothing(index_elements=list(keys))
    new: int | None = session.scalar(statement.returning(model.id))
    return new


def _subscriber(session: Session, channel_id: int, event: Event) -> Subscriber:
    user_id = event.user_id[:128]
    insert_ignore(
        session,
        Subscriber,
        {
            "channel_id": channel_id,
            "messenger_user_id": user_id,
            "first_seen_at": event.at,
            "last_seen_at": event.at,
        },
        ("channel_id", "messenger_user_id"),
    )
    # Lock the person for the rest of the transaction: two deliveries about one person
    # (say a start and a block, or the same update twice) are applied one after the other.
    subscriber = session.scalars(
        select(Subscriber)
        .where(Subscriber.channel_id == channel_id, Subscriber.messenger_user_id == user_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).one()
    if event.user_name:
        subscriber.name = event.user_name[:200]
    if event.language:
        subscriber.language = event.language[:16]
    subscriber.first_seen_at = min(subscriber.first_seen_at, event.at)
    subscriber.last_seen_at = max(subscriber.last_seen_at, event.at)
    return subscriber


def latest(session: Session, subscriber_id: int, at: datetime | None = None) -> ConsentEvent | None:
    """The consent event in force (at `at`, or now): latest by provider time, ties broken by
    our receipt time and then by id."""
    query = (
        select(ConsentEvent)
        .where(ConsentEvent.subscriber_id == subscriber_id)
        .order_by(ConsentEvent.at.desc(), ConsentEvent.received_at.desc(), ConsentEvent.id.desc())
        .limit(1)
    )
    if at is not None:
        query = query.where(ConsentEvent.at <= at)
    return session.scalar(query)


def _transition(session: Session, subscriber: Subscriber, event: Event, method: str) -> str | None:
    """The consent event this event makes, or None (implicit ones judged at their own time)."""
    if event.kind == "optout":
        return "opt_out"
    if not event.subscribes:
        return None
    if method not in IMPLICIT:
        return "opt_in"
    before = latest(session, subscriber.id, event.at)
    if before is None:
        return "opt_in"
    if before.kind == "opt_in" or before.method in STICKY_OPTOUTS:
        return None
    return "opt_in"


def _delivery(session: Session, channel_id: int, evidence: Evidence) -> int:
    digest = hashlib.sha256(evidence.body).hexdigest()
    new = insert_ignore(
        session,
        WebhookDelivery,
        {
            "channel_id": channel_id,
            "via": evidence.via,
            "received_at": evidence.received_at,
            "body": evidence.body.decode("utf-8", "replace"),
            "body_sha256": digest,
        },
        ("channel_id", "body_sha256"),
    )
    if new is not None:
        return new
    return session.scalars(
        select(WebhookDelivery.id).where(
            WebhookDelivery.channel_id == channel_id, WebhookDelivery.body_sha256 == digest
        )
    ).one()


def _start(
    session: Session, subscriber: Subscriber, event: Event, event_row: int, received_at: datetime
) -> Start:
    raw = event.ref
    ref = (refs.normalize(raw) or raw) if raw else None
    start = Start(
        channel_id=subscriber.channel_id,
        subscriber_id=subscriber.id,
        webhook_event_id=event_row,
        ref=ref[:64] if ref else None,
        at=event.at,
        received_at=received_at,
        source="direct",
    )
    attribution.attribute(session, start)
    session.add(start)
    return start


def _welcome(
    session: Session, channel: Channel, subscriber: Subscriber, event: Event, start: Start
) -> dict[str, object] | None:
    """The instant reply a start may get in the webhook response: the link's text, else the
    channel's; never for someone whose latest word is an opt-out."""
    text = channel.welcome_text
    if start.link_id is not None:
        text = session.scalar(select(Link.welcome_text).where(Link.id == start.link_id)) or text
    if not text:
        return None
    current = latest(session, subscriber.id)
    if current is not None and current.kind == "opt_out":
        return None
    reply = messengers.get(channel.messenger).welcome_response(event, text, channel.name)
    if reply is not None:
        count("welcome.sent")
    return reply
