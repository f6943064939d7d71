"""Attribution: which click a start came from, which touches each consent event points at,
and the late click (one still in the spool when its start arrived) found afterwards.

A start whose ref names no stored click is "direct" for now. When the click reaches the
database, `resolve_pending` (called by the click drainer, and cheaply by readers) copies the
click's link, placement and UTM onto the start and recomputes the person's touch pointers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

import orjson
from sqlalchemy import ColumnElement, or_, select, text
from sqlalchemy.orm import Session

from acquisition import refs, rollups
from acquisition.db import Database
from acquisition.models import Click, ConsentEvent, Link, Start, utcnow

log = logging.getLogger(__name__)

UTM = ("source", "medium", "campaign", "content", "term")
RESOLVE_WINDOW = timedelta(days=1)


def attribute(session: Session, start: Start) -> bool:
    """Copy the click's attribution onto the start, if the ref names a click of this channel."""
    ref = refs.normalize(start.ref) if start.ref else None
    if ref is None:
        return False
    found = session.execute(
        select(Click, Link.placement_id)
        .join(Link, Link.id == Click.link_id)
        .where(Click.ref == ref, _of_channel(start.channel_id))
        # Two clicks months apart may share a ref (see refs): the start is the latest's.
        .order_by(Click.at.desc())
    ).first()
    if found is None:
        return False
    click, placement_id = found
    start.click_id, start.link_id, start.placement_id = click.id, click.link_id, placement_id
    for name in UTM:
        setattr(start, name, getattr(click, name))
    return True


def repoint(session: Session, subscriber_id: int) -> None:
    """(Re)compute every consent event's first and last touch and its consent wording version.

    Needed again whenever a touch arrives late: a click still in the spool when its start
    came, or a start delivered after the message that subscribed the person.
    """
    touches = session.execute(
        select(Start.id, Start.at, Start.click_id, Start.webhook_event_id, Click.consent_version)
        .outerjoin(Click, Click.id == Start.click_id)
        .where(Start.subscriber_id == subscriber_id)
        .order_by(Start.at, Start.id)
    ).all()
    events = session.scalars(
        select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id)
    ).all()
    for event in events:
        before = [t for t in touches if t.at <= event.at]
        own = next((t for t in touches if t.webhook_event_id == event.webhook_event_id), None)
        last = own or (before[-1] if before else None)
        first = next((t for t in before if t.click_id is not None), before[0] if before else None)
        first_id, last_id = (first.id if first else None), (last.id if last else None)
        if (event.first_start_id, event.last_start_id) != (first_id, last_id):
            event.first_start_id, event.last_start_id = first_id, last_id
        if event.kind == "opt_in" and event.consent_version is None and last is not None:
            event.consent_version = last.consent_version


def resolve_pending(session: Session, refs_: Sequence[str]) -> int:
    """Attach starts that arrived before their click (spool lag) to the clicks with these refs;
    the click drainer calls this after each batch. Returns how many starts were attributed."""
    resolved = 0
    affected: set[int] = set()
    days: set[datetime] = set()  # the starts' own days: their rollups change
    wanted = sorted({ref for ref in refs_ if ref})
    for offset in range(0, len(wanted), 500):
        chunk = wanted[offset : offset + 500]
        waiting = session.scalars(
            select(Start).where(Start.ref.in_(chunk), Start.click_id.is_(None))
        ).all()
        for start in waiting:
            if attribute(session, start):
                resolved += 1
                affected.add(start.subscriber_id)
                days.add(start.at)
    session.flush()
    for subscriber_id in sorted(affected):
        repoint(session, subscriber_id)
    session.flush()
    rollups.mark_dirty(session, days)
    return resolved


def resolver(db: Database) -> Callable[[Sequence[str]], None]:
    """What the click drainer calls with each batch's refs (ClickSpool's `on_stored`): a cheap
    read finds the refs some start is waiting for; only then a short write attributes them.
    Never raises: a failure here must not stop clicks from draining (reads resolve later)."""

    def resolve(batch: Sequence[str]) -> None:
        try:
            with db.reader() as session:
                waiting = _waiting(session, batch)
            if waiting:
                with db.writer.begin() as session:
                    resolve_pending(session, waiting)
        except Exception as error:
            log.warning("late clicks not attributed now: %s", error.__class__.__name__)

    return resolve


def _waiting(session: Session, refs_: Sequence[str]) -> list[str]:
    """Which of a drained batch's refs a start waits for: one statement, the refs sent as one
    JSON array the database takes apart. (An IN list bound ref by ref kept the drainer on the
    GIL for ~3 us per click, time the redirects on the event loop then waited for.)"""
    if not refs_:
        return []
    dialect = session.get_bind().dialect.name
    return list(
        session.scalars(text(_WAITING[dialect]), {"refs": orjson.dumps(list(refs_)).decode()})
    )


_WAITING = {
    "sqlite": "SELECT DISTINCT ref FROM starts WHERE click_id IS NULL"
    " AND ref IN (SELECT value FROM json_each(:refs))",
    "postgresql": "SELECT DISTINCT ref FROM starts WHERE click_id IS NULL"
    " AND ref IN (SELECT jsonb_array_elements_text(CAST(:refs AS jsonb)))",
}


def resolvable(session: Session, now: datetime | None = None) -> list[str]:
    """Refs of recent unattributed starts whose click is in the database by now: a cheap check
    readers run so numbers are right even before the drainer's own call."""
    since = (now or utcnow()) - RESOLVE_WINDOW
    return list(
        session.scalars(
            select(Start.ref)
            .join(Click, Click.ref == Start.ref)
            .where(
                Start.click_id.is_(None),
                Start.received_at >= since,
                # another channel's click never attributes: it would be "resolvable" forever
                _of_channel(Start.channel_id),
            )
            .limit(1000)
        )
    )


def _of_channel(channel_id: Any) -> ColumnElement[bool]:
    """A click a start of this channel may come from. A ref is public and replayable: one
    that belongs to another channel's click proves nothing here."""
    return or_(Click.channel_id.is_(None), Click.channel_id == channel_id)
