"""Daily rollups (`daily_stats`) kept current by recomputation, never by increments.

A refresh deletes the rows of the days that may have changed and inserts them again with one
INSERT … SELECT … GROUP BY over the base tables, in the caller's transaction. Recomputing makes
replays, late spool drains, out-of-order webhooks and re-pointed touches converge by
themselves, and it stays cheap because only a few days are scanned, through the `at` indexes:

- today on every run, yesterday on every run for an hour after midnight and then every few
  minutes;
- days someone marked with `mark_dirty()` (an event that arrived for an old day), with the
  people counters of the 31 days before them (their opt-ins' retention may have changed) and
  of the later days of the same people (who is "new in a period" may have changed);
- the people counters of days whose opt-ins are turning 7 or 30 days old (retention is
  counted only for opt-ins that old, so those change with time alone).

Anything older changes only through mark_dirty() or `acquisition rollups rebuild`.

Several workers or hosts may run it at once: on PostgreSQL one refresh at a time holds a
transaction-level advisory lock and the others skip; on SQLite the writer's BEGIN IMMEDIATE
already serialises them. See acquisition/models/rollups.py for what the rows mean.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, text
from sqlalchemy.orm import Session, aliased, sessionmaker

from acquisition import rollup_counts as counts
from acquisition.db import Database
from acquisition.models import (
    Click,
    ConsentEvent,
    DailyStat,
    RollupDay,
    Start,
    WeeklyStat,
    utcnow,
)
from acquisition.rollup_counts import RETENTION_DAYS, count_impressions

__all__ = [
    "Refreshed",
    "Refresher",
    "count_impressions",
    "mark_dirty",
    "rebuild",
    "refresh",
    "refreshed_at",
]

log = logging.getLogger(__name__)

INTERVAL = 10.0  # seconds between two runs of the refresher
# Yesterday is recomputed on every run for an hour after midnight, then this often (events
# for it still trickle in: spool drains, webhook retries), so its clicks are not scanned again
# every few seconds all day long.
YESTERDAY_EVERY = timedelta(minutes=5)
# Days whose opt-ins are turning 7 or 30 days old get their people rows recomputed this often.
MATURING_EVERY = timedelta(minutes=10)
# "acqrollu": one lock for every refresher of this database.
LOCK_KEY = int.from_bytes(b"acqrollu", "big")


@dataclass(frozen=True)
class Refreshed:
    days: tuple[date, ...]  # recomputed in full
    people_days: tuple[date, ...]  # only their opt-in/opt-out rows recomputed
    seconds: float


# what other modules call --------------------------------------------------------------------


def mark_dirty(
    session: Session, days: Iterable[date | datetime], now: datetime | None = None
) -> None:
    """Have the next refresh recompute these UTC days: call it, in the transaction that stores
    them, for events that reach the database for an earlier day than today (a late spool
    drain, a delayed webhook, a start attributed or a touch re-pointed after the fact).
    Today is refreshed anyway, so it is not marked (and busy webhooks do not queue on it)."""
    today = (now or utcnow()).astimezone(UTC).date()
    wanted = sorted({day for day in map(_as_day, days) if day < today})
    if not wanted:
        return
    upsert = counts.insert_for(session)
    for day in wanted:
        statement = (
            upsert(RollupDay)
            .values(day=day, marked=1, done=0, settled=False)
            .on_conflict_do_update(index_elements=["day"], set_={"marked": RollupDay.marked + 1})
        )
        session.execute(statement)


def refresh(
    session: Session,
    now: datetime | None = None,
    wait: bool = False,
    fresh_for: timedelta | None = None,
) -> Refreshed | None:
    """Recompute what may have changed since the last refresh, in the caller's transaction (a
    writer session; the caller commits). None when another refresh holds the lock, or when
    one finished less than `fresh_for` ago (every worker runs a refresher: one is enough)."""
    began = time.perf_counter()
    now = now or utcnow()
    if not _lock(session, wait):
        return None
    today = now.astimezone(UTC).date()
    if fresh_for is not None:
        last = session.scalar(select(RollupDay.refreshed_at).where(RollupDay.day == today))
        if last is not None and now - fresh_for < last <= now:
            return None
    full = {today}
    if _yesterday_due(session, today, now):
        full.add(today - timedelta(days=1))
    # No refresh ran for a while (the database or every worker was down, spooled clicks came
    # in since): the days in between, up to a month of them.
    last = refreshed_at(session)
    if last is not None:
        since = max(last.astimezone(UTC).date(), today - timedelta(days=31))
        full |= {since + timedelta(days=n) for n in range((today - since).days)}
    seen = dict(
        session.execute(
            select(RollupDay.day, RollupDay.marked).where(RollupDay.marked > RollupDay.done)
        ).all()
    )
    full |= set(seen)
    people = _maturing(session, now) | _affected_by(session, set(seen), today)
    people -= full
    counts.recompute(session, full, people=False, now=now)
    counts.recompute(session, people, people=True, now=now)
    counts.recompute_weeks(session, full | people)
    _record(session, full | people, seen, now)
    return Refreshed(tuple(sorted(full)), tuple(sorted(people)), time.perf_counter() - began)


def rebuild(
    sessions: sessionmaker[Session],
    since: date | None = None,
    until: date | None = None,
    now: datetime | None = None,
    chunk_days: int = 7,
) -> int:
    """Recompute every day in [since, until) (default: from the first event to today), a few
    days per transaction; waits for a running refresh. Returns how many days it covered."""
    now = now or utcnow()
    until = until or now.astimezone(UTC).date() + timedelta(days=1)
    with sessions.begin() as session:
        _lock(session, wait=True)
        if since is None:
            since = _first_day(session) or until
            # Nothing before the first event: drop rows left from data that no longer exists.
            session.execute(delete(DailyStat).where(DailyStat.day < since))
            session.execute(delete(WeeklyStat).where(WeeklyStat.day < counts.monday(since)))
    day = since
    while day < until:
        days = {day + timedelta(days=n) for n in range(chunk_days)}
        days = {each for each in days if each < until}
        with sessions.begin() as session:
            _lock(session, wait=True)
            marks = dict(
                session.execute(
                    select(RollupDay.day, RollupDay.marked).where(RollupDay.day.in_(days))
                ).all()
            )
            counts.recompute(session, days, people=False, now=now)
            counts.recompute_weeks(session, days)
            _record(session, days, marks, now)
        day += timedelta(days=chunk_days)
    if (until - since).days > chunk_days:
        with sessions.begin() as session:
            if session.get_bind().dialect.name == "postgresql":
                # Fresh statistics after a big change, or the planner may sort on disk what it
                # could hash in memory (autovacuum would get there, but later).
                session.execute(text("ANALYZE daily_stats"))
                session.execute(text("ANALYZE weekly_stats"))
    return max((until - since).days, 0)


def refreshed_at(session: Session) -> datetime | None:
    """When the rollup was last recomputed (for a "numbers as of" line in the UI)."""
    return session.scalar(select(func.max(RollupDay.refreshed_at)))


class Refresher:
    """The app's background loop: refresh every `interval` seconds (or at once when poked),
    in a worker thread so requests never wait for it."""

    def __init__(self, db: Database, interval: float = INTERVAL) -> None:
        self.db = db
        self.interval = interval
        self.last: Refreshed | None = None
        self._wake = asyncio.Event()
        self._stopping = False
        self._poked = False
        self._task: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="rollups")

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            # Let a refresh in progress finish: its thread holds a connection and a lock.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(self._task, timeout=30)

    def poke(self) -> None:
        """Refresh now instead of at the next tick (the dashboard's "refresh" button); safe to
        call from any thread."""
        self._poked = True
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def run_once(self, force: bool = True) -> Refreshed | None:
        # Unless asked for, a run right after another worker's is skipped.
        fresh_for = None if force else timedelta(seconds=self.interval / 2)
        with self.db.writer.begin() as session:
            result = refresh(session, fresh_for=fresh_for)
        if result is not None:
            self.last = result
        return result

    def backfill(self) -> int:
        """On a database that had data before the rollup existed, compute all of its days."""
        with self.db.reader() as session:
            if session.scalar(select(RollupDay.day).limit(1)) is not None:
                return 0
        return rebuild(self.db.writer)

    async def _run(self) -> None:
        with contextlib.suppress(Exception):  # logged below by the first run if it persists
            await asyncio.to_thread(self.backfill)
        while not self._stopping:
            began = time.monotonic()
            poked, self._poked = self._poked, False
            try:
                await asyncio.to_thread(self.run_once, poked)
            except Exception as error:  # the database is down or busy: try again next tick
                log.warning("rollup refresh failed: %s", error)
            self._wake.clear()
            if self._stopping:  # stop() came during the refresh: its wake-up was just cleared
                break
            # A busy day makes a refresh slower: keep it under a fifth of the database's time.
            pause = max(self.interval, 4 * (time.monotonic() - began))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=pause)


# which days --------------------------------------------------------------------------------


def _yesterday_due(session: Session, today: date, now: datetime) -> bool:
    last = session.scalar(
        select(RollupDay.refreshed_at).where(RollupDay.day == today - timedelta(days=1))
    )
    if last is None or now < counts.midnight(today) + timedelta(hours=1):
        return True
    return last < now - YESTERDAY_EVERY


def _maturing(session: Session, now: datetime) -> set[date]:
    """Days whose people rows changed with time alone: some of their opt-ins turned 7 or 30
    days old since the day was last computed."""
    due = set()
    rows = session.execute(
        select(RollupDay.day, RollupDay.refreshed_at).where(RollupDay.settled.is_(False))
    ).all()
    for day, refreshed in rows:
        start = counts.midnight(day)
        for n in RETENTION_DAYS:
            opens, closes = start + timedelta(days=n), start + timedelta(days=n + 1)
            if now < opens:
                continue
            if refreshed is None or (
                refreshed < closes and (now >= closes or refreshed < now - MATURING_EVERY)
            ):
                due.add(day)
    return due


def _affected_by(session: Session, dirty: set[date], today: date) -> set[date]:
    """People counters a dirty day D may change elsewhere.

    Retention: an event at D can change whether an opt-in of cohort day C was still in force
    n days later, for C in [D - n, D - 1]. Cohorts whose n-day window has not closed yet are
    recomputed as they mature anyway, so only those closed before today count; for a late
    event of yesterday that is one day per window. And who counts as new: the later days of
    the people with events on D (their `previous_day` may now be D).
    """
    days: set[date] = set()
    later = aliased(ConsentEvent)
    for lo, hi in counts.ranges(dirty):
        for n in RETENTION_DAYS:
            first, last = lo - timedelta(days=n), min(hi, today - timedelta(days=n))
            days |= {first + timedelta(days=k) for k in range((last - first).days)}
        found = session.scalars(
            select(counts.day_of(session, later.at))
            .join(
                ConsentEvent,
                and_(
                    ConsentEvent.subscriber_id == later.subscriber_id,
                    ConsentEvent.kind == later.kind,
                ),
            )
            .where(ConsentEvent.at >= counts.midnight(lo), ConsentEvent.at < counts.midnight(hi))
            .where(later.at >= counts.midnight(hi))
            .distinct()
        )
        days |= set(found)
    return days - dirty


def _first_day(session: Session) -> date | None:
    firsts = [
        session.scalar(select(func.min(Click.at))),
        session.scalar(select(func.min(Start.at))),
        session.scalar(select(func.min(ConsentEvent.at))),
    ]
    query = counts.impression_query()
    if query is not None:
        at = query.subquery().c.at
        firsts.append(session.scalar(select(func.min(at))))
    found = [stamp.astimezone(UTC).date() for stamp in firsts if stamp is not None]
    return min(found, default=None)


def _record(session: Session, days: set[date], seen: dict[date, int], now: datetime) -> None:
    """Note when each day was computed; a dirty day is clean up to the mark this run saw."""
    upsert = counts.insert_for(session)
    for day in sorted(days):
        settled = now >= counts.midnight(day) + timedelta(days=1 + max(RETENTION_DAYS))
        values: dict[str, Any] = {"refreshed_at": now, "settled": settled}
        if day in seen:
            values["done"] = seen[day]
        statement = (
            upsert(RollupDay)
            .values({"day": day, "marked": 0, "done": 0, **values})
            .on_conflict_do_update(index_elements=["day"], set_=values)
        )
        session.execute(statement)


# dialects ----------------------------------------------------------------------------------


def _lock(session: Session, wait: bool) -> bool:
    if session.get_bind().dialect.name != "postgresql":
        # SQLite: the writer session's BEGIN IMMEDIATE holds the database's one write lock.
        return True
    if wait:
        session.execute(select(func.pg_advisory_xact_lock(LOCK_KEY)))
    elif not session.scalar(select(func.pg_try_advisory_xact_lock(LOCK_KEY))):
        return False
    # Grouping a day of clicks: with the default 4 MB the planner sorts them on disk instead
    # of hashing them in memory, and it compiles the statement with JIT, which costs more
    # than it saves here (together ~35% of a refresh). For this transaction only.
    session.execute(text("SET LOCAL work_mem = '64MB'"))
    session.execute(text("SET LOCAL jit = off"))
    return True


# days --------------------------------------------------------------------------------------


def _as_day(value: date | datetime) -> date:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("naive datetime given for a UTC day")
        return value.astimezone(UTC).date()
    return value
