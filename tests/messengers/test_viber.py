"""Viber adapter. conversation_started.json is the messengers README sample; the other callbacks
follow the shapes of Viber's REST Bot API reference."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import viber
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "viber"
CREDENTIALS = {"auth_token": "445da6az1s345z78-dazcczb2542zv51a-e0vc5fva17480im9"}
AT = datetime(2016, 3, 12, 6, 29, 57, 627000, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sign(body: bytes, token: str = CREDENTIALS["auth_token"]) -> dict[str, str]:
    return {"x-viber-content-signature": hmac.new(token.encode(), body, hashlib.sha256).hexdigest()}


def test_viber_conversation_started_is_a_start_that_does_not_subscribe() -> None:
    [event] = viber.parse(sample("conversation_started.json"))
    assert event == Event(
        kind="start",
        event_id="conversation_started:4912661846655238145",
        user_id="01234567890A=",
        at=AT,
        event_type="conversation_started",
        ref="K7q2xP",
        language="en",
        user_name="John McClane",
        subscribes=False,
    )


def test_viber_conversation_started_without_context_has_no_ref() -> None:
    body = json.loads(sample("conversation_started.json"))
    del body["context"]
    [event] = viber.parse(json.dumps(body).encode())
    assert (event.kind, event.ref) == ("start", None)


def test_viber_subscribed_is_an_optin() -> None:
    [event] = viber.parse(sample("subscribed.json"))
    assert (event.kind, event.user_id, event.subscribes) == ("optin", "01234567890A=", True)


def test_viber_first_message_subscribes() -> None:
    [event] = viber.parse(sample("message.json"))
    assert (event.kind, event.text, event.subscribes) == (
        "message",
        "a message to the service",
        True,
    )
    assert (event.user_name, event.event_id) == ("John McClane", "message:4912661846655238145")


def test_viber_unsubscribed_is_an_optout() -> None:
    [event] = viber.parse(sample("unsubscribed.json"))
    assert (event.kind, event.user_id, event.subscribes, event.at) == (
        "optout",
        "01234567890A=",
        False,
        AT,
    )


@pytest.mark.parametrize("name", ["delivered.json", "seen.json", "webhook.json"])
def test_viber_receipts_and_the_webhook_check_are_ignored(name: str) -> None:
    [event] = viber.parse(sample(name))
    assert event.kind == "ignored"


def test_viber_delivered_and_seen_of_one_message_have_distinct_ids() -> None:
    [delivered] = viber.parse(sample("delivered.json"))
    [seen] = viber.parse(sample("seen.json"))
    assert delivered.event_id != seen.event_id
    assert delivered.user_id == seen.user_id == "01234567890A="


def test_viber_event_without_token_uses_event_user_and_time() -> None:
    body = json.loads(sample("unsubscribed.json"))
    del body["message_token"]
    [event] = viber.parse(json.dumps(body).encode())
    assert event.event_id == "unsubscribed:01234567890A=:1457764197627"


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"[1]",
        b'{"timestamp": 1457764197627}',
        b'{"event": "message", "timestamp": "1457764197627"}',
        b'{"event": "message", "timestamp": 1457764197627}',
        b'{"event": "message", "timestamp": 1457764197627, "sender": {"id": 5}}',
        b'{"event": "subscribed", "timestamp": 1457764197627, "user": "01234567890A="}',
        b'{"event": "unsubscribed", "timestamp": 1457764197627}',
        b'{"event": "seen", "timestamp": 1457764197627, "message_token": "4912661846655238145"}',
    ],
)
def test_viber_malformed_callback_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        viber.parse(body)


def test_viber_verify_checks_the_hex_hmac_of_the_raw_body() -> None:
    body = sample("conversation_started.json")
    flipped = body[:-3] + bytes([body[-3] ^ 2]) + body[-2:]
    assert viber.verify(CREDENTIALS, sign(body), body)
    assert not viber.verify(CREDENTIALS, sign(body), flipped)
    assert not viber.verify(CREDENTIALS, sign(body, "another-token"), body)
    assert not viber.verify(CREDENTIALS, {}, body)
    assert not viber.verify({}, sign(body), body)
    assert not viber.verify(CREDENTIALS, {"x-viber-content-signature": "sha256=00"}, body)


def test_viber_has_no_handshake() -> None:
    assert viber.handshake(CREDENTIALS, {}, sample("webhook.json")) is None


def test_viber_deep_link_carries_the_ref_as_context_and_optional_text() -> None:
    assert viber.deep_link("mybakery", "K7Q2XP9M3TZB") == (
        "viber://pa?chatURI=mybakery&context=K7Q2XP9M3TZB"
    )
    assert viber.deep_link("mybakery", "K7Q2XP9M3TZB", text="Hi there?") == (
        "viber://pa?chatURI=mybakery&context=K7Q2XP9M3TZB&text=Hi%20there%3F"
    )


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("mybakery", "mybakery"),
        ("My.Bakery-1", "My.Bakery-1"),
        ("viber://pa?chatURI=mybakery&context=abc", "mybakery"),
        ("viber://pa/info?uri=mybakery", "mybakery"),
        ("a", "a"),
    ],
)
def test_viber_uri_is_normalised(raw: str, handle: str) -> None:
    assert viber.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw",
    [
        "",
        ".mybakery",
        "my bakery",
        "my/bakery",
        "a" * 65,
        "mуbakery",
        "viber://pa",
        "https://viber.com/x",
    ],
)
def test_viber_bad_uri_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        viber.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_viber_welcome_answers_conversation_started_with_a_sender() -> None:
    [event] = viber.parse(sample("conversation_started.json"))
    assert viber.welcome_response(event, "Welcome!", sender_name="Bakery " * 6) == {
        "type": "text",
        "text": "Welcome!",
        "sender": {"name": ("Bakery " * 4)[:28]},
    }
    assert viber.welcome_response(event, "Welcome!") == {"type": "text", "text": "Welcome!"}


def test_viber_welcome_is_only_for_conversation_started() -> None:
    [event] = viber.parse(sample("message.json"))
    assert viber.welcome_response(event, "Welcome!", sender_name="Bakery") is None


def test_viber_webhook_setup_names_url_token_and_events() -> None:
    setup = viber.webhook_setup("https://acq.example/hooks/viber/5", {"auth_token": "445d…"})
    for needle in (
        "set_webhook",
        "https://acq.example/hooks/viber/5",
        "445d…",
        "conversation_started",
    ):
        assert needle in setup
