"""The short-link front answers a person's click on a cached link itself; everything it does
must be what the full stack (`follow` behind the middleware) does for the same visit."""

from __future__ import annotations

import ipaddress
import logging
import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Click
from acquisition.web import redirect
from acquisition.web.app import create_app
from tests.conftest import BASE_URL, count, drained
from tests.factories import make_channel, make_link
from tests.web.test_metrics import sample, scrape
from tests.web.test_redirect import DESKTOP, PHONE

# Every stored column but the ones that differ between two clicks by nature.
COMPARED = [c.name for c in Click.__table__.columns if c.name not in ("id", "ref", "at")]
# (path suffix, headers) of visits that end in a plain 302
VISITS: list[tuple[str, dict[str, str]]] = [
    ("", {"user-agent": PHONE}),
    (
        "?utm_source=ig&utm_campaign=autumn&gclid=abc123&page=https://shop.example/p",
        {"user-agent": PHONE, "referer": "https://news.example/a"},
    ),
    ("?w=wid1&cv=v2&utm_medium=widget&ref_url=https://shop.example/", {"user-agent": PHONE}),
    ("", {"user-agent": DESKTOP, "x-forwarded-for": "203.0.113.9", "x-request-id": "lb-42"}),
]


@pytest.fixture
def inside(settings: Settings, db: Database, tmp_path: Path) -> Iterator[TestClient]:
    # (the suite's settings cache nothing, so that edits show at once: here links are cached)
    cached = replace(settings, spool_dir=str(tmp_path / "spool"), link_cache_seconds=60)
    app = create_app(cached, db)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False, client=("10.1.2.3", 1)) as c:
        yield c


def visit_twice(client: TestClient, path: str, headers: dict[str, str]) -> list[Any]:
    """The same visit through the full stack (link not cached), then through the front."""
    links = client.app.state.services.links  # type: ignore[attr-defined]
    code = path.split("?")[0].rsplit("/", 1)[-1]
    links.forget(code)
    assert links.peek(code) is None
    slow = client.get(path, headers=headers)
    assert links.peek(code) is not None  # the full stack cached it: the next one is the front's
    fast = client.get(path, headers=headers)
    return [slow, fast]


def test_the_front_answers_exactly_as_the_full_stack(inside: TestClient, db: Database) -> None:
    telegram = make_channel(db, "telegram", "shop_bot")
    code = make_link(db, [telegram.id], campaign="spring", source="flyer").code
    for suffix, headers in VISITS:
        for path in (f"/{code}{suffix}", f"/q/{code.lower()}{suffix}"):
            slow, fast = visit_twice(inside, path, headers)
            assert slow.status_code == fast.status_code == 302
            assert set(slow.headers) == set(fast.headers), path
            for name in slow.headers:
                if name not in ("location", "x-request-id"):
                    assert slow.headers[name] == fast.headers[name], (path, name)
            if "x-request-id" in headers:
                assert slow.headers["x-request-id"] == fast.headers["x-request-id"] == "lb-42"
            locations = [urlsplit(r.headers["location"]) for r in (slow, fast)]
            assert locations[0][:3] == locations[1][:3] == ("https", "t.me", "/shop_bot")
            refs = [parse_qs(loc.query)["start"][0] for loc in locations]
            drained(inside)
            with db.reader() as s:
                rows = [s.scalars(select(Click).where(Click.ref == ref)).one() for ref in refs]
            assert [getattr(rows[0], c) for c in COMPARED] == [
                getattr(rows[1], c) for c in COMPARED
            ]
            assert abs((rows[1].at - rows[0].at).total_seconds()) < 5


def test_the_front_steps_aside_for_pages_and_choices(inside: TestClient, db: Database) -> None:
    telegram = make_channel(db, "telegram", "shop_bot")
    viber = make_channel(db, "viber", "shopbot")
    both = make_link(db, [telegram.id, viber.id]).code
    only_viber = make_link(db, [viber.id]).code
    bot = {"user-agent": "TelegramBot (like TwitterBot)"}
    for path, headers, status in [
        (f"/{both}", {"user-agent": PHONE}, 200),  # the chooser
        (f"/{both}?c={telegram.id}", {"user-agent": PHONE}, 302),
        (f"/{only_viber}", {"user-agent": DESKTOP}, 200),  # the scan page
        (f"/{only_viber}?open=1", {"user-agent": DESKTOP}, 302),
        (f"/{both}", bot, 200),  # a preview crawler's page
    ]:
        slow, fast = visit_twice(inside, path, headers)
        assert slow.status_code == fast.status_code == status, path
        assert slow.headers.get("content-type") == fast.headers.get("content-type")
        if status == 200:
            assert "content-security-policy" in fast.headers
    drained(inside)
    with db.reader() as s:
        kinds = sorted(s.scalars(select(Click.visitor)))
    assert kinds == ["human"] * 4 + ["preview"] * 2


