"""WhatsApp adapter. text_with_ref.json is the messengers README sample; the user_preferences
samples are Meta's reference examples; status_delivered.json follows the Cloud API status shape."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from acquisition.errors import Invalid
from acquisition.messengers import whatsapp
from acquisition.messengers.base import Event

SAMPLES = Path(__file__).parents[1] / "samples" / "whatsapp"
CREDENTIALS = {"app_secret": "0123456789abcdef0123456789abcdef", "verify_token": "vt-42"}
RECEIVED = datetime(2026, 2, 1, 12, 0, tzinfo=UTC)


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sign(body: bytes, secret: str = CREDENTIALS["app_secret"]) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"x-hub-signature-256": f"sha256={digest}"}


def with_text(text: str) -> bytes:
    body = json.loads(sample("text_with_ref.json"))
    body["entry"][0]["changes"][0]["value"]["messages"][0]["text"]["body"] = text
    return json.dumps(body).encode()


def test_whatsapp_first_message_with_the_ref_tag_is_a_start() -> None:
    [event] = whatsapp.parse(sample("text_with_ref.json"))
    assert event == Event(
        kind="start",
        event_id="wamid.HBgL…",
        user_id="79161234567",
        at=datetime(2026, 1, 1, tzinfo=UTC),
        event_type="messages",
        ref="K7q2xP",
        text="Hello! I want the summer offer (ref K7q2xP)",
        user_name="Anna",
        subscribes=True,
    )


def test_whatsapp_message_without_a_ref_is_a_message_that_still_opens_the_window() -> None:
    [event] = whatsapp.parse(with_text("Do you deliver on Sundays?"))
    assert (event.kind, event.ref, event.subscribes) == ("message", None, True)


def test_whatsapp_non_text_message_is_a_message() -> None:
    body = json.loads(sample("text_with_ref.json"))
    message = body["entry"][0]["changes"][0]["value"]["messages"][0]
    message.update(type="image", image={"id": "1", "mime_type": "image/jpeg"})
    del message["text"]
    [event] = whatsapp.parse(json.dumps(body).encode())
    assert (event.kind, event.text) == ("message", None)


def test_whatsapp_marketing_stop_is_an_optout_and_resume_an_optin() -> None:
    [stop] = whatsapp.parse(sample("user_preferences_stop.json"))
    [resume] = whatsapp.parse(sample("user_preferences_resume.json"))
    assert (stop.kind, stop.user_id, stop.subscribes) == ("optout", "16505551234", False)
    assert stop.event_id == "16505551234:1739321024:optout"
    assert stop.at == datetime.fromtimestamp(1739321024, UTC)
    assert (resume.kind, resume.subscribes) == ("optin", True)


def test_whatsapp_other_preference_categories_are_ignored() -> None:
    body = json.loads(sample("user_preferences_stop.json"))
    body["entry"][0]["changes"][0]["value"]["user_preferences"][0]["category"] = "other"
    [event] = whatsapp.parse(json.dumps(body).encode())
    assert event.kind == "ignored"


def test_whatsapp_statuses_are_ignored() -> None:
    [event] = whatsapp.parse(sample("status_delivered.json"))
    assert (event.kind, event.user_id, event.event_type) == ("ignored", "16505551234", "statuses")


def test_whatsapp_unknown_field_is_ignored_at_receipt_time() -> None:
    change = {"field": "account_update", "value": {"event": "VERIFIED_ACCOUNT"}}
    data = {"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [change]}]}
    body = json.dumps(data).encode()
    [event] = whatsapp.parse(body, received_at=RECEIVED)
    assert (event.kind, event.event_type, event.at) == ("ignored", "account_update", RECEIVED)


def test_whatsapp_batch_gives_one_event_per_item() -> None:
    body = json.loads(sample("text_with_ref.json"))
    value = body["entry"][0]["changes"][0]["value"]
    second = dict(value["messages"][0], id="wamid.2", text={"body": "and another"})
    value["messages"].append(second)
    body["entry"].append(json.loads(sample("user_preferences_stop.json"))["entry"][0])
    kinds = [event.kind for event in whatsapp.parse(json.dumps(body).encode())]
    assert kinds == ["start", "message", "optout"]


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        b'{"object": "page", "entry": []}',
        b'{"object": "whatsapp_business_account"}',
        b'{"object": "whatsapp_business_account", "entry": {}}',
        b'{"object": "whatsapp_business_account", "entry": ["x"]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"value": {}}]}]}',
        b'{"object": "whatsapp_business_account", "entry": [{"changes": [{"field": "messages"}]}]}',
    ],
)
def test_whatsapp_malformed_delivery_is_invalid(body: bytes) -> None:
    with pytest.raises(Invalid):
        whatsapp.parse(body)


@pytest.mark.parametrize(
    ("key", "value"),
    [("from", 79161234567), ("id", None), ("timestamp", "soon"), ("timestamp", 1.5)],
)
def test_whatsapp_message_with_a_bad_field_is_invalid(key: str, value: object) -> None:
    body = json.loads(sample("text_with_ref.json"))
    body["entry"][0]["changes"][0]["value"]["messages"][0][key] = value
    with pytest.raises(Invalid):
        whatsapp.parse(json.dumps(body).encode())


@pytest.mark.parametrize(
    ("text", "ref"),
    [
        ("Hello (ref: K7Q2XP9M3TZB)", "K7Q2XP9M3TZB"),
        ("Hello (ref: k7q2xp9m3tzb)", "K7Q2XP9M3TZB"),
        ("(REF:K7Q2XP9M3TZB) hi", "K7Q2XP9M3TZB"),
        ("Hello ref: K7Q2XP9M3TZB", "K7Q2XP9M3TZB"),
        ("hello ref K7Q2 XP9M 3TZB thanks", "K7Q2XP9M3TZB"),
        ("ref#K7Q2-XP9M-3TZB", "K7Q2XP9M3TZB"),
        ("I want the offer K7Q2XP9M3TZB please", "K7Q2XP9M3TZB"),
        ("i want the offer k7q2xp9m3tzb", "K7Q2XP9M3TZB"),
        ("code KOQ2XP9M3TZB", "K0Q2XP9M3TZB"),
        ("code K1Q2XP9M3TZL", "K1Q2XP9M3TZ1"),
        ("  (ref:   K7Q2XP9M3TZB  )  ", "K7Q2XP9M3TZB"),
        ("(ref K7q2xP)", "K7q2xP"),
        ("old (ref: AAAAAAAAAAA1) new (ref: K7Q2XP9M3TZB)", "K7Q2XP9M3TZB"),
    ],
)
def test_whatsapp_find_ref_survives_edits(text: str, ref: str) -> None:
    assert whatsapp.find_ref(text) == ref


@pytest.mark.parametrize(
    "text",
    [
        "",
        "Hello, I saw your flyer",
        "call me on 791612345678",
        "it was professional",
        "K7Q2XP9M3TZ",
        "K7Q2XP9M3TZBX",
        "K7Q2XP9M3TZU",
    ],
)
def test_whatsapp_find_ref_finds_nothing_in_ordinary_text(text: str) -> None:
    assert whatsapp.find_ref(text) is None


def test_whatsapp_deep_link_prefills_text_with_the_ref_tag() -> None:
    link = whatsapp.deep_link("79161234567", "K7Q2XP9M3TZB", text="Hi! Summer offer & more")
    assert link == (
        "https://wa.me/79161234567?text=Hi%21%20Summer%20offer%20%26%20more"
        "%20%28ref%3A%20K7Q2XP9M3TZB%29"
    )
    [text] = parse_qs(urlsplit(link).query)["text"]
    assert whatsapp.find_ref(text) == "K7Q2XP9M3TZB"


def test_whatsapp_deep_link_without_text_is_just_the_tag() -> None:
    assert whatsapp.deep_link("79161234567", "K7Q2XP9M3TZB", text="  ") == (
        "https://wa.me/79161234567?text=%28ref%3A%20K7Q2XP9M3TZB%29"
    )
    assert whatsapp.ref_tag("K7Q2XP9M3TZB") == "(ref: K7Q2XP9M3TZB)"


def test_whatsapp_deep_link_encodes_non_latin_text() -> None:
    link = whatsapp.deep_link("79161234567", "K7Q2XP9M3TZB", text="Привет")
    assert link.startswith("https://wa.me/79161234567?text=%D0%9F%D1%80%D0%B8")


def test_whatsapp_deep_link_refuses_a_ref_we_did_not_make() -> None:
    with pytest.raises(ValueError):
        whatsapp.deep_link("79161234567", "K7Q2 XP9M")


def test_whatsapp_verify_accepts_metas_signature() -> None:
    body = sample("text_with_ref.json")
    assert whatsapp.verify(CREDENTIALS, sign(body), body)
    upper = {"x-hub-signature-256": "sha256=" + sign(body)["x-hub-signature-256"][7:].upper()}
    assert whatsapp.verify(CREDENTIALS, upper, body)


def test_whatsapp_verify_rejects_a_flipped_byte_and_wrong_or_missing_secrets() -> None:
    body = sample("text_with_ref.json")
    flipped = body[:10] + bytes([body[10] ^ 1]) + body[11:]
    signature = sign(body)["x-hub-signature-256"]
    assert not whatsapp.verify(CREDENTIALS, sign(body), flipped)
    assert not whatsapp.verify(CREDENTIALS, sign(body, "another-secret"), body)
    assert not whatsapp.verify(CREDENTIALS, {}, body)
    assert not whatsapp.verify({"verify_token": "vt-42"}, sign(body), body)
    assert not whatsapp.verify({"app_secret": ""}, sign(body, ""), body)
    assert not whatsapp.verify(CREDENTIALS, {"x-hub-signature-256": signature[7:]}, body)
    assert not whatsapp.verify(CREDENTIALS, {"x-hub-signature-256": "sha1=" + signature[7:]}, body)
    assert not whatsapp.verify(CREDENTIALS, {"x-hub-signature-256": "sha256=é"}, body)


def test_whatsapp_handshake_echoes_the_challenge_for_our_verify_token() -> None:
    query = {"hub.mode": "subscribe", "hub.verify_token": "vt-42", "hub.challenge": "1158201444"}
    assert whatsapp.handshake(CREDENTIALS, query, None) == "1158201444"
    assert whatsapp.handshake(CREDENTIALS, {**query, "hub.verify_token": "vt-43"}, None) is None
    assert whatsapp.handshake(CREDENTIALS, {**query, "hub.mode": "unsubscribe"}, None) is None
    assert whatsapp.handshake({}, query, None) is None
    assert whatsapp.handshake(CREDENTIALS, {"hub.mode": "subscribe"}, None) is None


@pytest.mark.parametrize(
    ("raw", "handle"),
    [
        ("+7 916 123-45-67", "79161234567"),
        ("79161234567", "79161234567"),
        ("+7\u00a0916\u00a0123\u201145\u201167", "79161234567"),
        ("+7 (916) 123-45-67", "79161234567"),
        ("007 916 1234567", "79161234567"),
        ("wa.me/79161234567", "79161234567"),
        ("https://wa.me/79161234567?text=hi", "79161234567"),
        ("https://api.whatsapp.com/send?phone=79161234567", "79161234567"),
        ("+1 650-555-1234", "16505551234"),
        ("+44 20 7946 0958", "442079460958"),
    ],
)
def test_whatsapp_number_is_normalised_to_e164_digits(raw: str, handle: str) -> None:
    assert whatsapp.normalize_handle(raw) == handle


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "8 916 123-45-67",
        "+7 916 123",
        "+1-800-FLOWERS",
        "+7 916 123-45-67 ext 5",
        "+7 ٩١٦ 123 45 67",
        "wa.me/",
        "https://example.com/79161234567",
        "+7 916\t123 45 67",
        "+999 1234567",
    ],
)
def test_whatsapp_bad_number_is_invalid_with_a_hint(raw: str) -> None:
    with pytest.raises(Invalid) as caught:
        whatsapp.normalize_handle(raw)
    assert caught.value.field == "handle"


def test_whatsapp_has_no_welcome_in_the_response() -> None:
    [event] = whatsapp.parse(sample("text_with_ref.json"))
    assert whatsapp.welcome_response(event, "Hi!") is None


def test_whatsapp_webhook_setup_names_url_token_and_fields() -> None:
    setup = whatsapp.webhook_setup("https://acq.example/hooks/whatsapp/1", {"verify_token": "vt…"})
    assert "https://acq.example/hooks/whatsapp/1" in setup
    assert "vt…" in setup
    assert "messages" in setup and "user_preferences" in setup
