"""Instagram adapter. postback_icebreaker.json is the messengers README sample; message.json
follows the same Meta messaging shape."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from pathlib import Path

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import instagram
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "instagram"
CREDENTIALS = {"app_secret": "ig-app-secret", "verify_token": "ig-verify"}


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sign(body: bytes, secret: str = CREDENTIALS["app_secret"]) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}"}


def test_instagram_icebreaker_with_referral_is_a_start() -> None:
    [event] = instagram.parse(sample("postback_icebreaker.json"))
    assert event == Event(
        kind="start",
        event_id="<MESSAGE_ID>",
        user_id="<IGSID>",
        at=datetime(2026, 1, 1, 0, 0, 0, 377000, tzinfo=UTC),
        event_type="postback",
        ref="K7q2xP",
        text="What are your opening hours?",
        subscribes=True,
    )


def test_instagram_direct_message_is_a_message() -> None:
    [event] = instagram.parse(sample("message.json"))
    assert (event.kind, event.text, event.user_id) == (
        "message",
        "Do you deliver?",
        "987654321012345",
    )


def test_instagram_refuses_a_page_delivery() -> None:
    with pytest.raises(Invalid):
        instagram.parse(sample("postback_icebreaker.json").replace(b'"instagram"', b'"page"'))


@pytest.mark.parametrize("body", [b"", b"{}", b'{"object": "instagram", "entry": [1]}'])
def test_instagram_malformed_delivery_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        instagram.parse(body)


def test_instagram_verify_checks_the_hub_signature() -> None:
    body = sample("postback_icebreaker.json")
    assert instagram.verify(CREDENTIALS, sign(body), body)
    assert not instagram.verify(CREDENTIALS, sign(body), body + b" ")
    assert not instagram.verify(CREDENTIALS, sign(body, "other"), body)
    assert not instagram.verify(CREDENTIALS, {}, body)
    assert not instagram.verify({"verify_token": "ig-verify"}, sign(body), body)


def test_instagram_handshake_echoes_the_challenge_for_our_verify_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "ig-verify", "hub.challenge": "abc"}
    assert instagram.handshake(CREDENTIALS, query, None) == "abc"
    assert instagram.handshake(CREDENTIALS, {**query, "hub.verify_token": ""}, None) is None


def test_instagram_deep_link_carries_the_ref_and_ignores_text() -> None:
    link = instagram.deep_link("my.bakery", "K7Q2XP9M3TZB", text="hi")
    assert link == "https://ig.me/m/my.bakery?ref=K7Q2XP9M3TZB"


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("my.bakery", "my.bakery"),
        ("@My_Bakery", "my_bakery"),
        ("https://ig.me/m/my.bakery", "my.bakery"),
        ("ig.me/m/my.bakery?ref=x", "my.bakery"),
        ("https://www.instagram.com/my.bakery/", "my.bakery"),
        ("instagram.com/my.bakery?igsh=abc", "my.bakery"),
        ("a", "a"),
    ],
)
def test_instagram_username_is_normalised(raw: str, handle: str) -> None:
    assert instagram.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "my bakery",
        "my-bakery",
        "a" * 31,
        "mу.bakery",
        "instagram.com/p/Cx1/",
        "ig.me/x/y",
        "ig.me/m/",
    ],
)
def test_instagram_bad_username_is_invalid(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        instagram.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_instagram_has_no_welcome_and_a_setup_text() -> None:
    [event] = instagram.parse(sample("postback_icebreaker.json"))
    assert instagram.welcome_response(event, "Hi") is None
    setup = instagram.webhook_setup("https://acq.example/hooks/instagram/4", {"verify_token": "i…"})
    assert "https://acq.example/hooks/instagram/4" in setup and "i…" in setup