def test_the_fronts_clicks_are_counted_and_logged(
    inside: TestClient, db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    code = make_link(db, [make_channel(db).id]).code
    assert inside.get(f"/{code}", headers={"user-agent": PHONE}).status_code == 302
    assert inside.app.state.services.links.peek(code) is not None  # type: ignore[attr-defined]
    before = scrape(inside)
    with caplog.at_level(logging.INFO, logger="acquisition.access"):
        caplog.clear()  # (an earlier logging setup may have captured the warm-up already)
        for _ in range(3):
            assert inside.get(f"/{code}", headers={"user-agent": PHONE}).status_code == 302
    after = scrape(inside)
    assert (
        sample(after, "acquisition_clicks_total", visitor="human")
        - sample(before, "acquisition_clicks_total", visitor="human")
        == 3
    )
    labels = {"method": "GET", "route": "/{code}", "status": "302"}
    assert (
        sample(after, "acquisition_http_requests_total", **labels)
        - sample(before, "acquisition_http_requests_total", **labels)
        == 3
    )
    lines = [
        r
        for r in caplog.records
        if r.name == "acquisition.access" and r.path == f"/{code}"  # type: ignore[attr-defined]
    ]
    assert [(r.route, r.status) for r in lines] == [("/{code}", 302)] * 3  # type: ignore[attr-defined]
    assert all(r.client == "10.1.2.0" for r in lines)  # type: ignore[attr-defined]


def test_a_blocked_guesser_is_refused_and_everybody_else_keeps_the_front(
    settings: Settings, db: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Behind a trusted proxy (the test client's 10.1.2.3), so visitors can differ by address.
    proxied = replace(
        settings,
        spool_dir=str(tmp_path / "spool"),
        link_cache_seconds=60,
        trusted_proxies=(ipaddress.ip_network("10.0.0.0/8"),),
    )
    app = create_app(proxied, db)
    guesser = {"user-agent": PHONE, "x-forwarded-for": "203.0.113.7"}
    person = {"user-agent": PHONE, "x-forwarded-for": "198.51.100.1"}
    code = make_link(db, [make_channel(db).id]).code
    slow_path: list[str] = []
    full_stack = redirect.follow

    async def follow(scope: Any, receive: Any, send: Any) -> None:
        slow_path.append(scope["path"])
        await full_stack(scope, receive, send)

    monkeypatch.setattr(redirect, "follow", follow)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False, client=("10.1.2.3", 1)) as c:
        assert c.get(f"/{code}", headers=person).status_code == 302  # cached from now on
        misses = [c.get(f"/ZZZZ{n:03d}", headers=guesser).status_code for n in range(70)]
        assert misses[:60] == [404] * 60 and misses[-1] == 429, misses  # the budget: 60 a minute
        assert c.get(f"/{code}", headers=guesser).status_code == 429
        slow_path.clear()
        for _ in range(3):
            assert c.get(f"/{code}", headers=person).status_code == 302
        assert slow_path == []  # the front answered them, the guesser notwithstanding
        assert c.get(f"/{code}", headers=guesser).status_code == 429


def test_a_failed_spool_still_opens_the_chat_without_a_ref(
    inside: TestClient, db: Database
) -> None:
    whatsapp = make_channel(db, "whatsapp", "+14155550123")
    code = make_link(db, [whatsapp.id], text="Hello").code
    # The spool's disk is full from now on: every write fails as on a real full disk.
    spool = inside.app.state.services.clicks  # type: ignore[attr-defined]
    full = os.open("/dev/full", os.O_WRONLY)
    os.dup2(full, spool._fd)
    os.close(full)
    for r in visit_twice(inside, f"/{code}", {"user-agent": PHONE}):
        assert r.status_code == 302
        assert r.headers["x-click-recorded"] == "0"
        assert r.headers["location"] == "https://wa.me/14155550123?text=Hello"
    assert count(db, Click) == 0


def test_a_bug_in_the_front_is_answered_as_the_full_stack_answers_one(
    inside: TestClient,
    db: Database,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The front sits outside Starlette's error middleware; a failure in it still gets the app's
    500 problem and a logged traceback, not a bare server error or a dropped connection."""
    code = make_link(db, [make_channel(db).id]).code
    assert inside.get(f"/{code}", headers={"user-agent": PHONE}).status_code == 302  # cached

    def broken(*_args: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(redirect.visitors, "classify", broken)
    with caplog.at_level(logging.ERROR):
        r = inside.get(f"/{code}", headers={"user-agent": PHONE})
    assert r.status_code == 500
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["type"] == "/problems/internal"
    assert any(record.exc_info and "a bug" in str(record.exc_info[1]) for record in caplog.records)
    drained(inside)
    assert count(db, Click) == 1  # the first visit's only
