"""Every table. One declarative base with one naming convention for constraints.

Each domain keeps its tables in its own module here; importing this package registers them all,
which Alembic's autogenerate and the models-vs-migrations test rely on.
"""

from __future__ import annotations

from acquisition.models.accounts import ApiKey, User
from acquisition.models.base import Base, UTCDateTime, utcnow
from acquisition.models.links import Channel, Click, Link, LinkChannel, LinkRevision, Placement
from acquisition.models.optins import (
    ConsentEvent,
    RelayItem,
    Start,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
)
from acquisition.models.rollups import DailyStat, RollupDay, WeeklyStat
from acquisition.models.widgets import Widget, WidgetEvent, WidgetLink

__all__ = [
    "ApiKey",
    "Base",
    "Channel",
    "Click",
    "ConsentEvent",
    "DailyStat",
    "Link",
    "LinkChannel",
    "LinkRevision",
    "Placement",
    "RelayItem",
    "RollupDay",
    "Start",
    "Subscriber",
    "UTCDateTime",
    "User",
    "WebhookDelivery",
    "WebhookEvent",
    "WeeklyStat",
    "Widget",
    "WidgetEvent",
    "WidgetLink",
    "utcnow",
]
