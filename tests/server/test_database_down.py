"""The database goes away under a running server (PostgreSQL refuses connections and its
sessions are killed): the API and webhooks answer 503 with Retry-After and store nothing; the
redirect keeps sending people to the chat for the links it knows, spooling their clicks, and
every spooled click reaches the database once it is back."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select, text

from acquisition import apikeys
from acquisition.db import Database
from acquisition.models import Click, Link, WebhookEvent
from tests import deliveries as d
from tests.conftest import DATABASES
from tests.factories import make_channel, make_link
from tests.server_process import (
    PHONE,
    free_port,
    postgres_admin,
    postgres_database,
    ref_of,
    serve,
    server_env,
)

pytestmark = [
    pytest.mark.server,
    pytest.mark.skipif("postgresql" not in DATABASES, reason="PostgreSQL tests are off"),
]


@dataclass
class Outage:
    """A database of its own that the test can close and reopen to new connections."""

    name: str
    url: str
    db: Database

    def cut(self) -> None:
        with postgres_admin() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false'))
            conn.execute(
                text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :n"),
                {"n": self.name},
            )

    def restore(self) -> None:
        with postgres_admin() as conn:
            conn.execute(text(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true'))


@pytest.fixture
def outage() -> Iterator[Outage]:
    with postgres_database() as (name, url, db):
        yield Outage(name, url, db)


def count(db: Database, model: type) -> int:
    db.engine.dispose()  # the test's own pool was killed with the outage
    with db.reader() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_database_down_api_and_webhooks_503_redirect_spools_then_catches_up(
    outage: Outage, tmp_path: Path
) -> None:
    channel = make_channel(outage.db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    link = make_link(outage.db, [channel.id], source="billboard")
    with outage.db.writer.begin() as s:
        token = apikeys.create(s, "ops")[1]
    auth = {"authorization": f"Bearer {token}"}
    port = free_port()
    env = server_env(
        outage.url,
        tmp_path / "spool",
        port,
        ACQUISITION_LINK_CACHE_SECONDS="0.5",
        ACQUISITION_POOL_TIMEOUT="1",
    )
    with serve(env, tmp_path / "server.log", workers=1) as server:
        web = httpx.Client(base_url=server.url, timeout=10)
        assert web.get(f"/{link.code}", headers={"user-agent": PHONE}).status_code == 302
        links_before = count(outage.db, Link)
        outage.cut()
        time.sleep(0.6)  # past the link cache's lifetime: the redirect must try the database
        started = time.monotonic()

        created = web.post("/api/v1/links", headers=auth, json={"channels": [channel.id]})
        assert created.status_code == 503, created.text
        assert created.headers["retry-after"].isdigit()
        assert created.headers["content-type"] == "application/problem+json"
        listed = web.get("/api/v1/links", headers=auth)
        assert listed.status_code == 503 and "retry-after" in listed.headers

        raw = d.encode(d.start("telegram", None, n=7, user=4242))
        hook = web.post(
            f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
        )
        assert hook.status_code == 503 and hook.headers["retry-after"].isdigit()

        refs = []
        for _ in range(50):
            r = web.get(f"/{link.code}", headers={"user-agent": PHONE})
            assert r.status_code == 302, r.text
            assert r.headers["location"].startswith("https://t.me/shop_bot?start=")
            assert "x-click-recorded" not in r.headers
            refs.append(ref_of(r.headers["location"]))
        unknown = web.get("/ZZZZZZZ")  # never seen by this worker: it cannot know
        assert unknown.status_code == 503 and "retry-after" in unknown.headers
        took = time.monotonic() - started
        metrics = web.get("/metrics").text
        assert re.search(r"^acquisition_database_up 0\.0$", metrics, re.M)
        backlog = re.search(r"^acquisition_click_spool_backlog_bytes (\S+)$", metrics, re.M)
        assert backlog is not None and float(backlog.group(1)) > 0
        assert web.get("/healthz").status_code == 200

        outage.restore()
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with outage.db.reader() as s:
                stored = set(s.scalars(select(Click.ref).where(Click.ref.in_(refs))))
            if stored == set(refs):
                break
            time.sleep(0.2)
        assert stored == set(refs), f"{len(set(refs) - stored)} spooled clicks never arrived"
        # Nothing of the refused requests was stored half-way; the platform's retry now lands.
        assert count(outage.db, Link) == links_before
        with outage.db.reader() as s:
            assert s.scalar(select(func.count()).select_from(WebhookEvent)) == 0
        retried = web.post(
            f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
        )
        assert retried.status_code == 200
        assert (
            web.post("/api/v1/links", headers=auth, json={"channels": [channel.id]}).status_code
            == 201
        )
        web.close()
    assert count(outage.db, WebhookEvent) == 1
    print(
        f"\ndatabase down: API and webhooks 503 + Retry-After, {len(refs)} redirects served "
        f"from the cache and spooled in {took:.2f} s, all {len(refs)} stored after recovery"
    )
