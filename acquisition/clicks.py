"""Durable click recording: a click is on disk before its redirect goes out.

Each redirect appends its click as one line to this worker's spool file and waits until an
fsync covers it; one fsync thread serves every click that arrived while the previous fsync ran
(group commit), and the 302 goes out only after that. A drainer thread moves spooled clicks into
the `clicks` table in large batches, idempotently (the ref is unique, replays insert nothing).

Why not INSERT+COMMIT per click: a commit per click reached ~0.12x of a bare redirect, and a
database commit on the hot path also means a database outage stops printed QR codes from
working. The spool keeps both promises: nothing acknowledged is lost (kill -9 included: the
file is replayed on the next start, or by a live sibling worker that finds it unlocked), and
clicks keep being recorded while the database is down; they reach it when it is back.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine

from acquisition.errors import Unavailable
from acquisition.models import Click

log = logging.getLogger(__name__)

COLUMNS = tuple(column.name for column in Click.__table__.columns if column.name != "id")
_AT = COLUMNS.index("at")
_REF = COLUMNS.index("ref")
_VISITOR = COLUMNS.index("visitor")
DRAIN_CHUNK = 2000
# Under load the drainer works in batches at most this often, so it takes the GIL rarely.
DRAIN_PAUSE = 0.05
ROTATE_BYTES = 8 * 1024 * 1024


class ClickSpool:
    def __init__(
        self,
        directory: Path,
        engine: Engine,
        on_stored: Callable[[Sequence[str]], None] | None = None,
    ) -> None:
        self.directory = directory
        self.engine = engine
        self.on_stored = on_stored
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lock = threading.Condition()
        self._fd = -1
        self._path: Path | None = None
        self._written = 0  # bytes appended to the current file
        self._synced = 0  # bytes covered by an fsync
        self._drained = 0  # bytes moved into the database
        self._inflight: asyncio.Task[None] | None = None
        # fdatasync runs off the loop (it releases the GIL) so requests keep flowing meanwhile.
        self._syncer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="click-fsync")
        self._closing = False
        self._threads: list[threading.Thread] = []
        mark = "?" if engine.dialect.paramstyle == "qmark" else "%s"
        self._sql = (
            f"INSERT INTO clicks ({', '.join(COLUMNS)}) "
            f"VALUES ({', '.join([mark] * len(COLUMNS))}) ON CONFLICT (ref) DO NOTHING"
        )
        self._sqlite = engine.dialect.name == "sqlite"

    # life cycle ---------------------------------------------------------------------------------

    def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._open_new_file()
        thread = threading.Thread(target=self._drain_forever, name="click-drain", daemon=True)
        thread.start()
        self._threads.append(thread)

    async def close(self) -> None:
        """Stop taking clicks, make sure every acknowledged one is synced, drain what we can."""
        self._closing = True
        while self._inflight is not None:
            await asyncio.sleep(0.001)
        self._syncer.shutdown()
        with self._lock:
            self._lock.notify_all()
        await asyncio.get_running_loop().run_in_executor(None, self._join)

    def _join(self) -> None:
        for thread in self._threads:
            thread.join(timeout=30)
        with self._lock:
            drained = self._drained == self._written
        os.close(self._fd)
        if drained and self._path is not None:
            self._path.unlink(missing_ok=True)

    def _open_new_file(self) -> None:
        name = f"clicks-{os.getpid()}-{time.time_ns()}.jsonl"
        path = self.directory / name
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        # The lock says "a live worker owns this file"; a sibling that can take it drains it.
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fsync_directory(self.directory)
        old_fd, old_path = self._fd, self._path
        self._fd, self._path = fd, path
        self._written = self._synced = self._drained = 0
        if old_fd >= 0 and old_path is not None:
            os.close(old_fd)
            old_path.unlink(missing_ok=True)

    # the hot path -------------------------------------------------------------------------------

    async def record(self, row: dict[str, Any]) -> str:
        """Spool one click; return its ref once an fsync covers it."""
        if self._closing or self._loop is None:
            raise Unavailable("the service is shutting down")
        values = [row[name] for name in COLUMNS]
        values[_AT] = row["at"].isoformat()
        line = (json.dumps(values, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self._fd, line)
        except OSError as error:
            log.error("click spool write failed: %s", error)
            raise Unavailable("clicks cannot be stored right now") from None
        with self._lock:
            self._written += len(line)
            target = self._written
        # Group commit: while one fsync runs, every click written meanwhile waits for the next
        # one, which then covers them all.
        while self._synced < target:
            if self._inflight is None:
                self._inflight = self._loop.create_task(self._sync())
            await asyncio.shield(self._inflight)
        return row["ref"]  # type: ignore[no-any-return]

    async def _sync(self) -> None:
        assert self._loop is not None
        with self._lock:
            target = self._written
        try:
            await self._loop.run_in_executor(self._syncer, os.fdatasync, self._fd)
        except OSError as error:
            log.error("click spool fsync failed: %s", error)
            raise Unavailable("clicks cannot be stored right now") from None
        finally:
            self._inflight = None
        with self._lock:
            self._synced = max(self._synced, target)
            self._lock.notify_all()

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
                start, end, path, closing = self._drained, self._synced, self._path, self._closing
            try:
                if time.monotonic() >= next_scan:
                    self.drain_orphans()
                    next_scan = time.monotonic() + 30
                if end > start and path is not None:
                    done = self._drain_file(path, start, end)
                    with self._lock:
                        self._drained = max(self._drained, start + done)
                        if self._drained == self._written >= ROTATE_BYTES:
                            self._open_new_file()
                        self._lock.notify_all()
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
            time.sleep(DRAIN_PAUSE)

    def _drain_file(self, path: Path, start: int, end: int) -> int:
        """Insert the complete lines in [start, end); return how many bytes were consumed."""
        with path.open("rb") as spool:
            spool.seek(start)
            data = spool.read(end - start)
        consumed = data.rfind(b"\n") + 1
        rows = [self._db_values(line) for line in data[:consumed].splitlines() if line]
        for i in range(0, len(rows), DRAIN_CHUNK):
            chunk = rows[i : i + DRAIN_CHUNK]
            with self.engine.begin() as connection:
                connection.exec_driver_sql(self._sql, chunk)
            if self.on_stored is not None:
                refs = [row[_REF] for row in chunk if row[_VISITOR] == "human"]
                if refs:
                    self.on_stored(refs)
        return consumed

    def _db_values(self, line: bytes) -> tuple[Any, ...]:
        values = json.loads(line)
        at = datetime.fromisoformat(values[_AT]).astimezone(UTC)
        values[_AT] = at.strftime("%Y-%m-%d %H:%M:%S.%f") if self._sqlite else at
        return tuple(values)

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
                moved += self._drain_file(path, 0, size)
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
                self._lock.wait(timeout=min(remaining, 0.05))
            return True


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
