"""Channels, placements, links (with their revision history) and clicks."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from acquisition.models.base import Base, BigId, UTCDateTime, utcnow


class Channel(Base):
    """One business account in one messenger."""

    __tablename__ = "channels"
    __table_args__ = (UniqueConstraint("messenger", "handle"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    messenger: Mapped[str] = mapped_column(String(16))
    handle: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    credentials: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    relay_url: Mapped[str | None] = mapped_column(String(500))
    welcome_text: Mapped[str | None] = mapped_column(String(1000))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Placement(Base):
    """One concrete spot that carries a link: billboard #12, flyer batch B, the site footer."""

    __tablename__ = "placements"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('web', 'ad', 'social', 'print', 'outdoor', 'email', 'widget', 'other')",
            name="kind",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    address: Mapped[str | None] = mapped_column(String(300))
    cost: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    campaign: Mapped[str | None] = mapped_column(String(100), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Link(Base):
    __tablename__ = "links"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    campaign: Mapped[str | None] = mapped_column(String(100), index=True)
    source: Mapped[str | None] = mapped_column(String(100))
    medium: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[str | None] = mapped_column(String(100))
    term: Mapped[str | None] = mapped_column(String(100))
    placement_id: Mapped[int | None] = mapped_column(ForeignKey("placements.id"), index=True)
    text: Mapped[str | None] = mapped_column(String(500))
    # Answered at once to a start through this link where the platform allows (issue 3).
    welcome_text: Mapped[str | None] = mapped_column(String(1000))
    valid_from: Mapped[datetime | None] = mapped_column(UTCDateTime)
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    placement: Mapped[Placement | None] = relationship(lazy="joined")
    targets: Mapped[list[LinkChannel]] = relationship(
        order_by="LinkChannel.position", cascade="all, delete-orphan", lazy="selectin"
    )


class LinkChannel(Base):
    """A link's target channels, in the order its chooser page shows them."""

    __tablename__ = "link_channels"

    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, default=0)

    channel: Mapped[Channel] = relationship(lazy="joined")


class LinkRevision(Base):
    """What a link looked like at each version, so editing it never loses its history."""

    __tablename__ = "link_revisions"
    __table_args__ = (UniqueConstraint("link_id", "version"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"))
    version: Mapped[int] = mapped_column(Integer)
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)


class Click(Base):
    """One visit of a link: a human click (with a ref for the messenger) or a bot/preview visit.

    The UTM columns are the click's own source details: the link's values, overridden by what
    the visit carried (a widget passes the host page's UTM along).
    """

    __tablename__ = "clicks"
    __table_args__ = (
        Index("ix_clicks_link_id_at", "link_id", "at"),
        CheckConstraint("visitor IN ('human', 'preview', 'bot')", name="visitor"),
        # A click's key for idempotent spool replays. Not the ref alone: two clicks months
        # apart may share one (see refs), and the later must not be skipped as a replay.
        UniqueConstraint("ref", "at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # No foreign keys: their checks were half of PostgreSQL's work per stored click, and what
    # they guard cannot happen (clicks come only from loaded links; links and channels are
    # never deleted). See migration 0008.
    link_id: Mapped[int] = mapped_column(Integer)
    channel_id: Mapped[int | None] = mapped_column(Integer)
    ref: Mapped[str | None] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    visitor: Mapped[str] = mapped_column(String(8))
    device: Mapped[str] = mapped_column(String(8))
    via: Mapped[str] = mapped_column(String(8))
    link_version: Mapped[int] = mapped_column(Integer)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(400))
    referrer: Mapped[str | None] = mapped_column(String(400))
    page: Mapped[str | None] = mapped_column(String(400))
    source: Mapped[str | None] = mapped_column(String(100))
    medium: Mapped[str | None] = mapped_column(String(100))
    campaign: Mapped[str | None] = mapped_column(String(100))
    content: Mapped[str | None] = mapped_column(String(100))
    term: Mapped[str | None] = mapped_column(String(100))
    click_id: Mapped[str | None] = mapped_column(String(200))
    widget: Mapped[str | None] = mapped_column(String(32))
    consent_version: Mapped[str | None] = mapped_column(String(32))
