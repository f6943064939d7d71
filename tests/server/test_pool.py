"""PostgreSQL pool exhausted (ACQUISITION_POOL_SIZE=1: one connection plus one overflow): slow
requests hold both, and the next API call or webhook gets a 503 with Retry-After within the
pool timeout instead of hanging; the redirect, which needs no connection for a known link,
keeps answering."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import create_engine, text

from acquisition import apikeys
from acquisition.db import Database
from tests import deliveries as d
from tests.conftest import DATABASES
from tests.factories import make_channel, make_link
from tests.server_process import PHONE, free_port, postgres_database, serve, server_env

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif("postgresql" not in DATABASES, reason="PostgreSQL tests are off"),
]


@pytest.fixture
def own() -> Iterator[tuple[str, Database]]:
    with postgres_database() as (_name, url, db):
        yield url, db


def waiting_on_the_lock(db: Database, requests: int, timeout: float = 10) -> None:
    """Until `requests` backends wait for the lock on api_keys (each holding a connection)."""
    deadline = time.monotonic() + timeout
    while True:
        with db.engine.connect() as conn:
            waiting = conn.scalar(
                text(
                    "SELECT count(*) FROM pg_locks JOIN pg_class ON pg_class.oid = relation"
                    " WHERE relname = 'api_keys' AND NOT granted"
                )
            )
        if waiting >= requests:
            return
        assert time.monotonic() < deadline, f"{waiting} of {requests} requests wait on the lock"
        time.sleep(0.02)


def test_an_exhausted_pool_answers_503_within_a_second(
    own: tuple[str, Database], tmp_path: Path
) -> None:
    postgres_url, db = own
    channel = make_channel(db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    link = make_link(db, [channel.id])
    with db.writer.begin() as s:
        token = apikeys.create(s, "pool")[1]
    auth = {"authorization": f"Bearer {token}"}
    env = server_env(
        postgres_url,
        tmp_path / "spool",
        free_port(),
        ACQUISITION_POOL_SIZE="1",
        ACQUISITION_POOL_TIMEOUT="0.5",
    )
    locker = create_engine(postgres_url)
    with serve(env, tmp_path / "server.log", workers=1) as server:
        web = httpx.Client(base_url=server.url, timeout=15)
        assert web.get(f"/{link.code}", headers={"user-agent": PHONE}).status_code == 302
        held: list[int] = []
        with locker.connect() as conn:
            # Every API call reads api_keys first: locked, each one waits holding its connection.
            conn.execute(text("LOCK TABLE api_keys IN ACCESS EXCLUSIVE MODE"))
            slow = [
                threading.Thread(
                    target=lambda: held.append(
                        httpx.get(
                            f"{server.url}/api/v1/channels", headers=auth, timeout=15
                        ).status_code
                    )
                )
                for _ in range(2)
            ]
            for thread in slow:
                thread.start()
            # Both must hold the worker's two connections before the next call: a fixed sleep
            # sometimes let that call take a connection first and wait on the lock itself.
            waiting_on_the_lock(db, 2)

            started = time.monotonic()
            r = web.get("/api/v1/links", headers=auth)
            api_took = time.monotonic() - started
            assert r.status_code == 503 and r.headers["retry-after"].isdigit(), r.text
            assert r.headers["content-type"] == "application/problem+json"

            raw = d.encode(d.start("telegram", None, n=1, user=77))
            started = time.monotonic()
            hook = web.post(
                f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
            )
            hook_took = time.monotonic() - started
            assert hook.status_code == 503 and hook.headers["retry-after"].isdigit()

            started = time.monotonic()
            click = web.get(f"/{link.code}", headers={"user-agent": PHONE})
            click_took = time.monotonic() - started
            assert click.status_code == 302  # the link is cached; the click is spooled
            conn.rollback()  # releases the lock: the slow requests finish
        for thread in slow:
            thread.join(timeout=15)
        assert held == [200, 200]
        assert api_took < 1.5 and hook_took < 1.5, (api_took, hook_took)
        assert (
            web.post(
                f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
            ).status_code
            == 200
        )
        web.close()
    locker.dispose()
    print(
        f"\npool exhausted: API 503 in {api_took:.2f} s, webhook 503 in {hook_took:.2f} s, "
        f"redirect 302 in {click_took * 1000:.0f} ms; the held requests then completed"
    )
