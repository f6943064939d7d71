"""Draining cost per click with time-stamped refs (what `refs.make` gives) against fully random
ones, on a clicks table that already holds many clicks: the unique index on (ref, at) takes every
insert, and where an insert lands in it decides how many pages each drained chunk dirties.

Run:  .venv/bin/python tests/bench/drain_bench.py [--existing 300000] [--drained 40000]
      [--db sqlite,postgresql]
It drains chunks of 800 spooled lines (what the drainer sees at ~16k clicks/s) with the
drainer's own statements (on SQLite also the JSON one it falls back to; with ON CONFLICT as
when a chunk collides with clicks stored already, plain as otherwise) and prints, per
click: the CPU of this process and of the PostgreSQL backend, and the wall time. Clicks are
spaced as at 12k clicks/s, so stamps advance as in life.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path

from sqlalchemy import Engine, create_engine, text

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from acquisition import clicks, refs  # noqa: E402
from acquisition.config import Settings  # noqa: E402
from acquisition.db import connect, uncached  # noqa: E402
from tests.bench.redirect_bench import PHONE, SECRET, prepare  # noqa: E402

CHUNK = 800
RATE = 12_000  # clicks per second of simulated time
START = datetime(2026, 11, 27, 9, 0, 0)


def random_ref(_: int) -> str:
    """The former refs: 12 random characters."""
    return os.urandom(refs.LENGTH).translate(refs._LETTERS).decode()


def stamped_ref(n: int) -> str:
    step = int((START.timestamp() + n / RATE) * 16)
    return refs.stamp(step) + random_ref(n)[refs.STAMP :]


def line(n: int, make_ref: Callable[[int], str], target: tuple[int, int]) -> bytes:
    """A person's click on the link and channel of `target`, as the redirect spools it."""
    row = {
        "link_id": target[0],
        "channel_id": target[1],
        "ref": make_ref(n),
        "at": START + timedelta(seconds=n / RATE),
        "visitor": "human",
        "device": "mobile",
        "via": "link",
        "link_version": 1,
        "ip": "203.0.113.0",
        "user_agent": PHONE,
        "source": "bench",
    }
    return clicks._encode([row.get(name) for name in clicks.COLUMNS])


def backend_cpu(pid: int | None) -> float:
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


Statement = Callable[[list[bytes]], tuple[str, tuple[str, ...]]]


def as_json(dialect: str, idempotent: bool = False) -> Statement:
    """The drainer's JSON statement: the chunk is one parameter."""
    sql = clicks._insert_sql(dialect, idempotent)
    return lambda lines: (sql, (clicks._json_array(lines),))


def as_literals(idempotent: bool = False) -> Statement:
    """The drainer's SQLite statement: the chunk spelled as literals (building it is timed)."""

    def statement(lines: list[bytes]) -> tuple[str, tuple[str, ...]]:
        sql = clicks._values_sql(lines, idempotent)
        assert sql is not None
        return sql, ()

    return statement


def drain(
    engine: Engine,
    statement: Statement,
    first: int,
    count: int,
    make_ref: Callable[[int], str],
    target: tuple[int, int],
) -> tuple[float, float, float]:
    """Insert `count` clicks chunk by chunk; (process CPU, backend CPU, wall) in seconds of the
    inserts alone (the spool lines are made beforehand)."""
    chunks = []
    for start in range(first, first + count, CHUNK):
        chunks.append([line(n, make_ref, target)[:-1] for n in range(start, start + CHUNK)])
    with engine.connect() as connection:
        pid = None
        if engine.dialect.name == "postgresql":
            pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        connection.commit()
        cpu, backend, wall = time.process_time(), backend_cpu(pid), time.perf_counter()
        for chunk in chunks:
            connection.exec_driver_sql(*statement(chunk))
            connection.commit()
        return (
            time.process_time() - cpu,
            backend_cpu(pid) - backend,
            time.perf_counter() - wall,
        )


def database(name: str, postgres: str, tmp: Path) -> str:
    if name == "sqlite":
        return f"sqlite:///{tmp}/drain-{time.time_ns()}.db"
    admin = create_engine(postgres, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("DROP DATABASE IF EXISTS acq_drain WITH (FORCE)"))
        conn.execute(text("CREATE DATABASE acq_drain"))
    admin.dispose()
    return postgres.rsplit("/", 1)[0] + "/acq_drain"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--existing", type=int, default=300_000)
    parser.add_argument("--drained", type=int, default=40_000)
    parser.add_argument("--db", default="sqlite,postgresql")
    parser.add_argument("--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/test")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.db.split(","):
            # (row, refs, spelled as SQL literals, ON CONFLICT as when a chunk collides)
            kinds: list[tuple[str, Callable[[int], str], bool, bool]] = [
                ("random refs", random_ref, False, False),
                ("stamped refs", stamped_ref, False, False),
                ("stamped, ON CONFLICT", stamped_ref, False, True),
            ]
            if name == "sqlite":
                kinds.append(("stamped, SQL", stamped_ref, True, False))
                kinds.append(("stamped, SQL, ON CONF.", stamped_ref, True, True))
            for kind, make_ref, literal, idempotent in kinds:
                url = database(name, args.postgres, Path(tmp))
                prepare(url)
                db = connect(Settings(database_url=url, secret_key=SECRET))
                engine = db.engine
                json_statement = as_json(engine.dialect.name)
                with engine.connect() as connection:
                    link_id, channel_id = connection.execute(
                        text("SELECT link_id, channel_id FROM link_channels")
                    ).one()
                target = (link_id, channel_id)
                for start in range(0, args.existing, 50 * CHUNK):  # the clicks already stored
                    count = min(50 * CHUNK, args.existing - start)
                    drain(engine, json_statement, start, count, make_ref, target)
                measured = engine
                if literal:
                    measured = uncached(engine) or engine
                cpu, backend, wall = drain(
                    measured,
                    (as_literals if literal else partial(as_json, engine.dialect.name))(idempotent),
                    args.existing,
                    args.drained,
                    make_ref,
                    target,
                )
                per = 1e6 / args.drained
                print(
                    f"{name:10} {kind:22} after {args.existing} clicks: "
                    f"this process {cpu * per:5.1f} us/click   "
                    f"backend {backend * per:5.1f} us/click   wall {wall * per:5.1f} us/click"
                )
                if measured is not engine:
                    measured.dispose()
                db.dispose()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
