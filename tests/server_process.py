"""A real `acquisition serve` in a child process group on a free loopback port, and a bounded
client pool that loads it from threads, remembering what the server acknowledged."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
from sqlalchemy import Connection, create_engine, text
from sqlalchemy.engine import make_url

from acquisition.config import Settings
from acquisition.db import Database, connect, migrate
from tests.conftest import POSTGRES_URL, SECRET
from tests.live_server import free_port as free_port  # re-exported for the server tests

ROOT = Path(__file__).resolve().parent.parent
PHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) Mobile/15E148 Safari/604.1"


@dataclass
class Server:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def signal(self, sig: int) -> None:
        """To the whole group: the uvicorn parent and every worker."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


def server_env(database_url: str, spool: Path, port: int, **extra: str) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("ACQUISITION_") or key.startswith("ACQUISITION_TEST_")
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        ACQUISITION_DATABASE_URL=database_url,
        ACQUISITION_BASE_URL=f"http://127.0.0.1:{port}",
        ACQUISITION_SECRET_KEY=SECRET,
        ACQUISITION_SPOOL_DIR=str(spool),
        ACQUISITION_LINK_CACHE_SECONDS="60",
        # The load comes from one address: keep the per-address limits out of the way.
        ACQUISITION_RATE_LIMIT_API="100000/minute",
        ACQUISITION_RATE_LIMIT_HOOKS="100000/minute",
    )
    env.update(extra)
    return env


@contextlib.contextmanager
def serve(
    env: dict[str, str], log: Path, workers: int = 2, port: int | None = None
) -> Iterator[Server]:
    """`acquisition serve` until the block ends (then SIGTERM, and SIGKILL if it lingers)."""
    port = port or int(env["ACQUISITION_BASE_URL"].rsplit(":", 1)[1])
    command = [sys.executable, "-m", "acquisition", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers), "--log-format", "json"]
    with log.open("ab") as out:
        proc = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=out, stderr=out, start_new_session=True
        )
    server = Server(proc, port, log)
    try:
        wait_healthy(server)
        yield server
    finally:
        if proc.poll() is None:
            server.signal(signal.SIGTERM)
            try:
                proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                server.signal(signal.SIGKILL)
                proc.wait(timeout=10)


def wait_healthy(server: Server, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise AssertionError(f"the server exited early:\n{server.output()}")
        try:
            if httpx.get(f"{server.url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"the server did not come up:\n{server.output()}")


def ref_of(location: str) -> str:
    return parse_qs(urlsplit(location).query)["start"][0]


@dataclass
class Load:
    """Threads sending requests until stopped, for at most `seconds` and `limit` requests each.

    `request(client, n)` sends the n-th request and returns what the server acknowledged
    (a ref, an update id), or None; transport errors (the server going away) end a thread.
    """

    request: Callable[[httpx.Client, int], str | None]
    threads: int = 8
    seconds: float = 20
    limit: int = 5000
    acknowledged: list[str] = field(default_factory=list)
    sent: int = 0
    errors: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> Load:
        self._started = time.monotonic()
        for t in range(self.threads):
            worker = threading.Thread(target=self._run, args=(t,), daemon=True)
            worker.start()
            self._workers.append(worker)
        return self

    def _run(self, t: int) -> None:
        deadline = time.monotonic() + self.seconds
        with httpx.Client(timeout=10) as client:
            for i in range(self.limit):
                if self._stop.is_set() or time.monotonic() > deadline:
                    return
                try:
                    got = self.request(client, t * self.limit + i)
                except httpx.TransportError:
                    with self._lock:
                        self.errors += 1
                    if self._stop.is_set():
                        return
                    time.sleep(0.05)  # the server is restarting or gone: don't spin
                    continue
                with self._lock:
                    self.sent += 1
                    if got is not None:
                        self.acknowledged.append(got)

    def wait_for(self, count: int, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(self.acknowledged) >= count, f"only {len(self.acknowledged)} acknowledged"

    def rate(self) -> float:
        """Requests answered per second so far."""
        return self.sent / max(time.monotonic() - self._started, 1e-9)

    def stop(self) -> Load:
        self._stop.set()
        for worker in self._workers:
            worker.join(timeout=15)
        self.elapsed = time.monotonic() - self._started
        return self


@contextlib.contextmanager
def postgres_admin() -> Iterator[Connection]:
    engine = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            yield conn
    finally:
        engine.dispose()


@contextlib.contextmanager
def postgres_database() -> Iterator[tuple[str, str, Database]]:
    """A PostgreSQL database of the test's own (name, URL, migrated Database), dropped after:
    tests that cut connections or lock tables must not touch the shared test database."""
    name = f"acq_srv_{os.getpid()}_{time.time_ns() % 10**8}"
    with postgres_admin() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    db = connect(Settings(database_url=url, secret_key=SECRET))
    try:
        migrate(db.engine)
        yield name, url, db
    finally:
        db.dispose()
        with postgres_admin() as conn:
            conn.execute(text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
