"""Facebook Messenger adapter. referral.json and postback_get_started.json are the messengers
README samples; optin_stop.json follows Meta's messaging_optins reference; message_batch.json
batches a message, the page's own echo and a read receipt across two entries."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import messenger
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "messenger"
CREDENTIALS = {"app_secret": "fb-app-secret", "verify_token": "my-verify-token"}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sign(body: bytes, secret: str = CREDENTIALS["app_secret"]) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}"}


def item_body(item: dict[str, object]) -> bytes:
    base = {"sender": {"id": "6543210987654321"}, "timestamp": 1767312000000}
    return json.dumps({"object": "page", "entry": [{"messaging": [{**base, **item}]}]}).encode()


def test_messenger_referral_in_an_existing_thread_is_a_start() -> None:
    [event] = messenger.parse(sample("referral.json"))
    assert event == Event(
        kind="start",
        event_id="<PSID>:1767225600000:start",
        user_id="<PSID>",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        event_type="referral",
        ref="K7q2xP",
        subscribes=True,
    )


def test_messenger_get_started_postback_with_referral_is_a_start() -> None:
    [event] = messenger.parse(sample("postback_get_started.json"))
    assert (event.kind, event.ref, event.event_type) == ("start", "K7q2xP", "postback")
    assert (event.text, event.subscribes) == ("Get Started", True)


def test_messenger_postback_without_referral_is_a_message() -> None:
    body = item_body({"postback": {"mid": "m_1", "title": "Menu", "payload": "MENU"}})
    [event] = messenger.parse(body)
    assert (event.kind, event.event_id, event.ref, event.text) == ("message", "m_1", None, "Menu")


def test_messenger_referral_with_a_foreign_ref_keeps_the_start_without_ref() -> None:
    [event] = messenger.parse(item_body({"referral": {"ref": "a=b&c", "source": "SHORTLINK"}}))
    assert (event.kind, event.ref) == ("start", None)


def test_messenger_stop_notifications_is_an_optout() -> None:
    [event] = messenger.parse(sample("optin_stop.json"))
    assert (event.kind, event.user_id, event.subscribes) == ("optout", "6543210987654321", False)
    assert event.event_id == "6543210987654321:1767312000000:optout"


@pytest.mark.parametrize(
    ("optin", "ref"),
    [
        (
            {
                "type": "notification_messages",
                "notification_messages_status": "RESUME NOTIFICATIONS",
            },
            None,
        ),
        ({"type": "notification_messages", "notification_messages_token": "t"}, None),
        ({"ref": "K7Q2XP9M3TZB"}, "K7Q2XP9M3TZB"),
    ],
)
def test_messenger_resume_or_new_optin_is_an_optin(optin: dict[str, str], ref: str | None) -> None:
    [event] = messenger.parse(item_body({"optin": optin}))
    assert (event.kind, event.ref, event.subscribes) == ("optin", ref, True)


def test_messenger_batch_gives_one_event_per_item_and_ignores_echoes_and_reads() -> None:
    events = messenger.parse(sample("message_batch.json"))
    assert [(event.kind, event.event_type) for event in events] == [
        ("message", "message"),
        ("ignored", "message"),
        ("ignored", "read"),
    ]
    assert events[0].event_id.startswith("m_AG5Hz2Uq7tuwNEhX")
    assert (events[0].text, events[0].subscribes) == ("hello, world!", True)
    assert events[2].event_id == "6543210987654321:1767312000300:ignored"


def test_messenger_entry_without_messaging_gives_no_events() -> None:
    assert messenger.parse(b'{"object": "page", "entry": [{"id": "1", "changes": []}]}') == []


@pytest.mark.parametrize(
    "body",
    [
        b"nope",
        b"[]",
        b'{"object": "instagram", "entry": []}',
        b'{"object": "page"}',
        b'{"object": "page", "entry": [{"messaging": {}}]}',
        b'{"object": "page", "entry": [{"messaging": [{"timestamp": 1}]}]}',
        b'{"object": "page", "entry": [{"messaging": [{"sender": {"id": 1}, "timestamp": 1}]}]}',
        item_body({"timestamp": "1767312000000"}),
        item_body({"timestamp": None}),
        item_body({"referral": "K7Q2XP9M3TZB"}),
        item_body({"message": ["hello"]}),
        item_body({"optin": 1}),
    ],
)
def test_messenger_malformed_delivery_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        messenger.parse(body)


def test_messenger_verify_checks_the_hub_signature_over_the_raw_body() -> None:
    body = sample("referral.json")
    assert messenger.verify(CREDENTIALS, sign(body), body)
    assert not messenger.verify(CREDENTIALS, sign(body), body.replace(b"K7q2xP", b"K7q2xQ"))
    assert not messenger.verify(CREDENTIALS, sign(body, "other"), body)
    assert not messenger.verify(CREDENTIALS, {}, body)
    assert not messenger.verify({}, sign(body), body)


def test_messenger_handshake_echoes_the_challenge_for_our_verify_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "my-verify-token", "hub.challenge": "7"}
    assert messenger.handshake(CREDENTIALS, query, None) == "7"
    assert messenger.handshake(CREDENTIALS, {**query, "hub.verify_token": "x"}, None) is None


def test_messenger_deep_link_carries_ref_and_optional_text() -> None:
    assert (
        messenger.deep_link("mybakery", "K7Q2XP9M3TZB") == "https://m.me/mybakery?ref=K7Q2XP9M3TZB"
    )
    assert messenger.deep_link("mybakery", "K7Q2XP9M3TZB", text="Hi & welcome") == (
        "https://m.me/mybakery?ref=K7Q2XP9M3TZB&text=Hi%20%26%20welcome"
    )


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("mybakery", "mybakery"),
        ("My.Bakery", "My.Bakery"),
        ("@mybakery", "mybakery"),
        ("https://m.me/mybakery", "mybakery"),
        ("m.me/mybakery?ref=x", "mybakery"),
        ("https://www.facebook.com/mybakery/", "mybakery"),
        ("104567891234567", "104567891234567"),
    ],
)
def test_messenger_page_is_normalised(raw: str, handle: str) -> None:
    assert messenger.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "abcd",
        "my_bakery",
        "my bakery",
        "my-bakery",
        "a" * 51,
        "mybаkery",
        "https://m.me/",
        "fb.me/x",
    ],
)
def test_messenger_bad_page_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        messenger.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_messenger_has_no_welcome_in_the_response() -> None:
    [event] = messenger.parse(sample("referral.json"))
    assert messenger.welcome_response(event, "Hi") is None


def test_messenger_webhook_setup_names_url_token_and_fields() -> None:
    setup = messenger.webhook_setup("https://acq.example/hooks/messenger/2", {"verify_token": "v…"})
    for needle in (
        "https://acq.example/hooks/messenger/2",
        "v…",
        "messaging_referrals",
        "messaging_postbacks",
        "messaging_optins",
    ):
        assert needle in setup
