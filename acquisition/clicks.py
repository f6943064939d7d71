"""Durable click recording: a click is committed before its redirect goes out.

One INSERT+COMMIT per click caps the redirect at a fraction of what the server can answer, so
clicks are group-committed: each request hands its row to the writer thread and waits; the
writer inserts everything that queued up while the previous commit ran, in one transaction, and
then wakes all of those requests at once. Every 302 still follows its own row's commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError

from acquisition import refs
from acquisition.errors import Unavailable
from acquisition.models import Click

log = logging.getLogger(__name__)

MAX_BATCH = 1000


@dataclass
class _Pending:
    row: dict[str, Any]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[str | None]


@dataclass
class ClickWriter:
    engine: Engine
    on_batch: Callable[[int], None] | None = None
    _queue: list[_Pending] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _wake: threading.Condition = field(init=False)
    _closing: bool = False
    _thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self._wake = threading.Condition(self._lock)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="click-writer", daemon=True)
        self._thread.start()

    def close(self) -> None:
        """Write out everything queued, then stop (lifespan shutdown, after requests drained)."""
        with self._wake:
            self._closing = True
            self._wake.notify()
        if self._thread is not None:
            self._thread.join()

    async def record(self, row: dict[str, Any]) -> str | None:
        """Queue one click row and return once it is committed, with the ref it was stored under."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[str | None] = loop.create_future()
        with self._wake:
            if self._closing:
                raise Unavailable("the service is shutting down")
            self._queue.append(_Pending(row, loop, future))
            self._wake.notify()
        return await future

    def _run(self) -> None:
        while True:
            with self._wake:
                while not self._queue and not self._closing:
                    self._wake.wait()
                if not self._queue:
                    return
                batch, self._queue = self._queue[:MAX_BATCH], self._queue[MAX_BATCH:]
            error = self._write(batch)
            if self.on_batch is not None:
                self.on_batch(len(batch))
            for loop, items in _by_loop(batch).items():
                loop.call_soon_threadsafe(_settle, items, error)

    def _write(self, batch: list[_Pending]) -> Exception | None:
        try:
            with self.engine.begin() as connection:
                connection.execute(insert(Click), [item.row for item in batch])
            return None
        except IntegrityError:
            # A ref collided (60 random bits: rare, not impossible): redo row by row, new refs.
            return self._write_one_by_one(batch)
        except Exception as error:  # the store is down: callers decide what to answer
            log.error("click batch of %d not stored: %s", len(batch), error)
            return error

    def _write_one_by_one(self, batch: list[_Pending]) -> Exception | None:
        try:
            with self.engine.begin() as connection:
                for item in batch:
                    for _attempt in range(5):
                        try:
                            with connection.begin_nested():
                                connection.execute(insert(Click), [item.row])
                            break
                        except IntegrityError:
                            if item.row["ref"] is None:
                                raise
                            item.row["ref"] = refs.make()
            return None
        except Exception as error:
            log.error("click batch of %d not stored: %s", len(batch), error)
            return error


def _by_loop(batch: list[_Pending]) -> dict[asyncio.AbstractEventLoop, list[_Pending]]:
    groups: dict[asyncio.AbstractEventLoop, list[_Pending]] = {}
    for item in batch:
        groups.setdefault(item.loop, []).append(item)
    return groups


def _settle(items: list[_Pending], error: Exception | None) -> None:
    for item in items:
        if item.future.done():
            continue
        if error is None:
            item.future.set_result(item.row["ref"])
        else:
            item.future.set_exception(Unavailable("clicks cannot be stored right now"))
