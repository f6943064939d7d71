"""Every table. One declarative base with one naming convention for constraints.

Each domain keeps its tables in its own module here; importing this package registers them all,
which Alembic's autogenerate and the models-vs-migrations test rely on.
"""

from __future__ import annotations

from acquisition.models.accounts import ApiKey
from acquisition.models.base import Base, UTCDateTime, utcnow
from acquisition.models.links import Channel, Click, Link, LinkChannel, LinkRevision, Placement

__all__ = [
    "ApiKey",
    "Base",
    "Channel",
    "Click",
    "Link",
    "LinkChannel",
    "LinkRevision",
    "Placement",
    "UTCDateTime",
    "utcnow",
]
