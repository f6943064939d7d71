"""MAX adapter. bot_started.json is the messengers README sample; the others follow the update
schema of max-messenger/max-bot-api-client-go (bot_stopped, message_created, message_callback)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import max as max_bot
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "max"
CREDENTIALS = {"secret": "max_Secret-123"}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_max_bot_started_is_a_subscribing_start_with_its_payload() -> None:
    [event] = max_bot.parse(sample("bot_started.json"))
    assert event == Event(
        kind="start",
        event_id="bot_started:1234567890:1573226679188",
        user_id="1234567890",
        at=datetime(2019, 11, 8, 15, 24, 39, 188000, tzinfo=UTC),
        event_type="bot_started",
        ref="K7q2xP",
        language="ru",
        user_name="Boris",
        subscribes=True,
    )


def test_max_bot_started_with_a_foreign_payload_keeps_the_start_without_ref() -> None:
    body = json.loads(sample("bot_started.json"))
    body["payload"] = "utm_source=flyer&x=1"
    [event] = max_bot.parse(json.dumps(body).encode())
    assert (event.kind, event.ref) == ("start", None)


def test_max_bot_stopped_is_an_optout() -> None:
    [event] = max_bot.parse(sample("bot_stopped.json"))
    assert (event.kind, event.user_id, event.subscribes) == ("optout", "1234567890", False)


def test_max_message_in_a_dialog_is_a_subscribing_message() -> None:
    [event] = max_bot.parse(sample("message_created.json"))
    assert (event.kind, event.text, event.subscribes) == ("message", "Привет", True)


def test_max_message_in_a_group_chat_does_not_subscribe() -> None:
    body = json.loads(sample("message_created.json"))
    body["message"]["recipient"]["chat_type"] = "chat"
    [event] = max_bot.parse(json.dumps(body).encode())
    assert (event.kind, event.subscribes) == ("message", False)


def test_max_other_updates_are_ignored() -> None:
    [event] = max_bot.parse(sample("message_callback.json"))
    assert (event.kind, event.user_id, event.event_type) == (
        "ignored",
        "1234567890",
        "message_callback",
    )


def test_max_update_without_any_user_is_ignored() -> None:
    [event] = max_bot.parse(b'{"update_type": "chat_title_changed", "timestamp": 1}')
    assert (event.kind, event.user_id, event.event_id) == ("ignored", "", "chat_title_changed::1")


@pytest.mark.parametrize(
    "body",
    [
        b"{}",
        b"[]",
        b"\x00",
        b'{"update_type": "bot_started"}',
        b'{"update_type": "bot_started", "timestamp": "1573226679188"}',
        b'{"update_type": "bot_started", "timestamp": 1573226679188}',
        b'{"update_type": "bot_started", "timestamp": 1, "user": {"user_id": "1"}}',
        b'{"update_type": "bot_stopped", "timestamp": 1, "user": []}',
        b'{"update_type": "message_created", "timestamp": 1, "message": {"body": {}}}',
        b'{"update_type": 5, "timestamp": 1}',
    ],
)
def test_max_malformed_update_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        max_bot.parse(body)


def test_max_verify_checks_the_secret_header() -> None:
    body = sample("bot_started.json")
    assert max_bot.verify(CREDENTIALS, {"x-max-bot-api-secret": "max_Secret-123"}, body)
    assert not max_bot.verify(CREDENTIALS, {"x-max-bot-api-secret": "max_Secret-124"}, body)
    assert not max_bot.verify(
        CREDENTIALS, {"x-telegram-bot-api-secret-token": "max_Secret-123"}, body
    )
    assert not max_bot.verify(CREDENTIALS, {}, body)
    assert not max_bot.verify({}, {"x-max-bot-api-secret": "max_Secret-123"}, body)


def test_max_has_no_handshake_and_no_welcome() -> None:
    [event] = max_bot.parse(sample("bot_started.json"))
    assert max_bot.handshake(CREDENTIALS, {}, sample("bot_started.json")) is None
    assert max_bot.welcome_response(event, "Hi") is None


def test_max_deep_link_carries_the_ref_as_start() -> None:
    assert max_bot.deep_link("shop_bot", "K7Q2XP9M3TZB", text="hi") == (
        "https://max.ru/shop_bot?start=K7Q2XP9M3TZB"
    )


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("shop_bot", "shop_bot"),
        ("@Shop_Bot", "Shop_Bot"),
        ("https://max.ru/shop_bot", "shop_bot"),
        ("max.ru/shop_bot?start=abc", "shop_bot"),
        ("https://max.ru/shop_bot/start/abc", "shop_bot"),
        ("id7710123456_bot", "id7710123456_bot"),
    ],
)
def test_max_bot_name_is_normalised(raw: str, handle: str) -> None:
    assert max_bot.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw", ["", "ab", "shop-bot", "shop bot", "a" * 65, "shоp_bot", "max.ru/a/b", "t.me/shop_bot"]
)
def test_max_bad_bot_name_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        max_bot.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_max_webhook_setup_names_url_secret_and_update_types() -> None:
    setup = max_bot.webhook_setup("https://acq.example/hooks/max/7", {"secret": "max_…"})
    for needle in ("/subscriptions", "https://acq.example/hooks/max/7", "max_…", "bot_stopped"):
        assert needle in setup
