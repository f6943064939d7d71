"""Rate limits: per API key and per IP on the API, per channel on webhooks, and a budget of
unknown codes per address on the public lookups that never slows down real clicks. (The admin
sign-in limiter is tested in test_admin.py.)"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from acquisition import apikeys
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Click
from acquisition.web import ratelimit
from acquisition.web.app import create_app
from tests import deliveries as d
from tests.conftest import BASE_URL, count, drained, inside_a_minute
from tests.factories import make_channel, make_link

PHONE = d.PHONE


def app_client(
    settings: Settings, db: Database, tmp_path: Path, client: tuple[str, int] = ("10.0.0.1", 1)
) -> TestClient:
    app = create_app(replace(settings, spool_dir=str(tmp_path / "spool")), db)
    inside_a_minute()
    return TestClient(app, base_url=BASE_URL, follow_redirects=False, client=client)


@pytest.fixture
def tight(settings: Settings) -> Settings:
    return replace(settings, rate_limit_api="5/minute", rate_limit_hooks="3/minute")


@pytest.fixture
def limited(tight: Settings, db: Database, tmp_path: Path) -> Iterator[TestClient]:
    with app_client(tight, db, tmp_path) as c:
        yield c


def key(db: Database) -> str:
    with db.writer.begin() as s:
        return apikeys.create(s, "t")[1]


def test_api_answers_carry_the_limit_and_the_sixth_request_gets_429(
    limited: TestClient, db: Database
) -> None:
    auth = {"authorization": f"Bearer {key(db)}"}
    for left in (4, 3, 2, 1, 0):
        r = limited.get("/api/v1/channels", headers=auth)
        assert r.status_code == 200
        assert r.headers["x-ratelimit-limit"] == "5"
        assert r.headers["x-ratelimit-remaining"] == str(left)
        assert int(r.headers["x-ratelimit-reset"]) >= time.time()
    r = limited.get("/api/v1/channels", headers=auth)
    assert r.status_code == 429
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["status"] == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert r.headers["x-ratelimit-remaining"] == "0"
    assert r.headers["x-content-type-options"] == "nosniff"  # security headers on a 429 too


def test_the_api_limit_is_per_key_and_per_address(
    tight: Settings, db: Database, tmp_path: Path
) -> None:
    first, second = key(db), key(db)
    with app_client(tight, db, tmp_path, ("10.0.0.1", 1)) as one:
        two = TestClient(one.app, base_url=BASE_URL, client=("10.0.0.2", 1))  # same worker
        for _ in range(5):
            assert one.get("/api/v1/channels", headers=bearer(first)).is_success
        # Same address, another key: the address is spent as well.
        assert one.get("/api/v1/channels", headers=bearer(second)).status_code == 429
        # Another address, the spent key: refused; another key from there: fine.
        assert two.get("/api/v1/channels", headers=bearer(first)).status_code == 429
        assert two.get("/api/v1/channels", headers=bearer(second)).is_success


def bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


def test_guessing_api_keys_is_limited_by_address(limited: TestClient) -> None:
    answers = [
        limited.get("/api/v1/links", headers={"authorization": f"Bearer acq_{uuid.uuid4()}"})
        for _ in range(7)
    ]
    assert [r.status_code for r in answers] == [401] * 5 + [429] * 2


def test_webhooks_are_limited_per_channel(limited: TestClient, db: Database) -> None:
    busy = make_channel(db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    quiet = make_channel(db, "telegram", "other_bot", credentials=d.CREDENTIALS["telegram"])
    statuses = []
    for n in range(4):
        raw = d.encode(d.start("telegram", None, n=n))
        statuses.append(
            limited.post(
                f"/hooks/telegram/{busy.id}", content=raw, headers=d.sign("telegram", raw)
            ).status_code
        )
    assert statuses == [200, 200, 200, 429]
    raw = d.encode(d.start("telegram", None, n=99))
    r = limited.post(f"/hooks/telegram/{quiet.id}", content=raw, headers=d.sign("telegram", raw))
    assert r.status_code == 200


def test_a_crowd_behind_one_address_is_never_limited_on_a_real_code(
    limited: TestClient, db: Database
) -> None:
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    for _ in range(150):  # far more than any miss budget, all from 10.0.0.1
        assert limited.get(f"/{link.code}", headers={"user-agent": PHONE}).status_code == 302
    drained(limited)
    assert count(db, Click) == 150


def test_guessing_codes_is_slowed_and_then_reveals_nothing(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "MISSES", "10/minute")
    channel = make_channel(db)
    link = make_link(db, [channel.id])
    with app_client(settings, db, tmp_path, ("203.0.113.7", 1)) as guesser:
        misses = [guesser.get(f"/ZZZZZ{n:02d}").status_code for n in range(12)]
        assert misses[:10] == [404] * 10
        assert misses[11] == 429
        # Over budget, a real code is refused the same way: a 302 would confirm a guess.
        r = guesser.get(f"/{link.code}", headers={"user-agent": PHONE})
        assert r.status_code == 429 and "location" not in r.headers
        assert int(r.headers["retry-after"]) >= 1
        page = guesser.get("/ZZZZZ99", headers={"accept": "text/html"})
        assert page.status_code == 429 and page.headers["content-type"].startswith("text/html")
        assert guesser.get(f"/{link.code}.svg").status_code == 429
        # The API and webhooks have their own limits; the guesser's misses don't touch them.
        assert guesser.get("/api/v1/links").status_code == 401
    with app_client(settings, db, tmp_path, ("198.51.100.1", 1)) as someone_else:
        assert someone_else.get(f"/{link.code}", headers={"user-agent": PHONE}).status_code == 302


def test_misses_are_keyed_by_a_hash_never_the_address(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ratelimit, "MISSES", "1/minute")
    with app_client(settings, db, tmp_path, ("203.0.113.7", 1)) as guesser:
        guesser.get("/ZZZZZ01")
        guesser.get("/ZZZZZ02")
        limiter = guesser.app.middleware_stack  # type: ignore[attr-defined]
        while not isinstance(limiter, ratelimit.RateLimit):
            limiter = limiter.app
        assert limiter.blocklist and all("203.0.113" not in k for k in limiter.blocklist)
        storage = limiter._limiter.storage  # type: ignore[union-attr]
        assert all("203.0.113" not in k for k in storage.storage)


def test_a_forwarded_address_is_believed_only_from_a_trusted_proxy(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import ipaddress

    monkeypatch.setattr(ratelimit, "MISSES", "3/minute")
    proxied = replace(settings, trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),))
    with app_client(proxied, db, tmp_path, ("10.1.1.1", 1)) as lb:
        for n in range(5):
            lb.get(f"/ZZZZZ{n:02d}", headers={"x-forwarded-for": "203.0.113.7"})
        # The guesser behind the balancer is over budget; another visitor through it is not.
        assert lb.get("/ZZZZZ10", headers={"x-forwarded-for": "203.0.113.7"}).status_code == 429
        assert lb.get("/ZZZZZ11", headers={"x-forwarded-for": "198.51.100.9"}).status_code == 404


def test_an_unreachable_limit_storage_lets_requests_through(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    down = replace(settings, rate_limit_storage="redis://127.0.0.1:9", rate_limit_api="1/minute")
    pytest.importorskip("redis", reason="redis-py is needed for redis:// rate-limit storage")
    with app_client(down, db, tmp_path) as c:
        auth = {"authorization": f"Bearer {key(db)}"}
        assert [c.get("/api/v1/channels", headers=auth).status_code for _ in range(3)] == [200] * 3


def test_workers_share_one_count_through_redis(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """Two apps (two workers) on one Redis: the limit holds across them."""
    redis = pytest.importorskip("redis", reason="redis-py is needed for redis:// storage")
    try:
        redis.Redis.from_url("redis://127.0.0.1:6379/0").ping()
    except redis.exceptions.ConnectionError as error:
        raise AssertionError("Redis must run on 127.0.0.1:6379 for this test") from error
    shared = replace(
        settings, rate_limit_storage="redis://127.0.0.1:6379", rate_limit_api="4/minute"
    )
    auth = {"authorization": f"Bearer {key(db)}"}
    # A fresh address per run: the count of an earlier run may still be in Redis.
    address = (f"10.{uuid.uuid4().int % 250}.{uuid.uuid4().int % 250}.1", 1)
    with (
        app_client(shared, db, tmp_path / "a", address) as one,
        app_client(shared, db, tmp_path / "b", address) as two,
    ):
        statuses = [
            (one if n % 2 else two).get("/api/v1/channels", headers=auth).status_code
            for n in range(6)
        ]
    assert statuses == [200] * 4 + [429] * 2
