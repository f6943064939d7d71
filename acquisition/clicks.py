"""Durable click recording: a click is on disk before its redirect goes out.

Each redirect encodes its click as one line and waits. At the end of the loop iteration the
lines of every click handled in it are appended to this worker's spool file with one write,
and a small helper process (`spool_sync`) fdatasyncs the file; the 302s go out when it
answers, and every group that waits when an fdatasync starts shares it (group commit; a lone
click under load waits up to a millisecond for company, see `ClickSpool._flush`). A
drainer thread moves spooled clicks into the `clicks` table in large batches, idempotently
(a click's ref and time are unique, replays insert nothing).

Why not INSERT+COMMIT per click: a commit per click reached ~0.12x of a bare redirect, and a
database commit on the hot path also means a database outage stops printed QR codes from
working. The spool keeps both promises: nothing acknowledged is lost (kill -9 included: the
file is replayed on the next start, or by a live sibling worker that finds it unlocked), and
clicks keep being recorded while the database is down; they reach it when it is back.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, TimeoutError
from sqlalchemy.orm import Session

from acquisition import db, rollups, spool_sync
from acquisition.errors import Unavailable
from acquisition.models import Click

log = logging.getLogger(__name__)

COLUMNS = tuple(column.name for column in Click.__table__.columns if column.name != "id")
DRAIN_CHUNK = 5000
# Under load the drainer works in batches at most this often, so it takes the GIL rarely. On
# PostgreSQL every batch is also a few round trips and a WAL flush beside the redirects' own
# fdatasyncs: batches five times larger there took the redirect from 0.527 to 0.563 of a bare
# 302 under keep-alive load (6 interleaved rounds), and made no difference on SQLite (0.551 vs
# 0.541). Clicks then reach PostgreSQL up to a quarter of a second after their redirect.
DRAIN_PAUSE = {"postgresql": 0.25}
DRAIN_PAUSE_DEFAULT = 0.05
ROTATE_BYTES = 8 * 1024 * 1024
# A lone click that comes this soon after the previous group went out waits, at most this
# long, for others to share its fdatasync (see `_flush`).
COMPANY_WAIT = 0.001


class ClickSpool:
    def __init__(
        self,
        directory: Path,
        engine: Engine,
        on_stored: Callable[[Sequence[str]], None] | None = None,
        company_wait: float = COMPANY_WAIT,
    ) -> None:
        self.directory = directory
        self.company_wait = company_wait
        self.engine = engine
        self.on_stored = on_stored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Condition()
        # Positions count bytes over the life of this spool, across its files, so that an
        # fsync's answer can never be mistaken for a position in a newer file.
        self._fd = -1
        self._path: Path | None = None
        self._base = 0  # position where the current file begins
        self._written = 0  # bytes appended
        self._synced = 0  # bytes covered by an fsync
        self._drained = 0  # bytes moved into the database
        # Lines of clicks not yet written, and their redirects: the next group commit's.
        self._pending: list[bytes] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._syncing = False  # a group is being written and synced: later clicks wait for it
        self._last_flush = float("-inf")  # when the last group went out (loop clock)
        self._lonely = False  # the last lone click waited for company and none came
        # The group the fsync helper is syncing (one at a time): (its redirects, end position).
        self._inflight: tuple[list[asyncio.Future[None]], int] | None = None
        self._helper: subprocess.Popen[bytes] | None = None
        self._closing = False
        self._threads: list[threading.Thread] = []
        self._pause = DRAIN_PAUSE.get(engine.dialect.name, DRAIN_PAUSE_DEFAULT)
        self._hurry = threading.Event()  # someone waits for the drain: skip the next pause
        # Plain inserts; the idempotent ones (ON CONFLICT) for replays and chunks that failed.
        self._sql = {
            idempotent: _insert_sql(engine.dialect.name, idempotent) for idempotent in (False, True)
        }
        # SQLite: chunks go in as literal multi-row inserts (see `_values_sql`), each its own
        # statement, on connections that do not cache them.
        self._literal = db.uncached(engine)

    # life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._fd, self._path = self._new_file()
        self._start_helper()
        thread = threading.Thread(target=self._drain_forever, name="click-drain", daemon=True)
        thread.start()
        self._threads.append(thread)

    async def close(self) -> None:
        """Stop taking clicks, make sure every acknowledged one is synced, drain what we can."""
        self._closing = True
        while self._syncing:
            await asyncio.sleep(0.001)
        self._stop_helper()
        with self._lock:
            self._lock.notify_all()
        self._hurry.set()
        await asyncio.get_running_loop().run_in_executor(None, self._join)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)
        with self._lock:
            drained = self._drained == self._written
        os.close(self._fd)
        if self._literal is not None:
            self._literal.dispose()
        if drained and self._path is not None:
            self._path.unlink(missing_ok=True)

    def _new_file(self) -> tuple[int, Path]:
        name = f"clicks-{os.getpid()}-{time.time_ns()}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # The lock says "a live worker owns this file"; a sibling that can take it drains it.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_directory(self.directory)
        return fd, path

    def _rotate(self) -> None:
        """In the drainer, once the current file is all in the database: start a new one.

        Everything slow (creating, syncing the directory, deleting a large file) happens
        outside the lock that every redirect takes.
        """
        fd, path = self._new_file()
        with self._lock:
            if self._drained == self._written:  # nothing waits for a sync of the old file
                old_fd, old_path = self._fd, self._path
                self._fd, self._path, self._base = fd, path, self._written
            else:
                old_fd, old_path = fd, path  # clicks came in meanwhile: next time
        os.close(old_fd)
        if old_path is not None:
            old_path.unlink(missing_ok=True)

    # the hot path -------------------------------------------------------------------------------

    async def record(self, row: dict[str, Any]) -> str:
        """Spool one click; return its ref once an fsync covers it."""
        if self._closing or self._loop is None:
            raise Unavailable("the service is shutting down")
        self._pending.append(_encode([row[name] for name in COLUMNS]))
        waiter = self._loop.create_future()
        self._waiters.append(waiter)
        # Group commit: while one fdatasync runs, every click that arrives meanwhile waits for
        # the next one, which then covers them all. The first asks for it at the end of this
        # loop iteration, so the clicks of the requests handled in the same iteration share it.
        if not self._syncing:
            self._syncing = True
            self._loop.call_soon(self._flush)
        await waiter
        return row["ref"]

    def _flush(self, waited: bool = False) -> None:
        """On the loop: append the pending clicks with one write, ask the helper to sync them.

        When clicks come one per loop iteration (each on a new connection, as real clicks do),
        nearly every group held a single click, so each click paid for a whole fdatasync round
        trip in loop and helper CPU. So a lone click that comes within `company_wait` of the
        previous group waits out the rest of that time for company, as a database's commit
        delay does. Only a lone click, and only then: one after a quiet spell goes out at once,
        so does a larger group, and a client that clicks one at a time is no longer kept
        waiting once a wait has found nobody.
        """
        if not self._pending:
            self._syncing = False
            return
        assert self._loop is not None
        now = self._loop.time()
        if waited:
            self._lonely = len(self._pending) == 1
        elif len(self._pending) > 1:
            self._lonely = False
        elif not self._lonely and now < self._last_flush + self.company_wait:
            self._loop.call_at(self._last_flush + self.company_wait, self._flush, True)
            return
        self._last_flush = now
        data, waiters = b"".join(self._pending), self._waiters
        self._pending, self._waiters = [], []
        try:
            path, end = self._append(data)
        except OSError as error:
            log.error("click spool write failed: %s", error)
            self._refuse(waiters)
            return
        try:
            helper = self._helper or self._start_helper()
            assert helper.stdin is not None
            os.write(helper.stdin.fileno(), os.fsencode(path) + b"\0")
        except OSError as error:  # the helper is gone: a new one syncs from the next group on
            log.error("click spool fsync helper failed: %s", error)
            self._helper_lost()
            self._refuse(waiters)
            return
        self._inflight = (waiters, end)

    def _refuse(self, waiters: list[asyncio.Future[None]]) -> None:
        """These clicks are not stored: their people reach the chat without a ref."""
        assert self._loop is not None
        _release(waiters, False)
        self._loop.call_soon(self._flush)  # the clicks that came in meanwhile, if any

    def _append(self, data: bytes) -> tuple[Path, int]:
        """Write a group to the spool file; (the file, the position after it)."""
        with self._lock:  # the file and its position change together (see _rotate)
            try:
                written = os.write(self._fd, data)
                if written != len(data):
                    raise OSError(errno.ENOSPC, "short write")
            except OSError:
                # No torn line may stay to swallow the next group's first line.
                with contextlib.suppress(OSError):
                    os.ftruncate(self._fd, self._written - self._base)
                raise
            self._written += written
            assert self._path is not None
            return self._path, self._written

    def _on_synced(self) -> None:
        """On the loop, when the helper answers: release the synced group's redirects."""
        assert self._helper is not None and self._helper.stdout is not None
        try:
            answer = os.read(self._helper.stdout.fileno(), 1)
        except BlockingIOError:
            return
        if not answer or self._inflight is None:
            log.error("click spool fsync helper exited (%s)", self._helper.poll())
            self._helper_lost()
        else:
            (waiters, end), self._inflight = self._inflight, None
            ok = answer == b"1"
            if ok:
                with self._lock:
                    self._synced = max(self._synced, end)
                    self._lock.notify_all()
            else:
                log.error("click spool fsync failed")
            _release(waiters, ok)
        self._flush()  # the clicks that came in meanwhile, if any

    def _start_helper(self) -> subprocess.Popen[bytes]:
        assert self._loop is not None
        helper = subprocess.Popen(
            # Run by path, isolated: it needs only the standard library, so it starts even
            # where the worker found this package through its own sys.path.
            [sys.executable, "-I", spool_sync.__file__],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert helper.stdout is not None
        os.set_blocking(helper.stdout.fileno(), False)
        self._loop.add_reader(helper.stdout.fileno(), self._on_synced)
        self._helper = helper
        return helper

    def _helper_lost(self) -> None:
        """The helper died: the group it did not answer counts as not stored (its people reach
        the chat without a ref); the next group starts a new helper."""
        self._stop_helper()
        if self._inflight is not None:
            _release(self._inflight[0], False)
            self._inflight = None

    def _stop_helper(self) -> None:
        helper, self._helper = self._helper, None
        if helper is None:
            return
        assert helper.stdin is not None and helper.stdout is not None and self._loop is not None
        self._loop.remove_reader(helper.stdout.fileno())
        helper.stdin.close()  # its end of input: it exits
        helper.stdout.close()
        try:
            helper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            helper.kill()
            helper.wait()

    # into the database --------------------------------------------------------------------------

    def _drain_forever(self) -> None:
        backoff = 0.05
        next_scan = float("-inf")  # replay files of dead workers first thing, then every 30 s
        while True:
            with self._lock:
                while (
                    self._drained == self._synced
                    and not self._closing
                    and time.monotonic() < next_scan
                ):
                    self._lock.wait(timeout=1.0)
                start, end, closing = self._drained, self._synced, self._closing
                path, base = self._path, self._base
            try:
                if time.monotonic() >= next_scan:
                    self.drain_orphans()
                    next_scan = time.monotonic() + 30
                if end > start and path is not None:
                    done = self._drain_file(path, start - base, end - base)
                    with self._lock:
                        self._drained = max(self._drained, start + done)
                        full = self._drained == self._written >= self._base + ROTATE_BYTES
                        self._lock.notify_all()
                    if full:
                        self._rotate()
                backoff = 0.05
            except Exception as error:  # the database is down: keep spooling, retry later
                if closing:
                    log.warning("click drain stopped with clicks still spooled: %s", error)
                    return
                log.warning("click drain failed, retrying in %.2fs: %s", backoff, error)
                time.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                continue
            with self._lock:
                if self._closing and self._drained == self._written:
                    return
            if not self._closing:
                self._hurry.wait(self._pause)
                self._hurry.clear()

    def _drain_file(self, path: Path, start: int, end: int, replay: bool = False) -> int:
        """Insert the complete lines in [start, end); return how many bytes were consumed.

        A chunk of lines goes to the database as one statement that the database takes apart
        itself, so draining costs this process (and the event loop's GIL) little per click.
        `replay`: the lines may be stored already (a dead worker's file).
        """
        with path.open("rb") as spool:
            spool.seek(start)
            data = spool.read(end - start)
        consumed = data.rfind(b"\n") + 1
        lines = data[:consumed].split(b"\n")[:-1]
        for i in range(0, len(lines), DRAIN_CHUNK):
            self._insert(lines[i : i + DRAIN_CHUNK], idempotent=replay)
        return consumed

    def _insert(self, lines: list[bytes], idempotent: bool = False) -> None:
        """Store a chunk the fast way; `idempotent`: skip the clicks already stored.

        A chunk is inserted plainly: ON CONFLICT costs the database a speculative insertion
        per row, a sixth of PostgreSQL's work per drained click (12.7 -> 10.7 us,
        tests/bench/drain_bench.py). On SQLite it is spelled as literals where it can be
        (see `_values_sql`). A chunk that fails so (one that collides with stored clicks, as
        after a commit whose answer was lost; a line the database refuses) is stored
        `_carefully`.
        """
        literal = None if self._literal is None else _values_sql(lines, idempotent)
        try:
            if self._literal is not None and literal is not None:
                self._run(self._literal, lines, literal, ())
            else:
                self._run(self.engine, lines, self._sql[idempotent], (_json_array(lines),))
        except Exception:
            # Including the database being away: `_carefully` tells that from a torn line
            # (which SQLite reports as an OperationalError too) and raises it.
            self._carefully(lines)
            return
        self._stored(lines)

    def _carefully(self, lines: list[bytes]) -> None:
        """Store a chunk with the JSON statement that skips stored clicks, and where that fails
        find out why, line by line: skip a torn line, or the one the database refuses."""
        try:
            self._run(self.engine, lines, self._sql[True], (_json_array(lines),))
        except Exception as error:
            # Only now look at the lines one by one (the happy path never parses them here).
            good = [line for line in lines if _well_formed(line)]
            if len(good) < len(lines):
                # A torn line (a crash mid-write leaves one, never acknowledged): skip it.
                log.error("skipped %d unreadable spooled click lines", len(lines) - len(good))
                if good:
                    self._carefully(good)
                return
            if not isinstance(error, DBAPIError) or isinstance(error, _AWAY):
                raise  # the database is away: the drainer retries the same lines later
            # The database refused the data itself: find the line, skip it, keep the rest.
            if len(lines) == 1:
                log.error("skipped a spooled click the database refused (%s): %r", error, lines[0])
                return
            middle = len(lines) // 2
            self._carefully(lines[:middle])
            self._carefully(lines[middle:])
            return
        self._stored(lines)

    def _run(self, engine: Engine, lines: list[bytes], sql: str, params: tuple[str, ...]) -> None:
        """One chunk's statement, in a transaction of its own."""
        with engine.begin() as connection:
            connection.exec_driver_sql(sql, params)
            # Clicks of an earlier day (a replayed or long-delayed spool) change that day's
            # rollup, which is otherwise refreshed only while it is recent.
            if earlier := _earlier_days(lines):
                with Session(bind=connection) as session:  # joins this transaction
                    rollups.mark_dirty(session, earlier)

    def _stored(self, lines: list[bytes]) -> None:
        if self.on_stored is not None:
            self.on_stored(_refs(lines))

    def drain_orphans(self) -> int:
        """Drain spool files left by workers that died (their lock is free), then delete them."""
        moved = 0
        for path in sorted(self.directory.glob("clicks-*.jsonl")):
            if path == self._path:
                continue
            try:
                fd = os.open(path, os.O_RDONLY)
            except FileNotFoundError:
                continue
            try:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    continue  # a live worker owns it
                size = os.fstat(fd).st_size
                moved += self._drain_file(path, 0, size, replay=True)
                path.unlink(missing_ok=True)
                log.info("replayed spooled clicks from %s", path.name)
            finally:
                os.close(fd)
        return moved

    def backlog(self) -> int:
        """Bytes of acknowledged clicks this worker has not yet moved into the database."""
        with self._lock:
            return self._written - self._drained

    def wait_drained(self, timeout: float = 10.0) -> bool:
        """Block until every acknowledged click is in the database (tests, shutdown)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while self._drained < self._written:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._hurry.set()
                self._lock.wait(timeout=min(remaining, 0.05))
            return True


def _release(waiters: list[asyncio.Future[None]], ok: bool) -> None:
    """On the loop: let a synced group's redirects go out (a cancelled one no longer waits)."""
    for waiter in waiters:
        if not waiter.done():
            if ok:
                waiter.set_result(None)
            else:
                waiter.set_exception(Unavailable("clicks cannot be stored right now"))


_REF = COLUMNS.index("ref")
_AT = COLUMNS.index("at")


def _field(line: bytes, index: int) -> bytes:
    """One of a spool line's first columns, as JSON text, without parsing the line: the columns
    up to `at` are numbers, null or a ref, none with a comma inside. Split in C, reading the
    refs of a chunk this way costs the GIL a sixth of what a regex did."""
    return line.split(b",", index + 1)[index].strip()


def _refs(lines: list[bytes]) -> list[str]:
    """The ref of each line."""
    refs = (_field(line, _REF) for line in lines)
    return [ref[1:-1].decode() for ref in refs if ref[:1] == b'"']


def _earlier_days(lines: list[bytes]) -> list[date]:
    """The UTC days before today that a chunk's clicks fall on, if any. A spool file is in time
    order, so its first and last lines bound the chunk's days: two lines are read, not all."""
    first, last = (_day(line) for line in (lines[0], lines[-1]))
    today = datetime.now(UTC).date()
    if first is None or last is None or min(first, last) >= today:
        return []
    start, end = min(first, last), min(max(first, last), today - timedelta(days=1))
    return [start + timedelta(days=n) for n in range((end - start).days + 1)]


def _day(line: bytes) -> date | None:
    try:
        return date.fromisoformat(_field(line, _AT)[1:11].decode())
    except (UnicodeDecodeError, ValueError):
        return None


_AWAY = (OperationalError, InterfaceError, TimeoutError)
_SKIP_STORED = " ON CONFLICT (ref, at) DO NOTHING"


def _encode(values: list[Any]) -> bytes:
    """One spool line: a compact JSON array, `at` in RFC 3339 (UTC), newline-terminated."""
    return orjson.dumps(values, option=orjson.OPT_APPEND_NEWLINE | orjson.OPT_NAIVE_UTC)


def _json_array(lines: list[bytes]) -> str:
    """The parameter of `_insert_sql`'s statement: the chunk's lines as one JSON array."""
    return (b"[" + b",".join(lines) + b"]").decode()


def _insert_sql(dialect: str, idempotent: bool = True) -> str:
    """INSERT ... SELECT over a JSON array of spooled lines (`idempotent`: on ref and time).

    One statement (no RETURNING): SQLite then hands the GIL back once per chunk, not per row.
    """
    columns = Click.__table__.columns
    picks = []
    for i, name in enumerate(COLUMNS):
        if dialect == "sqlite":
            item = f"json_extract(value, '$[{i}]')"
            if name == "at":
                item = _sqlite_at(item)
        else:
            item = f"(item->>{i})"
            if name == "at":
                item += "::timestamptz"
            elif columns[name].type.python_type is int:
                item += "::bigint"
        picks.append(item)
    # SQLite's upsert needs a WHERE after a SELECT to parse.
    source = (
        "json_each(?) WHERE true"
        if dialect == "sqlite"
        # jsonb: parsed once per chunk; each ->> on plain json parses its element again.
        else "jsonb_array_elements(%s::jsonb) AS item"
    )
    return f"INSERT INTO clicks ({', '.join(COLUMNS)}) SELECT {', '.join(picks)} FROM {source}" + (
        _SKIP_STORED if idempotent else ""
    )


def _sqlite_at(item: str) -> str:
    """ISO 8601 UTC -> the naive text SQLAlchemy stores (files written before microseconds
    were always spelled out may lack them)."""
    return (
        f"CASE WHEN instr({item}, '.') THEN replace(substr({item}, 1, 26), 'T', ' ')"
        f" ELSE replace(substr({item}, 1, 19), 'T', ' ') || '.000000' END"
    )


_VALUES_HEAD = (
    f"INSERT INTO clicks ({', '.join(COLUMNS)}) SELECT "
    + ", ".join(
        _sqlite_at(f"column{i + 1}") if name == "at" else f"column{i + 1}"
        for i, name in enumerate(COLUMNS)
    )
    + " FROM (VALUES ("
)
_VALUES_TAIL = ")) WHERE true"


def _values_sql(lines: list[bytes], idempotent: bool = True) -> str | None:
    """SQLite: a chunk of spooled lines as one literal multi-row INSERT; None if it can't be.

    SQLite's JSON functions parse a line again for each column they take from it, and the
    drain's CPU, next to the event loop, slows every redirect. As SQL literals the chunk is
    parsed once: 142k -> 87k instructions per drained click (callgrind), 33 -> 19 us of CPU
    (tests/bench/drain_bench.py; 12.7 -> 11.3 us on a faster machine). A line is a JSON array
    of numbers, nulls and strings; with no backslash in the chunk no string holds an escape,
    so every double quote opens or closes a string, and a string becomes an SQL literal by
    doubling its single quotes and turning its double quotes into single ones. That the chunk
    is exactly such lines is checked, not assumed: outside its strings there must be nothing
    but each line's brackets, digits, commas, spaces and `null`, so no name, operator or
    comment can come from a torn or garbled line. Any other chunk goes the JSON way, which
    says what is wrong.
    """
    chunk = b"\n".join(lines)
    if b"\\" in chunk or b"\0" in chunk or chunk.count(b'"') % 2:
        return None
    outside = b"".join(chunk.split(b'"')[::2]).translate(None, b"0123456789,nul ")
    if outside != b"[]\n" * (len(lines) - 1) + b"[]" or chunk.count(b"]\n[") != len(lines) - 1:
        return None
    body = chunk[1:-1].replace(b"]\n[", b"),(").replace(b"'", b"''").replace(b'"', b"'")
    try:
        return _VALUES_HEAD + body.decode() + _VALUES_TAIL + (_SKIP_STORED if idempotent else "")
    except UnicodeDecodeError:
        return None


def _well_formed(line: bytes) -> bool:
    try:
        values = json.loads(line)
    except ValueError:
        return False
    return isinstance(values, list) and len(values) == len(COLUMNS)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
