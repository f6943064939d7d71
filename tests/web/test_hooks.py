"""POST/GET /hooks/{messenger}/{channel_id}: every messenger's real body shapes, signed as the
platform signs them, through HTTP; and everything that must be refused with nothing stored."""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import optins
from acquisition.db import Database
from acquisition.models import (
    ConsentEvent,
    RelayItem,
    Start,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
)
from tests import deliveries as d
from tests.conftest import count, drained
from tests.factories import make_channel, make_link

STORED = (WebhookDelivery, WebhookEvent, Subscriber, Start, ConsentEvent, RelayItem)
OPT_IN_METHOD = {
    "telegram": "telegram_start",
    "whatsapp": "whatsapp_first_message",
    "messenger": "meta_referral",
    "instagram": "meta_referral",
    "viber": "viber_first_message",
    "vk": "vk_message",
    "max": "max_bot_started",
}
OPT_OUT_METHOD = {
    "telegram": "telegram_blocked",
    "whatsapp": "whatsapp_marketing_stop",
    "messenger": "meta_stop_notifications",
    "viber": "viber_unsubscribed",
    "vk": "vk_message_deny",
    "max": "max_bot_stopped",
}
WITH_OPT_OUT = tuple(OPT_OUT_METHOD)


@dataclass(frozen=True)
class Setup:
    channel_id: int
    code: str
    ref: str


def setup(client: TestClient, db: Database, messenger: str, **extra: Any) -> Setup:
    """A channel with its credentials, a link with a placement, and one human click on it."""
    channel = make_channel(
        db, messenger, d.HANDLES[messenger], credentials=d.CREDENTIALS[messenger], **extra
    )
    link = make_link(
        db,
        [channel.id],
        campaign="spring",
        source="flyer",
        medium="print",
        placement={"name": "Metro flyer B", "kind": "print"},
    )
    r = client.get(f"/{link.code}", headers={"user-agent": d.PHONE})
    assert r.status_code == 302, r.text
    drained(client)
    return Setup(channel.id, link.code, d.ref_from(r.headers["location"]))


def rows(db: Database, model: Any) -> list[Any]:
    with db.reader() as s:
        return list(s.scalars(select(model).order_by(model.id)))


def nothing_stored(db: Database) -> bool:
    return all(count(db, model) == 0 for model in STORED)


def subscribe(client: TestClient, messenger: str, s: Setup, n: int = 1, at: int = d.T0) -> None:
    """Send what subscribes the person on this platform (Viber: a start, then a message)."""
    r = d.post(client, messenger, s.channel_id, d.start(messenger, s.ref, n, at))
    assert r.status_code == 200, r.text
    if messenger == "viber":
        r = d.post(client, messenger, s.channel_id, d.message(messenger, n + 100, at + 1))
        assert r.status_code == 200, r.text


def placement_row(api: TestClient, attribution: str = "first") -> dict[str, Any]:
    r = api.get(f"/api/v1/stats?group_by=placement&attribution={attribution}")
    assert r.status_code == 200, r.text
    [row] = [row for row in r.json()["rows"] if row["placement"] == "Metro flyer B"]
    return row


# each messenger: start, opt-in, opt-out, stats ------------------------------------------------


