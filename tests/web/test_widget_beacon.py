"""POST /w/{id}/e: the widget's beacon. Humans on allowed sites are counted, nothing else is."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import WidgetEvent
from tests.conftest import count
from tests.factories import make_channel

SITE = "https://shop.example"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
IMPRESSION = {
    "t": "impression",
    "page": f"{SITE}/pricing?utm_source=newsletter&utm_campaign=spring",
    "ref_url": "https://mail.example.com/inbox",
    "utm_source": "newsletter",
    "utm_campaign": "spring",
    "w": "ignored",
}


@pytest.fixture
def widget_id(api: TestClient, db: Database) -> str:
    channel = make_channel(db).id
    r = api.post("/api/v1/widgets", json={"channels": [channel], "origins": [SITE]})
    assert r.status_code == 201, r.text
    return r.json()["id"]  # type: ignore[no-any-return]


def send(
    client: TestClient,
    widget_id: str,
    body: Any = IMPRESSION,
    origin: str | None = SITE,
    agent: str = CHROME,
    **headers: str,
) -> Any:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    sent = {"content-type": "text/plain;charset=UTF-8", "user-agent": agent, **headers}
    if origin is not None:
        sent["origin"] = origin
    return client.post(f"/w/{widget_id}/e", content=content, headers=sent)


def counters(db: Database) -> list[dict[str, Any]]:
    with db.reader() as s:
        rows = s.scalars(select(WidgetEvent).order_by(WidgetEvent.id)).all()
        return [
            {
                "kind": r.kind,
                "messenger": r.messenger,
                "path": r.path,
                "source": r.source,
                "medium": r.medium,
                "campaign": r.campaign,
                "referrer_host": r.referrer_host,
                "count": r.count,
            }
            for r in rows
        ]


def test_an_impression_is_counted_per_page_source_and_hour(
    client: TestClient, widget_id: str, db: Database
) -> None:
    r = send(client, widget_id, cookie="session=abc")
    assert r.status_code == 204 and r.content == b""
    assert r.headers["cache-control"] == "no-store" and "set-cookie" not in r.headers
    send(client, widget_id)
    assert counters(db) == [
        {
            "kind": "impression",
            "messenger": "",
            "path": "/pricing",
            "source": "newsletter",
            "medium": "",
            "campaign": "spring",
            "referrer_host": "mail.example.com",
            "count": 2,
        }
    ]


def test_qr_and_click_beacons_are_counted_per_messenger(
    client: TestClient, widget_id: str, db: Database
) -> None:
    send(client, widget_id, {"t": "qr", "m": "viber", "page": f"{SITE}/"})
    send(client, widget_id, {"t": "click", "m": "telegram", "page": f"{SITE}/"})
    send(client, widget_id, {"t": "click", "m": "telegram", "page": f"{SITE}/"})
    got = [(r["kind"], r["messenger"], r["count"]) for r in counters(db)]
    assert got == [("qr", "viber", 1), ("click", "telegram", 2)]


def test_the_stats_api_reads_impressions_by_source_and_day(
    api: TestClient, widget_id: str, db: Database
) -> None:
    send(api, widget_id)
    send(api, widget_id, {"t": "impression", "page": f"{SITE}/", "utm_source": "vk"})
    send(api, widget_id, {"t": "click", "m": "telegram", "utm_source": "vk"})
    by_source = api.get(f"/api/v1/widgets/{widget_id}/stats?group_by=source").json()
    assert by_source["rows"] == [
        {"source": "newsletter", "impressions": 1, "qr": 0, "clicks": 0},
        {"source": "vk", "impressions": 1, "qr": 0, "clicks": 1},
    ]
    [day] = api.get(f"/api/v1/widgets/{widget_id}/stats").json()["rows"]
    assert (day["impressions"], day["clicks"]) == (2, 1) and len(day["day"]) == 10
    bad = api.get(f"/api/v1/widgets/{widget_id}/stats?group_by=ip")
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "group_by"


@pytest.mark.parametrize(
    "agent",
    [
        "",
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "HeadlessChrome/131.0.0.0 Safari/537.36",
        "TelegramBot (like TwitterBot)",
        "curl/8.5.0",
    ],
)
def test_bots_get_the_same_answer_but_are_not_counted(
    client: TestClient, widget_id: str, db: Database, agent: str
) -> None:
    assert send(client, widget_id, agent=agent).status_code == 204
    assert count(db, WidgetEvent) == 0


@pytest.mark.parametrize(
    ("origin", "page", "status"),
    [
        ("https://evil.example", f"{SITE}/", 403),
        ("http://shop.example", f"{SITE}/", 403),
        ("https://shop.example.evil.example", f"{SITE}/", 403),
        (None, f"{SITE}/", 403),
        ("null", "https://evil.example/", 403),
        ("null", f"{SITE}/pricing", 204),  # Referrer-Policy: no-referrer hides the Origin
        ("https://SHOP.example:443", f"{SITE}/", 204),
    ],
)
def test_beacons_from_other_sites_are_refused_and_not_stored(
    client: TestClient, widget_id: str, db: Database, origin: str | None, page: str, status: int
) -> None:
    r = send(client, widget_id, {"t": "impression", "page": page}, origin=origin)
    assert r.status_code == status, r.text
    if status == 403:
        assert r.json()["errors"][0]["field"] == "origin"
    assert count(db, WidgetEvent) == (1 if status == 204 else 0)


@pytest.mark.parametrize(
    ("body", "headers", "status", "field"),
    [
        (b"x" * 4097, {}, 413, "body"),
        (json.dumps({**IMPRESSION, "page": "p" * 2000, "ref_url": "r" * 2000}), {}, 413, "body"),
        (b'{"t": "impression"', {}, 400, "body"),
        (b"\xff\xfe", {}, 400, "body"),
        (b'{"t": NaN}', {}, 400, "body"),
        (b'{"t": "impression"}', {"content-type": "application/x-www-form-urlencoded"}, 400, None),
        (b'["impression"]', {}, 422, "body"),
        (b'{"t": "hover"}', {}, 422, "t"),
        (b'{"t": "click"}', {}, 422, "m"),
        (b'{"t": "click", "m": "skype"}', {}, 422, "m"),
        (b'{"t": "impression", "page": {"a": 1}}', {}, 422, "page"),
        (b'{"t": "impression", "utm_source": 5}', {}, 422, "utm_source"),
    ],
)
def test_oversized_and_malformed_beacons_get_a_4xx(
    client: TestClient,
    widget_id: str,
    db: Database,
    body: str | bytes,
    headers: dict[str, str],
    status: int,
    field: str | None,
) -> None:
    content = body.encode() if isinstance(body, str) else body
    r = send(client, widget_id, content, **headers)
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    if field:
        assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, WidgetEvent) == 0


def test_a_streamed_body_is_cut_off_at_the_limit(
    client: TestClient, widget_id: str, db: Database
) -> None:
    def chunks() -> Iterator[bytes]:
        for _ in range(10):
            yield b" " * 1000

    r = client.post(
        f"/w/{widget_id}/e",
        content=chunks(),
        headers={"content-type": "text/plain", "origin": SITE, "user-agent": CHROME},
    )
    assert r.status_code == 413
    assert count(db, WidgetEvent) == 0


def test_beacons_for_unknown_widgets_are_not_found(client: TestClient, db: Database) -> None:
    assert send(client, "wgt_0000000000").status_code == 404
    assert send(client, "../../api").status_code == 404
