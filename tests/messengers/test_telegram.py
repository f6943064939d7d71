"""Telegram adapter. start.json and blocked.json are the sample bodies of the messengers README;
the other samples follow the same Bot API shapes (group /start@bot, unblock, callback_query)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import telegram
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "telegram"
CREDENTIALS = {"secret": "s3cret-Token_1"}
RECEIVED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def text_update(text: str, chat_type: str = "private") -> bytes:
    body = json.loads(sample("start.json"))
    body["message"]["text"] = text
    body["message"]["chat"]["type"] = chat_type
    return json.dumps(body).encode()


def test_telegram_start_sample_is_a_subscribing_start_with_its_ref() -> None:
    [event] = telegram.parse(sample("start.json"))
    assert event == Event(
        kind="start",
        event_id="u912345678",
        user_id="111222333",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        event_type="message",
        ref="K7q2xP",
        text="/start K7q2xP",
        language="ru",
        user_name="Anna",
        subscribes=True,
    )


def test_telegram_start_in_group_keeps_ref_but_does_not_subscribe() -> None:
    [event] = telegram.parse(sample("group_start.json"))
    assert (event.kind, event.ref, event.subscribes) == ("start", "K7q2xP", False)
    assert event.user_name == "Anna K"


def test_telegram_bare_start_is_a_start_without_ref() -> None:
    [event] = telegram.parse(text_update("/start"))
    assert (event.kind, event.ref, event.subscribes) == ("start", None, True)


@pytest.mark.parametrize(
    "text", ["/start hello there", "/start " + "a" * 65, "/start ab$c", "/start@shop_bot"]
)
def test_telegram_start_with_a_foreign_payload_keeps_the_start_without_ref(text: str) -> None:
    [event] = telegram.parse(text_update(text))
    assert (event.kind, event.ref) == ("start", None)


def test_telegram_start_payload_of_64_characters_is_kept() -> None:
    [event] = telegram.parse(text_update("/start " + "A" * 64))
    assert event.ref == "A" * 64


@pytest.mark.parametrize("text", ["/startgroup x", "/starting", "start K7q2xP", "hi /start x"])
def test_telegram_text_that_is_not_the_start_command_is_a_message(text: str) -> None:
    [event] = telegram.parse(text_update(text))
    assert (event.kind, event.ref) == ("message", None)


def test_telegram_plain_private_message_lets_the_bot_answer() -> None:
    [event] = telegram.parse(sample("text_message.json"))
    assert (event.kind, event.text, event.subscribes) == (
        "message",
        "What are your opening hours?",
        True,
    )


def test_telegram_message_without_text_is_a_message() -> None:
    body = json.loads(sample("text_message.json"))
    del body["message"]["text"]
    [event] = telegram.parse(json.dumps(body).encode())
    assert (event.kind, event.text) == ("message", None)


def test_telegram_block_is_an_optout() -> None:
    [event] = telegram.parse(sample("blocked.json"))
    assert (event.kind, event.event_id, event.user_id) == ("optout", "u912345679", "111222333")
    assert (event.event_type, event.subscribes) == ("my_chat_member", False)
    assert event.at == datetime(2026, 1, 2, tzinfo=UTC)


def test_telegram_unblock_is_an_optin() -> None:
    [event] = telegram.parse(sample("unblocked.json"))
    assert (event.kind, event.subscribes) == ("optin", True)


def test_telegram_bot_removed_from_a_group_is_ignored() -> None:
    body = json.loads(sample("blocked.json"))
    body["my_chat_member"]["chat"] = {"id": -100123, "type": "group", "title": "Fans"}
    [event] = telegram.parse(json.dumps(body).encode())
    assert event.kind == "ignored"


def test_telegram_other_update_types_are_ignored_at_receipt_time() -> None:
    [event] = telegram.parse(sample("callback_query.json"), received_at=RECEIVED)
    assert event == Event("ignored", "u912345683", "111222333", RECEIVED, "callback_query")


def test_telegram_update_with_only_an_id_is_ignored() -> None:
    [event] = telegram.parse(b'{"update_id": 5}', received_at=RECEIVED)
    assert (event.kind, event.event_type, event.user_id) == ("ignored", "update", "")


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"not json",
        b"\xff\xfe{}",
        b"[]",
        b'"update"',
        b'{"message": {}}',
        b'{"update_id": "912345678"}',
        b'{"update_id": true}',
        b'{"update_id": 1.5}',
        b'{"update_id": 1, "message": []}',
        b'{"update_id": 1, "message": {"date": 1, "chat": {"type": "private"}}}',
        b'{"update_id": 1, "message": {"date": 1, "from": {"id": "1"}, "chat": {}}}',
        b'{"update_id": 1, "message": {"date": "1", "from": {"id": 1}, "chat": {}}}',
        b'{"update_id": 1, "message": {"date": 1e400, "from": {"id": 1}, "chat": {}}}',
        b'{"update_id": 1, "message": {"date": -1, "from": {"id": 1}, "chat": {}}}',
        b'{"update_id": 1, "message": {"date": 99999999999999999, "from": {"id": 1}, "chat": {}}}',
        b'{"update_id": 1, "my_chat_member": {"from": {"id": 1}, "chat": {}, "date": 1}}',
        b"[" * 100_000,
    ],
)
def test_telegram_malformed_update_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid) as caught:
        telegram.parse(body)
    assert caught.value.field == "body"


def test_telegram_verify_accepts_the_secret_token_header() -> None:
    headers = {"x-telegram-bot-api-secret-token": "s3cret-Token_1"}
    assert telegram.verify(CREDENTIALS, headers, sample("start.json"))


@pytest.mark.parametrize(
    ("credentials", "headers"),
    [
        (CREDENTIALS, {"x-telegram-bot-api-secret-token": "s3cret-Token_2"}),
        (CREDENTIALS, {"x-telegram-bot-api-secret-token": "s3cret-token_1"}),
        (CREDENTIALS, {"x-telegram-bot-api-secret-token": ""}),
        (CREDENTIALS, {"x-telegram-bot-api-secret-token": "s3cret-Token_1\u00e9"}),
        (CREDENTIALS, {"x-telegram-bot-api-secret-token": "\ud800"}),
        (CREDENTIALS, {}),
        ({}, {"x-telegram-bot-api-secret-token": "s3cret-Token_1"}),
        ({"secret": ""}, {"x-telegram-bot-api-secret-token": ""}),
    ],
)
def test_telegram_verify_rejects_a_wrong_or_missing_secret(
    credentials: dict[str, str], headers: dict[str, str]
) -> None:
    assert not telegram.verify(credentials, headers, sample("start.json"))


def test_telegram_has_no_handshake() -> None:
    assert telegram.handshake(CREDENTIALS, {"hub.challenge": "1"}, b"{}") is None


def test_telegram_deep_link_carries_the_ref_as_start_and_ignores_text() -> None:
    link = telegram.deep_link("shop_bot", "K7Q2XP9M3TZB", text="Hello")
    assert link == "https://t.me/shop_bot?start=K7Q2XP9M3TZB"


@pytest.mark.parametrize("ref", ["", "a b", "x" * 33, "../x", "é", "K7Q2XP9M3TZB\n"])
def test_telegram_deep_link_refuses_a_ref_we_did_not_make(ref: str) -> None:
    with pytest.raises(ValueError):
        telegram.deep_link("shop_bot", ref)


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("shop_bot", "shop_bot"),
        ("@shop_bot", "shop_bot"),
        ("  @Shop_Bot ", "Shop_Bot"),
        ("ShopBOT", "ShopBOT"),
        ("https://t.me/shop_bot", "shop_bot"),
        ("http://t.me/shop_bot/", "shop_bot"),
        ("t.me/shop_bot?start=abc", "shop_bot"),
        ("https://telegram.me/shopbot", "shopbot"),
        ("a_bot", "a_bot"),
        ("a" * 29 + "bot", "a" * 29 + "bot"),
    ],
)
def test_telegram_handle_is_normalised(raw: str, handle: str) -> None:
    assert telegram.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "shop",
        "shop_botx",
        "abot",
        "1shop_bot",
        "_shop_bot",
        "shop-bot",
        "shop bot",
        "shop_b\u043et",  # Cyrillic о
        "shop_bot\u200b",
        "shop\tbot",
        "a" * 30 + "bot",
        "https://example.com/shop_bot",
        "https://t.me/shop_bot/12",
        "https://t.me/",
        "http://[::1",
    ],
)
def test_telegram_bad_handle_is_invalid_with_a_hint(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        telegram.normalize_handle(raw)
    assert caught.value.field == "handle"
    assert caught.value.message


def test_telegram_look_alike_letter_is_named_in_the_message() -> None:
    with pytest.raises(Invalid, match="U\\+043E"):
        telegram.normalize_handle("shop_b\u043et")


def test_telegram_welcome_answers_a_private_start_in_the_webhook_response() -> None:
    [event] = telegram.parse(sample("start.json"))
    assert telegram.welcome_response(event, "Hi!") == {
        "method": "sendMessage",
        "chat_id": 111222333,
        "text": "Hi!",
    }


@pytest.mark.parametrize("name", ["group_start.json", "text_message.json", "blocked.json"])
def test_telegram_welcome_is_only_for_a_private_start(name: str) -> None:
    [event] = telegram.parse(sample(name))
    assert telegram.welcome_response(event, "Hi!") is None


def test_telegram_webhook_setup_names_url_secret_and_updates() -> None:
    setup = telegram.webhook_setup("https://acq.example/hooks/telegram/3", {"secret": "abcd…"})
    assert "setWebhook" in setup
    assert "url=https://acq.example/hooks/telegram/3" in setup
    assert "secret_token=abcd…" in setup
    assert "my_chat_member" in setup