@pytest.mark.parametrize("messenger", d.MESSENGERS)
def test_a_signed_start_records_the_touch_the_subscriber_and_an_attributed_opt_in(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    subscribe(api, messenger, s)
    [start] = rows(db, Start)
    assert start.ref == s.ref and start.click_id is not None
    assert (start.source, start.medium, start.campaign) == ("flyer", "print", "spring")
    [subscriber] = rows(db, Subscriber)
    assert subscriber.messenger_user_id == str(d.USER[messenger])
    [consent] = rows(db, ConsentEvent)
    assert (consent.kind, consent.method) == ("opt_in", OPT_IN_METHOD[messenger])
    assert consent.first_start_id == consent.last_start_id == start.id
    row = placement_row(api)
    assert (row["clicks"], row["starts"], row["optins"], row["optouts"]) == (1, 1, 1, 0)
    assert row["conversion"] == 1.0
    listed = api.get(f"/api/v1/subscribers?channel={s.channel_id}").json()["subscribers"]
    assert [(x["messenger_user_id"], x["status"]) for x in listed] == [
        (str(d.USER[messenger]), "subscribed")
    ]


@pytest.mark.parametrize("messenger", WITH_OPT_OUT)
def test_the_platform_opt_out_signal_unsubscribes_and_counts_as_an_opt_out(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    subscribe(api, messenger, s)
    r = d.post(api, messenger, s.channel_id, d.optout(messenger, 2, d.T0 + 3600))
    assert r.status_code == 200, r.text
    kinds = [(c.kind, c.method) for c in rows(db, ConsentEvent)]
    assert kinds == [("opt_in", OPT_IN_METHOD[messenger]), ("opt_out", OPT_OUT_METHOD[messenger])]
    listed = api.get(f"/api/v1/subscribers?channel={s.channel_id}").json()["subscribers"]
    assert [x["status"] for x in listed] == ["unsubscribed"]
    row = placement_row(api)
    assert (row["optins"], row["optouts"]) == (1, 1)


def test_vk_answers_every_delivery_with_the_plain_text_ok(api: TestClient, db: Database) -> None:
    s = setup(api, db, "vk")
    for _ in range(2):
        r = d.post(api, "vk", s.channel_id, d.start("vk", s.ref))
        assert (r.status_code, r.text) == (200, "ok")


# refused deliveries: nothing stored ------------------------------------------------------------


@pytest.mark.parametrize("messenger", ("whatsapp", "messenger", "instagram", "viber"))
def test_a_body_changed_after_signing_is_refused(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    raw = d.encode(d.start(messenger, s.ref))
    headers = d.sign(messenger, raw)
    tampered = raw.replace(s.ref.encode(), b"ZZZZZZZZZZZZ")
    r = d.post(api, messenger, s.channel_id, tampered, headers)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert nothing_stored(db)


@pytest.mark.parametrize("messenger", d.MESSENGERS)
def test_an_unsigned_delivery_is_refused(api: TestClient, db: Database, messenger: str) -> None:
    s = setup(api, db, messenger)
    body = d.start(messenger, s.ref)
    body.pop("secret", None)  # VK's proof is a body field
    r = d.post(api, messenger, s.channel_id, body, {"content-type": "application/json"})
    assert r.status_code == 401
    assert nothing_stored(db)


@pytest.mark.parametrize("messenger", d.MESSENGERS)
def test_a_delivery_signed_with_another_secret_is_refused(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    body = d.start(messenger, s.ref)
    wrong = {key: value + "x" for key, value in d.CREDENTIALS[messenger].items()}
    if messenger == "vk":
        body["secret"] = wrong["secret"]
    raw = d.encode(body)
    r = d.post(api, messenger, s.channel_id, raw, d.sign(messenger, raw, wrong))
    assert r.status_code == 401
    assert nothing_stored(db)


@pytest.mark.parametrize(
    ("messenger", "raw"),
    [
        ("telegram", b"not json"),
        ("telegram", b'{"update_id": "x", "message": {}}'),
        ("telegram", b'{"update_id": 5, "message": {"date": 1, "chat": {}}}'),
        ("whatsapp", b'{"object": "page", "entry": []}'),
        ("messenger", b'{"object": "page", "entry": [{"messaging": [{"sender": {}}]}]}'),
        ("viber", b'{"event": "message", "timestamp": -5}'),
        ("max", b'{"update_type": "bot_started", "timestamp": 1, "user": {}}'),
        ("telegram", b"[1, 2, 3]"),
        ("telegram", "\ufeff{}".encode()),
    ],
)
def test_a_verified_but_malformed_body_is_refused_with_422(
    api: TestClient, db: Database, messenger: str, raw: bytes
) -> None:
    s = setup(api, db, messenger)
    r = d.post(api, messenger, s.channel_id, raw)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["field"] == "body"
    assert nothing_stored(db)


def test_unknown_channels_and_messengers_all_get_the_same_404(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "telegram")
    raw = d.encode(d.start("telegram", s.ref))
    answers = [
        api.post(path, content=raw, headers=d.sign("telegram", raw))
        for path in (
            "/hooks/telegram/999999",
            f"/hooks/viber/{s.channel_id}",
            f"/hooks/icq/{s.channel_id}",
            "/hooks/telegram/abc",
            "/hooks/telegram/" + "9" * 30,
        )
    ]
    assert {r.status_code for r in answers} == {404}
    assert {r.json()["detail"] for r in answers} == {"no webhook here"}
    assert nothing_stored(db)


@pytest.mark.parametrize("messenger", ("whatsapp", "viber", "vk", "max", "messenger"))
def test_a_channel_without_its_credentials_keeps_its_webhook_closed(
    api: TestClient, db: Database, messenger: str
) -> None:
    channel = make_channel(db, messenger, d.HANDLES[messenger])
    body = d.start(messenger, "K7Q2XP9M3TZB")
    r = d.post(api, messenger, channel.id, body)
    assert r.status_code == 403
    fields = {e["field"] for e in r.json()["errors"]}
    assert fields == {f"credentials.{key}" for key in d.CREDENTIALS[messenger]}
    assert "missing" in r.json()["detail"]
    assert nothing_stored(db)
    handshake = api.get(f"/hooks/{messenger}/{channel.id}?hub.mode=subscribe&hub.challenge=1")
    assert handshake.status_code == 403


def test_a_channel_with_only_some_credentials_names_the_missing_ones(
    api: TestClient, db: Database
) -> None:
    channel = make_channel(db, "vk", "mybakery", credentials={"secret": "vk-secret-0123"})
    r = d.post(api, "vk", channel.id, d.start("vk", "K7Q2XP9M3TZB"))
    assert r.status_code == 403
    assert [e["field"] for e in r.json()["errors"]] == ["credentials.confirmation"]


# handshakes ---------------------------------------------------------------------------------


def test_vk_confirmation_request_gets_the_confirmation_string(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "vk")
    body = d.sample("vk", "confirmation.json")
    body["secret"] = d.CREDENTIALS["vk"]["secret"]
    r = d.post(api, "vk", s.channel_id, body)
    assert (r.status_code, r.text) == (200, d.CREDENTIALS["vk"]["confirmation"])
    assert r.headers["content-type"].startswith("text/plain")
    body["secret"] = "guess"
    assert d.post(api, "vk", s.channel_id, body).status_code == 401
    assert nothing_stored(db)


@pytest.mark.parametrize("messenger", d.META)
def test_meta_get_handshake_echoes_the_challenge_only_for_our_verify_token(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    token = d.CREDENTIALS[messenger]["verify_token"]
    url = f"/hooks/{messenger}/{s.channel_id}?hub.mode=subscribe&hub.challenge=1158201444"
    r = api.get(f"{url}&hub.verify_token={token}")
    assert (r.status_code, r.text) == (200, "1158201444")
    assert api.get(f"{url}&hub.verify_token=nope").status_code == 403
    assert api.get(url).status_code == 403


# idempotency, concurrency, ordering ----------------------------------------------------------


@pytest.mark.parametrize("messenger", d.MESSENGERS)
def test_a_replayed_delivery_answers_200_and_is_stored_once(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    body = d.start(messenger, s.ref)
    first, again = (
        d.post(api, messenger, s.channel_id, body),
        d.post(api, messenger, s.channel_id, body),
    )
    assert first.status_code == again.status_code == 200
    assert count(db, WebhookEvent) == count(db, Start) == count(db, WebhookDelivery) == 1
    assert count(db, Subscriber) == 1


@pytest.mark.parametrize("messenger", ("telegram", "whatsapp", "vk"))
def test_the_same_update_posted_from_several_threads_at_once_is_stored_once(
    api: TestClient, db: Database, messenger: str
) -> None:
    s = setup(api, db, messenger)
    raw = d.encode(d.start(messenger, s.ref))
    statuses: list[int] = []
    gate = threading.Barrier(8)

    def deliver() -> None:
        gate.wait()
        statuses.append(d.post(api, messenger, s.channel_id, raw).status_code)

    threads = [threading.Thread(target=deliver) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * 8
    assert count(db, WebhookEvent) == count(db, Start) == count(db, ConsentEvent) == 1
    assert count(db, Subscriber) == 1


def test_an_opt_out_delivered_after_a_later_opt_in_is_ordered_by_provider_time(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "telegram")
    d.post(api, "telegram", s.channel_id, d.start("telegram", s.ref, 1, d.T0 + 100))
    r = d.post(api, "telegram", s.channel_id, d.optout("telegram", 2, d.T0 + 50))
    assert r.status_code == 200
    assert sorted(c.kind for c in rows(db, ConsentEvent)) == ["opt_in", "opt_out"]
    [subscriber] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert subscriber["status"] == "subscribed"


def test_a_start_delivered_after_a_later_block_leaves_the_person_unsubscribed_unwelcomed(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "telegram", welcome_text="Your coupon: SPRING10")
    assert d.post(api, "telegram", s.channel_id, d.optout("telegram", 2, d.T0 + 200)).json() == {}
    r = d.post(api, "telegram", s.channel_id, d.start("telegram", s.ref, 1, d.T0 + 100))
    assert r.json() == {}
    [subscriber] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert subscriber["status"] == "unsubscribed"


# platform rules ------------------------------------------------------------------------------


def test_viber_conversation_started_is_a_touch_but_not_yet_a_subscription(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "viber")
    d.post(api, "viber", s.channel_id, d.start("viber", s.ref))
    assert count(db, Start) == 1 and count(db, ConsentEvent) == 0
    [listed] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert listed["status"] == "unsubscribed"
    assert placement_row(api)["starts"] == 1 and placement_row(api)["optins"] == 0


def test_more_messages_from_a_subscribed_person_add_no_rows(api: TestClient, db: Database) -> None:
    s = setup(api, db, "telegram")
    subscribe(api, "telegram", s)
    for n in range(2, 6):
        r = d.post(api, "telegram", s.channel_id, d.message("telegram", n, d.T0 + n))
        assert r.status_code == 200
    assert count(db, ConsentEvent) == 1 and count(db, WebhookEvent) == 1
    assert count(db, WebhookDelivery) == 1


def test_unblocking_after_a_block_is_a_new_opt_in(api: TestClient, db: Database) -> None:
    s = setup(api, db, "telegram")
    subscribe(api, "telegram", s)
    d.post(api, "telegram", s.channel_id, d.optout("telegram", 2, d.T0 + 10))
    d.post(api, "telegram", s.channel_id, d.unblock(3, d.T0 + 20))
    assert [(c.kind, c.method) for c in rows(db, ConsentEvent)] == [
        ("opt_in", "telegram_start"),
        ("opt_out", "telegram_blocked"),
        ("opt_in", "telegram_unblocked"),
    ]
    [listed] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert listed["status"] == "subscribed"
    assert placement_row(api)["optins"] == 1  # one person, however often they come back


def test_a_whatsapp_marketing_stop_holds_while_the_person_keeps_chatting(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "whatsapp")
    subscribe(api, "whatsapp", s)
    d.post(api, "whatsapp", s.channel_id, d.optout("whatsapp", 2, d.T0 + 10))
    d.post(api, "whatsapp", s.channel_id, d.message("whatsapp", 3, d.T0 + 20))
    [listed] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert listed["status"] == "unsubscribed"
    resume = d.sample("whatsapp", "user_preferences_resume.json")
    item = resume["entry"][0]["changes"][0]["value"]["user_preferences"][0]
    item.update(wa_id=str(d.USER["whatsapp"]), timestamp=d.T0 + 30)
    d.post(api, "whatsapp", s.channel_id, resume)
    [listed] = api.get("/api/v1/subscribers").json()["subscribers"]
    assert listed["status"] == "subscribed"


@pytest.mark.parametrize(
    ("messenger", "name"),
    [
        ("telegram", "callback_query.json"),
        ("viber", "delivered.json"),
        ("viber", "seen.json"),
        ("viber", "webhook.json"),
        ("whatsapp", "status_delivered.json"),
        ("max", "message_callback.json"),
    ],
)
def test_authentic_updates_we_do_not_use_get_200_are_counted_and_stored_nowhere(
    api: TestClient, db: Database, messenger: str, name: str
) -> None:
    s = setup(api, db, messenger)
    before = optins.COUNTERS["events.ignored"]
    r = d.post(api, messenger, s.channel_id, d.sample(messenger, name))
    assert r.status_code == 200
    assert optins.COUNTERS["events.ignored"] == before + 1
    assert nothing_stored(db)


def test_a_start_without_a_ref_or_with_an_unknown_one_is_direct(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "telegram")
    d.post(api, "telegram", s.channel_id, d.start("telegram", None, 1, user=1))
    d.post(api, "telegram", s.channel_id, d.start("telegram", "K7q2xP", 2, user=2))
    assert [(x.ref, x.click_id, x.source) for x in rows(db, Start)] == [
        (None, None, "direct"),
        ("K7q2xP", None, "direct"),
    ]
    by_source = api.get("/api/v1/stats?group_by=source").json()["rows"]
    direct = next(row for row in by_source if row["source"] == "direct")
    assert (direct["clicks"], direct["starts"], direct["optins"]) == (0, 2, 2)


def test_a_ref_of_another_channel_is_not_attributed(api: TestClient, db: Database) -> None:
    s = setup(api, db, "telegram")
    other = make_channel(db, "telegram", "other_bot", credentials=d.CREDENTIALS["telegram"])
    d.post(api, "telegram", other.id, d.start("telegram", s.ref))
    [start] = rows(db, Start)
    assert (start.channel_id, start.click_id, start.source) == (other.id, None, "direct")
    with db.reader() as s:
        assert optins.resolvable(s) == []  # so readers do not try again and again


# instant welcome -----------------------------------------------------------------------------


def test_a_telegram_start_is_answered_with_the_links_welcome_over_the_channels(
    api: TestClient, db: Database
) -> None:
    channel = make_channel(
        db,
        "telegram",
        "shop_bot",
        credentials=d.CREDENTIALS["telegram"],
        welcome_text="Hello from the shop",
    )
    plain = make_link(db, [channel.id])
    special = make_link(db, [channel.id], welcome_text="Your coupon: SPRING10")
    for n, link in enumerate((plain, special), start=1):
        location = api.get(f"/{link.code}", headers={"user-agent": d.PHONE}).headers["location"]
        drained(api)
        body = d.start("telegram", d.ref_from(location), n, user=1000 + n)
        r = d.post(api, "telegram", channel.id, body)
        assert r.json() == {
            "method": "sendMessage",
            "chat_id": 1000 + n,
            "text": "Hello from the shop" if link is plain else "Your coupon: SPRING10",
        }


def test_viber_welcomes_a_conversation_but_never_someone_who_unsubscribed(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "viber", welcome_text="Welcome! Write to subscribe.", name="Bakery")
    r = d.post(api, "viber", s.channel_id, d.start("viber", s.ref, 1, d.T0))
    assert r.json() == {
        "type": "text",
        "text": "Welcome! Write to subscribe.",
        "sender": {"name": "Bakery"},
    }
    d.post(api, "viber", s.channel_id, d.message("viber", 2, d.T0 + 1))
    d.post(api, "viber", s.channel_id, d.optout("viber", 3, d.T0 + 2))
    again = d.post(api, "viber", s.channel_id, d.start("viber", s.ref, 4, d.T0 + 3))
    assert again.json() == {}
    assert count(db, Start) == 2


def test_a_replayed_start_is_not_welcomed_twice(api: TestClient, db: Database) -> None:
    s = setup(api, db, "telegram", welcome_text="Hi")
    body = d.start("telegram", s.ref)
    assert d.post(api, "telegram", s.channel_id, body).json()["text"] == "Hi"
    assert d.post(api, "telegram", s.channel_id, body).json() == {}


# relay ---------------------------------------------------------------------------------------


def test_a_verified_delivery_is_queued_for_the_relay_with_its_signature_headers(
    api: TestClient, db: Database
) -> None:
    s = setup(api, db, "viber", relay_url="http://127.0.0.1:9/hook")
    raw = d.encode(d.sample("viber", "delivered.json"))
    headers = d.sign("viber", raw)
    for _ in range(2):  # the platform's re-delivery is not relayed twice
        assert d.post(api, "viber", s.channel_id, raw, headers).status_code == 200
    [item] = rows(db, RelayItem)
    assert item.url == "http://127.0.0.1:9/hook"
    assert item.body == raw and item.delivered_at is None  # port 9 is closed: still queued
    assert item.headers["x-viber-content-signature"] == headers["x-viber-content-signature"]
    assert item.headers["content-type"] == "application/json"


def test_refused_deliveries_are_never_relayed(api: TestClient, db: Database) -> None:
    s = setup(api, db, "telegram", relay_url="http://127.0.0.1:9/hook")
    raw = json.dumps(d.start("telegram", s.ref)).encode()
    d.post(api, "telegram", s.channel_id, raw, {"content-type": "application/json"})
    assert count(db, RelayItem) == 0
