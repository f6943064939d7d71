"""Plain functions that make rows with good defaults (no factory library)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from acquisition import channels, links
from acquisition.db import Database
from acquisition.models import Channel, Link


def make_channel(
    db: Database, messenger: str = "telegram", handle: str = "shop_bot", **extra: Any
) -> Channel:
    with db.writer.begin() as session:
        spec = channels.parse({"messenger": messenger, "handle": handle, **extra})
        return channels.create(session, spec)


def make_link(db: Database, channel_ids: list[int], **fields: Any) -> Link:
    with db.writer.begin() as session:
        return links.create(session, links.parse({"channels": channel_ids, **fields}))


def in_session(db: Database) -> Session:
    return db.reader()
