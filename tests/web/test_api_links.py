from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import Link, LinkRevision, Placement
from tests.conftest import BASE_URL, count
from tests.factories import make_channel


@pytest.fixture
def channel_id(db: Database) -> int:
    return make_channel(db).id


def test_creating_a_link_returns_its_short_url(
    api: TestClient, channel_id: int, db: Database
) -> None:
    r = api.post(
        "/api/v1/links",
        json={
            "channels": [channel_id],
            "campaign": "black-friday",
            "source": "yandex",
            "medium": "cpc",
            "content": "banner-a",
            "placement": {"name": "Billboard 12, Tverskaya", "kind": "outdoor", "cost": 1500},
        },
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert body["url"] == f"{BASE_URL}/{body['code']}"
    assert len(body["code"]) >= 6
    assert set(body["code"]) <= set("0123456789ABCDEFGHJKMNPQRSTVWXYZ")
    assert body["placement"]["name"] == "Billboard 12, Tverskaya"
    assert body["placement"]["cost"] == "1500.00"
    assert r.headers["location"] == f"/api/v1/links/{body['code']}"
    assert count(db, Link) == 1 and count(db, Placement) == 1


def test_only_channels_is_required(api: TestClient, channel_id: int) -> None:
    r = api.post("/api/v1/links", json={"channels": [channel_id]})
    assert r.status_code == 201
    assert r.json()["campaign"] is None


def test_custom_slugs_are_case_insensitive_and_unique(api: TestClient, channel_id: int) -> None:
    r = api.post("/api/v1/links", json={"channels": [channel_id], "slug": "Summer-Sale"})
    assert r.status_code == 201
    assert r.json()["code"] == "SUMMER-SALE"
    again = api.post("/api/v1/links", json={"channels": [channel_id], "slug": "summer-sale"})
    assert again.status_code == 422
    assert again.json()["errors"][0]["field"] == "slug"


@pytest.mark.parametrize("slug", ["api", "ADMIN", "hooks", "w", "healthz", "metrics"])
def test_reserved_route_words_are_refused_as_slugs(
    api: TestClient, channel_id: int, slug: str
) -> None:
    r = api.post("/api/v1/links", json={"channels": [channel_id], "slug": slug})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "slug"


BAD_LINKS: list[tuple[dict[str, Any], str]] = [
    ({}, "channels"),
    ({"channels": []}, "channels"),
    ({"channels": "1"}, "channels"),
    ({"channels": [True]}, "channels.0"),
    ({"channels": [1.5]}, "channels.0"),
    ({"channels": [999999]}, "channels.0"),
    ({"channels": [-1]}, "channels.0"),
    ({"campaign": 5}, "campaign"),
    ({"campaign": "x" * 101}, "campaign"),
    ({"source": "news\x00letter"}, "source"),
    ({"source": "news\u200bletter"}, "source"),
    ({"medium": ["cpc"]}, "medium"),
    ({"placement": {"kind": "outdoor"}}, "placement.name"),
    ({"placement": {"name": "A", "kind": "moon"}}, "placement.kind"),
    ({"placement": {"name": "A", "cost": -5}}, "placement.cost"),
    ({"placement": {"name": "A", "cost": "lots"}}, "placement.cost"),
    ({"placement": {"name": "A", "cost": 1e300}}, "placement.cost"),
    ({"placement": "billboard"}, "placement"),
    ({"placement_id": 424242}, "placement_id"),
    ({"slug": "ab"}, "slug"),
    ({"slug": "пример"}, "slug"),
    ({"slug": "has space"}, "slug"),
    ({"slug": "a.svg"}, "slug"),
    ({"valid_from": "tomorrow"}, "valid_from"),
    ({"valid_from": "2026-12-01T10:00:00"}, "valid_from"),
    ({"valid_from": "2026-12-02T10:00:00Z", "valid_until": "2026-12-01T10:00:00Z"}, "valid_until"),
    ({"disabled": "yes"}, "disabled"),
    ({"text": "x" * 501}, "text"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_LINKS)
def test_bad_fields_are_named_and_nothing_is_stored(
    api: TestClient, channel_id: int, db: Database, fields: dict[str, Any], field: str
) -> None:
    body = {"channels": [channel_id], **fields}
    if fields == {}:
        body = {}
    r = api.post("/api/v1/links", json=body)
    assert 400 <= r.status_code < 500, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, Link) == 0 and count(db, Placement) == 0


@pytest.mark.parametrize(
    ("content", "content_type", "status"),
    [
        (b'{"channels": [1]', "application/json", 400),
        (b"channels=1", "application/x-www-form-urlencoded", 400),
        (b'{"channels": [1]}', "text/plain", 400),
        (b"[1, 2]", "application/json", 422),
        (b'{"channels": [NaN]}', "application/json", 400),
        (b"\xff\xfe", "application/json", 400),
        (b"[" * 5000 + b"]" * 5000, "application/json", 400),
    ],
)
def test_unreadable_bodies_get_a_clear_4xx(
    api: TestClient, db: Database, content: bytes, content_type: str, status: int
) -> None:
    r = api.post("/api/v1/links", content=content, headers={"content-type": content_type})
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert r.json()["errors"]
    assert count(db, Link) == 0


def test_oversized_bodies_are_refused_before_reading(api: TestClient, db: Database) -> None:
    r = api.post(
        "/api/v1/links",
        content=b"x" * (3 * 1024 * 1024),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert r.json()["errors"][0]["field"] == "body"


def test_api_needs_a_valid_key(client: TestClient, db: Database) -> None:
    assert client.get("/api/v1/links").status_code == 401
    r = client.get("/api/v1/links", headers={"authorization": "Bearer acq_wrong"})
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    r = client.post("/api/v1/links", content=b"{bad", headers={"content-type": "application/json"})
    assert r.status_code == 401


def test_a_revoked_key_stops_working(api: TestClient, db: Database, api_key: str) -> None:
    from acquisition import apikeys

    assert api.get("/api/v1/links").status_code == 200
    with db.writer.begin() as s:
        apikeys.revoke(s, api_key[:10])
    assert api.get("/api/v1/links").status_code == 401


def test_batch_creates_every_placement_in_one_request(
    api: TestClient, channel_id: int, db: Database
) -> None:
    items = [
        {
            "channels": [channel_id],
            "campaign": "metro",
            "source": "print",
            "placement": {"name": f"Flyer {i}", "kind": "print"},
        }
        for i in range(500)
    ]
    r = api.post("/api/v1/links/batch", json={"links": items})
    assert r.status_code == 201, r.text[:500]
    created = r.json()["links"]
    assert len(created) == 500
    assert len({link["code"] for link in created}) == 500
    assert [link["placement"]["name"] for link in created] == [f"Flyer {i}" for i in range(500)]
    assert count(db, Link) == 500 and count(db, Placement) == 500


def test_batch_is_all_or_nothing_and_reports_each_bad_item(
    api: TestClient, channel_id: int, db: Database
) -> None:
    items = [{"channels": [channel_id], "placement": {"name": f"P{i}"}} for i in range(10)]
    items[3]["channels"] = [987654]
    items[7]["placement"] = {"name": ""}
    items[8]["slug"] = "dup-slug"
    items[9]["slug"] = "dup-slug"
    r = api.post("/api/v1/links/batch", json={"links": items})
    assert r.status_code == 422
    fields = {e["field"] for e in r.json()["errors"]}
    assert {"links.3.channels.0", "links.7.placement.name"} <= fields
    assert count(db, Link) == 0 and count(db, Placement) == 0
    items[3]["channels"] = [channel_id]
    items[7]["placement"] = {"name": "P7"}
    r = api.post("/api/v1/links/batch", json={"links": items})
    assert r.status_code == 422
    assert {e["field"] for e in r.json()["errors"]} == {"links.9.slug"}
    assert count(db, Link) == 0


def test_batch_size_is_bounded(api: TestClient, channel_id: int) -> None:
    items = [{"channels": [channel_id]}] * 1001
    r = api.post("/api/v1/links/batch", json={"links": items})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "links"


def test_links_list_newest_first_with_a_cursor(api: TestClient, channel_id: int) -> None:
    codes = [
        api.post("/api/v1/links", json={"channels": [channel_id]}).json()["code"] for _ in range(5)
    ]
    first = api.get("/api/v1/links?limit=3").json()
    assert [link["code"] for link in first["links"]] == codes[::-1][:3]
    second = api.get(f"/api/v1/links?limit=3&before={first['next_before']}").json()
    assert [link["code"] for link in second["links"]] == codes[::-1][3:]
    assert second["next_before"] is None
    assert api.get("/api/v1/links?limit=0").status_code == 422
    assert api.get("/api/v1/links?limit=abc").json()["errors"][0]["field"] == "limit"


def test_editing_a_link_keeps_every_version(api: TestClient, channel_id: int, db: Database) -> None:
    code = api.post("/api/v1/links", json={"channels": [channel_id], "source": "vk"}).json()["code"]
    r = api.patch(f"/api/v1/links/{code}", json={"source": "telegram-ads", "disabled": True})
    assert r.status_code == 200, r.text
    assert r.json()["version"] == 2 and r.json()["source"] == "telegram-ads"
    history = api.get(f"/api/v1/links/{code}/revisions").json()["revisions"]
    assert [(h["version"], h["link"]["source"], h["link"]["disabled"]) for h in history] == [
        (1, "vk", False),
        (2, "telegram-ads", True),
    ]
    assert count(db, LinkRevision) == 2


def test_a_bad_edit_changes_nothing(api: TestClient, channel_id: int, db: Database) -> None:
    code = api.post("/api/v1/links", json={"channels": [channel_id], "source": "vk"}).json()["code"]
    r = api.patch(f"/api/v1/links/{code}", json={"source": "x" * 200})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "source"
    r = api.patch(f"/api/v1/links/{code}", json={"slug": "new-slug"})
    assert r.status_code == 422
    assert api.get(f"/api/v1/links/{code}").json()["version"] == 1
    assert count(db, LinkRevision) == 1


def test_unknown_link_is_a_404_problem(api: TestClient) -> None:
    r = api.get("/api/v1/links/NOPE123")
    assert r.status_code == 404
    assert r.json()["errors"][0]["field"] == "code"
