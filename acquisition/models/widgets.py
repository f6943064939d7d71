"""Site widgets, the tracked link each of their buttons opens, and their hourly event counters."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from acquisition.models.base import Base, BigId, UTCDateTime, utcnow
from acquisition.models.links import Channel, Link


class Widget(Base):
    """One embeddable widget. `config` is the validated look and behaviour (see
    acquisition.widgets); `version` goes up on every change and keys the script's ETag."""

    __tablename__ = "widgets"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    placement_id: Mapped[int] = mapped_column(ForeignKey("placements.id"))
    config: Mapped[dict[str, Any]] = mapped_column(JSON)
    origins: Mapped[list[str]] = mapped_column(JSON)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    links: Mapped[list[WidgetLink]] = relationship(
        cascade="all, delete-orphan", lazy="selectin", order_by="WidgetLink.channel_id"
    )


class WidgetLink(Base):
    """The tracked link a widget's button for one channel opens. Kept when the channel is taken
    off the widget, so putting it back reuses the same link (and its click history)."""

    __tablename__ = "widget_links"

    widget_id: Mapped[int] = mapped_column(ForeignKey("widgets.id"), primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"), primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("links.id"), unique=True)

    link: Mapped[Link] = relationship(lazy="joined")
    channel: Mapped[Channel] = relationship(lazy="joined")


class WidgetEvent(Base):
    """How many impressions, QR hand-offs or clicks one widget had in one UTC hour, per page path,
    messenger, UTM source/medium/campaign and referrer host (human visitors only).

    A counter row, upserted by each beacon, instead of a row per beacon: a dashboard reading a
    month of impressions by source or campaign sums at most 24 rows per day and key. Absent
    values are stored as '' (not NULL) so the unique key matches them on every engine.
    """

    __tablename__ = "widget_events"
    __table_args__ = (
        UniqueConstraint(
            "widget_id",
            "hour",
            "kind",
            "messenger",
            "path",
            "source",
            "medium",
            "campaign",
            "referrer_host",
            name="uq_widget_events_key",
        ),
        CheckConstraint("kind IN ('impression', 'qr', 'click')", name="kind"),
        Index("ix_widget_events_hour", "hour"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    widget_id: Mapped[int] = mapped_column(ForeignKey("widgets.id"))
    hour: Mapped[datetime] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(10))
    messenger: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(200))
    source: Mapped[str] = mapped_column(String(100))
    medium: Mapped[str] = mapped_column(String(100))
    campaign: Mapped[str] = mapped_column(String(100))
    referrer_host: Mapped[str] = mapped_column(String(100))
    count: Mapped[int] = mapped_column(Integer)
