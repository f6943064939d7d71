from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import Channel
from tests.conftest import BASE_URL, count


def test_registering_a_telegram_bot_returns_its_webhook_and_secret(
    api: TestClient, db: Database
) -> None:
    r = api.post(
        "/api/v1/channels", json={"messenger": "telegram", "handle": "@Shop_bot", "name": "Shop"}
    )
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["messenger"], body["handle"], body["name"]) == ("telegram", "Shop_bot", "Shop")
    assert body["webhook"]["url"] == f"{BASE_URL}/hooks/telegram/{body['id']}"
    assert len(body["webhook"]["secret"]) >= 32
    again = api.get(f"/api/v1/channels/{body['id']}").json()
    assert again["webhook"]["secret"] != body["webhook"]["secret"]
    assert body["webhook"]["secret"].startswith(again["webhook"]["secret"].rstrip("…"))


@pytest.mark.parametrize(
    ("messenger", "handle", "stored"),
    [
        ("whatsapp", "+7 (916) 123-45-67", "79161234567"),
        ("whatsapp", "https://wa.me/79161234567", "79161234567"),
        ("viber", "shopbot", "shopbot"),
        ("messenger", "https://m.me/ShopPage", "ShopPage"),
        ("instagram", "@Shop.Example", "shop.example"),
        ("vk", "https://vk.com/shopclub", "shopclub"),
        ("max", "shop_bot", "shop_bot"),
    ],
)
def test_handles_are_normalised_per_messenger(
    api: TestClient, messenger: str, handle: str, stored: str
) -> None:
    r = api.post("/api/v1/channels", json={"messenger": messenger, "handle": handle})
    assert r.status_code == 201, r.text
    assert r.json()["handle"] == stored


BAD: list[tuple[dict[str, Any], str]] = [
    ({"messenger": "skype", "handle": "x"}, "messenger"),
    ({"messenger": "signal", "handle": "x"}, "messenger"),
    ({"handle": "shop_bot"}, "messenger"),
    ({"messenger": "telegram"}, "handle"),
    ({"messenger": "telegram", "handle": "shop"}, "handle"),
    ({"messenger": "telegram", "handle": "shоp_bot"}, "handle"),
    ({"messenger": "telegram", "handle": "shop bot"}, "handle"),
    ({"messenger": "whatsapp", "handle": "12345"}, "handle"),
    ({"messenger": "whatsapp", "handle": "+7 000 000-00-00"}, "handle"),
    (
        {"messenger": "telegram", "handle": "shop_bot", "credentials": {"app_secret": "x"}},
        "credentials.app_secret",
    ),
    (
        {"messenger": "viber", "handle": "shopbot", "credentials": {"auth_token": ""}},
        "credentials.auth_token",
    ),
    ({"messenger": "telegram", "handle": "shop_bot", "credentials": "secret"}, "credentials"),
    ({"messenger": "telegram", "handle": "shop_bot", "relay_url": "ftp://bot"}, "relay_url"),
    ({"messenger": "telegram", "handle": "shop_bot", "name": "x" * 101}, "name"),
    ({"messenger": "telegram", "handle": "shop_bot", "colour": "red"}, "colour"),
    ({"messenger": 7, "handle": "shop_bot"}, "messenger"),
]


@pytest.mark.parametrize(("body", "field"), BAD)
def test_bad_channels_are_refused_naming_the_field(
    api: TestClient, db: Database, body: dict[str, Any], field: str
) -> None:
    r = api.post("/api/v1/channels", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, Channel) == 0


def test_the_same_handle_twice_is_a_conflict(api: TestClient, db: Database) -> None:
    assert (
        api.post("/api/v1/channels", json={"messenger": "vk", "handle": "shopclub"}).status_code
        == 201
    )
    r = api.post("/api/v1/channels", json={"messenger": "vk", "handle": "ShopClub"})
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "handle"
    assert count(db, Channel) == 1


def test_stored_credentials_are_never_shown_again_in_full(api: TestClient) -> None:
    secret = "a-very-long-app-secret-value-1234"
    created = api.post(
        "/api/v1/channels",
        json={
            "messenger": "messenger",
            "handle": "ShopPage",
            "credentials": {"app_secret": secret, "verify_token": "verify-me-please"},
        },
    ).json()
    assert created["credentials"]["app_secret"] == secret
    listed = api.get("/api/v1/channels").json()["channels"][0]
    assert secret not in str(listed)
    assert listed["webhook"]["ready"] is True


def test_a_channel_without_credentials_is_not_ready_for_webhooks(api: TestClient) -> None:
    body = api.post(
        "/api/v1/channels", json={"messenger": "whatsapp", "handle": "79161234567"}
    ).json()
    assert body["webhook"]["ready"] is False
    r = api.patch(
        f"/api/v1/channels/{body['id']}",
        json={"credentials": {"app_secret": "s" * 32, "verify_token": "v" * 16}},
    )
    assert r.status_code == 200
    assert r.json()["webhook"]["ready"] is True


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",  # a cloud's metadata service
        "http://10.0.0.7:8080/hook",
        "https://[::1]/hook",
        "http://0.0.0.0/hook",
        "http://[::ffff:192.168.1.5]/hook",
    ],
)
def test_a_relay_url_written_as_a_private_address_is_refused_when_saved(
    api: TestClient, db: Database, url: str
) -> None:
    """Caught at once, with what to do about it, rather than found later in the relay's log.
    (The test settings allow 127.0.0.0/8, the way an operator allows a bot beside the service.)"""
    r = api.post(
        "/api/v1/channels", json={"messenger": "telegram", "handle": "shop_bot", "relay_url": url}
    )
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert error["field"] == "relay_url"
    assert "ACQUISITION_RELAY_PRIVATE_NETWORKS" in error["message"]
    assert count(db, Channel) == 0
    created = api.post(
        "/api/v1/channels",
        json={"messenger": "telegram", "handle": "shop_bot", "relay_url": "http://127.0.0.1/h"},
    )
    assert created.status_code == 201, created.text  # inside the allowed network
    path = f"/api/v1/channels/{created.json()['id']}"
    assert api.patch(path, json={"relay_url": url}).status_code == 422
    assert api.get(path).json()["relay_url"] == "http://127.0.0.1/h"
    for fine in ("https://93.184.216.34/hook", "https://bot.example.com/hook"):
        assert api.patch(path, json={"relay_url": fine}).status_code == 200  # names: at send
