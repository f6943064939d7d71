"""Opt-in attribution: verified deliveries (evidence), subscribers, starts (touches), the
append-only consent ledger, and the relay outbox.

What may change after insert, and why: a subscriber's profile (name, language, last seen) and,
on erasure, its identifiers; a start's attribution, filled once when its click reaches the
database after the start (the click spool lags by milliseconds); a consent event's touch
pointers, recomputed when a touch arrives late. A consent event's kind, times, method and
evidence never change: they are the proof.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from acquisition.models.base import Base, BigId, UTCDateTime, utcnow


class WebhookDelivery(Base):
    """One verified request body as it arrived: the evidence behind every event it carried.

    Kept once per distinct body (Meta batches many events into one body). `body_sha256` is of
    the raw bytes and survives erasure, which scrubs `body`.
    """

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("channel_id", "body_sha256"),
        CheckConstraint("via IN ('webhook', 'api')", name="via"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    via: Mapped[str] = mapped_column(String(8))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    body: Mapped[str | None] = mapped_column(Text)
    body_sha256: Mapped[str] = mapped_column(String(64))
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Subscriber(Base):
    """A person in one channel. Status is derived from the consent ledger, never stored."""

    __tablename__ = "subscribers"
    __table_args__ = (UniqueConstraint("channel_id", "messenger_user_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    messenger_user_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(16))
    first_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime)
    erased_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class WebhookEvent(Base):
    """One provider event we acted on, stored once per (channel, provider event id): the
    unique constraint is what makes re-deliveries, even concurrent ones, no-ops."""

    __tablename__ = "webhook_events"
    __table_args__ = (UniqueConstraint("channel_id", "event_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    event_id: Mapped[str] = mapped_column(String(200))
    event_type: Mapped[str] = mapped_column(String(64))
    delivery_id: Mapped[int] = mapped_column(BigId, ForeignKey("webhook_deliveries.id"), index=True)
    subscriber_id: Mapped[int] = mapped_column(BigId, ForeignKey("subscribers.id"), index=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class Start(Base):
    """A touch: the person opened the chat, with a ref (attributed to its click) or without
    (source "direct"). Attribution columns are copied from the click when it is known."""

    __tablename__ = "starts"
    __table_args__ = (Index("ix_starts_subscriber_id_at", "subscriber_id", "at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    subscriber_id: Mapped[int] = mapped_column(BigId, ForeignKey("subscribers.id"))
    webhook_event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_events.id"), index=True
    )
    ref: Mapped[str | None] = mapped_column(String(64), index=True)
    click_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("clicks.id"), index=True)
    link_id: Mapped[int | None] = mapped_column(ForeignKey("links.id"), index=True)
    placement_id: Mapped[int | None] = mapped_column(ForeignKey("placements.id"))
    source: Mapped[str | None] = mapped_column(String(100))
    medium: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[str | None] = mapped_column(String(100))
    term: Mapped[str | None] = mapped_column(String(100))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)


class ConsentEvent(Base):
    """Append-only: an opt-in or opt-out with both times, how it was given, its evidence, and
    the first and last touch it is attributed to."""

    __tablename__ = "consent_events"
    __table_args__ = (
        CheckConstraint("kind IN ('opt_in', 'opt_out')", name="kind"),
        Index("ix_consent_events_subscriber_id_at", "subscriber_id", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    subscriber_id: Mapped[int] = mapped_column(BigId, ForeignKey("subscribers.id"))
    kind: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(48))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime)
    webhook_event_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("webhook_events.id"), index=True
    )
    first_start_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("starts.id"))
    last_start_id: Mapped[int | None] = mapped_column(BigId, ForeignKey("starts.id"))
    consent_version: Mapped[str | None] = mapped_column(String(32))


class RelayItem(Base):
    """A verified delivery waiting to be forwarded to the channel's own bot backend.

    Written in the webhook's transaction; sent by the relay loop, oldest first per channel.
    Delivered rows keep their hash (so a platform re-delivery is not relayed twice) but lose
    their body; they are pruned after a couple of days.
    """

    __tablename__ = "relay_outbox"
    __table_args__ = (
        UniqueConstraint("channel_id", "body_sha256"),
        Index("ix_relay_outbox_pending", "delivered_at", "failed_at", "channel_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    url: Mapped[str] = mapped_column(String(500))
    body: Mapped[bytes | None] = mapped_column(LargeBinary)
    body_sha256: Mapped[str] = mapped_column(String(64))
    headers: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_error: Mapped[str | None] = mapped_column(String(300))
