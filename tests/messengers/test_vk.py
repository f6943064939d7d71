"""VK adapter. message_new.json is the messengers README sample; the others follow the callback
schema of VKCOM/vk-api-schema (message_allow/deny, confirmation)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import vk
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "vk"
CREDENTIALS = {"secret": "<secret key>", "confirmation": "a1b2c3d4"}
RECEIVED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def test_vk_message_with_ref_is_a_start() -> None:
    [event] = vk.parse(sample("message_new.json"))
    assert event == Event(
        kind="start",
        event_id="da1b15e9f6d0c3c8a0c937e048cdd3e2b43794d0",
        user_id="612444319",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        event_type="message_new",
        ref="K7q2xP",
        text="Начать",
        subscribes=True,
    )


def test_vk_message_without_ref_is_a_message() -> None:
    [event] = vk.parse(sample("message_plain.json"))
    assert (event.kind, event.ref, event.subscribes) == ("message", None, True)


def test_vk_message_in_a_group_chat_does_not_subscribe() -> None:
    body = json.loads(sample("message_plain.json"))
    body["object"]["message"]["peer_id"] = 2000000001
    [event] = vk.parse(json.dumps(body).encode())
    assert (event.kind, event.subscribes) == ("message", False)


def test_vk_message_allow_is_an_optin_carrying_its_key_as_ref() -> None:
    [event] = vk.parse(sample("message_allow.json"), received_at=RECEIVED)
    assert event == Event(
        kind="optin",
        event_id="5f2e1d0c9b8a7f6e5d4c3b2a19081726354a6b7c",
        user_id="612444319",
        at=RECEIVED,
        event_type="message_allow",
        ref="K7Q2XP9M3TZB",
        subscribes=True,
    )


def test_vk_message_deny_is_an_optout_at_receipt_time() -> None:
    [event] = vk.parse(sample("message_deny.json"), received_at=RECEIVED)
    assert (event.kind, event.user_id, event.at, event.subscribes) == (
        "optout",
        "612444319",
        RECEIVED,
        False,
    )


def test_vk_event_without_time_and_receipt_time_is_stamped_now() -> None:
    before = datetime.now(UTC)
    [event] = vk.parse(sample("message_deny.json"))
    assert before <= event.at <= datetime.now(UTC)


def test_vk_confirmation_is_ignored_by_parse() -> None:
    [event] = vk.parse(sample("confirmation.json"), received_at=RECEIVED)
    assert (event.kind, event.event_id, event.user_id) == ("ignored", "confirmation:214167102", "")


def test_vk_other_callbacks_are_ignored() -> None:
    body = {
        "type": "message_typing_state",
        "event_id": "e1",
        "group_id": 1,
        "object": {"state": "typing", "from_id": 612444319, "to_id": -1},
    }
    [event] = vk.parse(json.dumps(body).encode(), received_at=RECEIVED)
    assert (event.kind, event.user_id, event.event_type) == (
        "ignored",
        "612444319",
        "message_typing_state",
    )


@pytest.mark.parametrize(
    "body",
    [
        b"ok",
        b"[]",
        b'{"group_id": 1}',
        b'{"type": "message_new", "group_id": "1", "event_id": "e"}',
        b'{"type": "message_new", "group_id": 1, "object": {}}',
        b'{"type": "message_new", "group_id": 1, "event_id": "e", "object": []}',
        b'{"type": "message_new", "group_id": 1, "event_id": "e", "object": {"id": 1}}',
        b'{"type": "message_new", "group_id": 1, "event_id": "e", '
        b'"object": {"message": {"from_id": "612444319", "date": 1}}}',
        b'{"type": "message_new", "group_id": 1, "event_id": "e", '
        b'"object": {"message": {"from_id": 612444319}}}',
        b'{"type": "message_deny", "group_id": 1, "event_id": "e", "object": {}}',
    ],
)
def test_vk_malformed_callback_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        vk.parse(body)


def test_vk_verify_checks_the_secret_field_of_the_body() -> None:
    body = sample("message_new.json")
    assert vk.verify(CREDENTIALS, {}, body)
    assert not vk.verify(CREDENTIALS, {}, body.replace(b"<secret key>", b"<secret kez>"))
    assert not vk.verify({"secret": "other"}, {}, body)
    assert not vk.verify({}, {}, body)
    without_secret = {key: value for key, value in json.loads(body).items() if key != "secret"}
    assert not vk.verify(CREDENTIALS, {}, json.dumps(without_secret).encode())


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b'{"secret": 1}', b"\xff", b"[" * 50_000])
def test_vk_verify_is_false_for_a_malformed_body(body: bytes) -> None:
    assert not vk.verify(CREDENTIALS, {}, body)


def test_vk_handshake_answers_a_confirmation_that_carries_our_secret() -> None:
    body = sample("confirmation.json")
    assert vk.is_confirmation(body)
    assert vk.handshake(CREDENTIALS, {}, body) == "a1b2c3d4"
    assert vk.handshake({"secret": "other", "confirmation": "a1b2c3d4"}, {}, body) is None
    assert vk.handshake({"secret": "<secret key>"}, {}, body) is None
    assert vk.handshake(CREDENTIALS, {}, None) is None


def test_vk_handshake_ignores_other_callbacks() -> None:
    body = sample("message_new.json")
    assert not vk.is_confirmation(body)
    assert not vk.is_confirmation(b"nonsense")
    assert vk.handshake(CREDENTIALS, {}, body) is None


def test_vk_deep_link_carries_the_ref_and_ignores_text() -> None:
    assert vk.deep_link("mybakery", "K7Q2XP9M3TZB", text="hi") == (
        "https://vk.me/mybakery?ref=K7Q2XP9M3TZB"
    )


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("mybakery", "mybakery"),
        ("MyBakery", "mybakery"),
        ("club214167102", "club214167102"),
        ("public214167102", "public214167102"),
        ("@my_bakery.spb", "my_bakery.spb"),
        ("https://vk.com/mybakery", "mybakery"),
        ("vk.me/mybakery?ref=x", "mybakery"),
        ("https://m.vk.com/mybakery/", "mybakery"),
        ("https://vk.ru/mybakery", "mybakery"),
    ],
)
def test_vk_community_is_normalised(raw: str, handle: str) -> None:
    assert vk.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw", ["", "a", "my bakery", "my-bakery", "a" * 33, "мойпекарня", "vk.com/", "ok.ru/mybakery"]
)
def test_vk_bad_community_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        vk.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_vk_has_no_welcome_and_a_setup_text() -> None:
    [event] = vk.parse(sample("message_new.json"))
    assert vk.welcome_response(event, "Hi") is None
    setup = vk.webhook_setup(
        "https://acq.example/hooks/vk/6", {"secret": "s…", "confirmation": "a1b2c3d4"}
    )
    for needle in ("https://acq.example/hooks/vk/6", "s…", "a1b2c3d4", "message_deny"):
        assert needle in setup
