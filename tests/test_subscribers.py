"""Subscribers: derived status, CSV cells, and erasure (what goes, what stays as proof)."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from sqlalchemy import select

from acquisition import messengers, optins, subscribers
from acquisition.db import Database
from acquisition.models import (
    Channel,
    ConsentEvent,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
    utcnow,
)
from tests import deliveries as d
from tests.factories import make_channel

SECRET = "test-secret-key-0123456789"


def deliver(db: Database, channel: Channel, body: dict[str, Any]) -> None:
    raw = d.encode(body)
    events = messengers.get(channel.messenger).parse(raw)
    with db.writer.begin() as s:
        optins.record(s, s.get(Channel, channel.id), events, optins.Evidence(raw, utcnow()))


def person(db: Database, user: str) -> Subscriber:
    with db.reader() as s:
        return s.scalars(select(Subscriber).where(Subscriber.messenger_user_id == user)).one()


def erase(db: Database, subscriber_id: int) -> dict[str, Any]:
    with db.writer.begin() as s:
        return subscribers.erase(s, subscribers.get(s, subscriber_id), SECRET)


def two_people_in_one_delivery() -> dict[str, Any]:
    body = d.start("messenger", "K7Q2XP9M3TZB", 1, user="1111111111")
    other = d.start("messenger", None, 2, user="2222222222")["entry"][0]["messaging"][0]
    other["referral"]["ref"] = "OTHERREF0000"
    body["entry"][0]["messaging"].append(other)
    return body


def test_erasing_one_person_of_a_batched_delivery_keeps_the_others_part_intact(
    db: Database,
) -> None:
    channel = make_channel(db, "messenger", "mybakery")
    deliver(db, channel, two_people_in_one_delivery())
    gone = person(db, "1111111111")
    answer = erase(db, gone.id)
    with db.reader() as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
        hooks = {h.subscriber_id: h.event_id for h in s.scalars(select(WebhookEvent))}
    assert delivery.body is not None and delivery.erased_at is not None
    assert "1111111111" not in delivery.body and "K7Q2XP9M3TZB" not in delivery.body
    items = json.loads(delivery.body)["entry"][0]["messaging"]
    assert set(items[0]) == {"erased"} and len(items[0]["erased"]) == 64
    assert items[1]["sender"]["id"] == "2222222222"  # the other person's evidence stays
    assert "1111111111" not in hooks[gone.id] and answer["messenger_user_id"] in hooks[gone.id]
    assert hooks[person(db, "2222222222").id].startswith("2222222222:")


def test_erasing_someone_alone_in_a_delivery_drops_the_body_but_keeps_its_digest(
    db: Database,
) -> None:
    channel = make_channel(db, "telegram", "shop_bot")
    raw = d.encode(d.start("telegram", "K7Q2XP9M3TZB"))
    deliver(db, channel, json.loads(raw))
    with db.reader() as s:
        before = s.scalars(select(ConsentEvent)).one()
    subscriber = person(db, str(d.USER["telegram"]))
    erase(db, subscriber.id)
    with db.reader() as s:
        [delivery] = s.scalars(select(WebhookDelivery)).all()
        after = s.scalars(select(ConsentEvent)).one()
    assert delivery.body is None
    assert delivery.body_sha256 == hashlib.sha256(raw).hexdigest()
    kept = ("kind", "method", "at", "received_at", "webhook_event_id", "first_start_id")
    assert [getattr(after, k) for k in kept] == [getattr(before, k) for k in kept]
    token = subscribers.pseudonym(SECRET, channel.id, str(d.USER["telegram"]))
    erased = person(db, f"{token}:{subscriber.id}")
    assert (erased.id, erased.name, erased.language) == (subscriber.id, None, None)


def test_a_person_who_comes_back_after_erasure_is_a_new_subscriber_and_can_be_erased_again(
    db: Database,
) -> None:
    channel = make_channel(db, "telegram", "shop_bot")
    deliver(db, channel, d.start("telegram", None, 1))
    first = person(db, str(d.USER["telegram"]))
    erase(db, first.id)
    deliver(db, channel, d.start("telegram", None, 1))  # a late re-delivery: nobody new
    deliver(db, channel, d.start("telegram", None, 2))
    again = person(db, str(d.USER["telegram"]))
    assert again.id != first.id and again.erased_at is None
    assert erase(db, again.id)["messenger_user_id"] != erase(db, first.id)["messenger_user_id"]
    with db.reader() as s:
        assert len(s.scalars(select(Subscriber)).all()) == 2


def test_the_pseudonym_is_a_keyed_hash_that_a_guess_of_the_id_cannot_reproduce() -> None:
    token = subscribers.pseudonym(SECRET, 1, "79161234567")
    assert token == subscribers.pseudonym(SECRET, 1, "79161234567")
    assert token != subscribers.pseudonym(SECRET + "x", 1, "79161234567")
    assert token != subscribers.pseudonym(SECRET, 2, "79161234567")
    plain = hashlib.sha256(b"79161234567").hexdigest()
    assert plain[:40] not in token and "79161234567" not in token


@pytest.mark.parametrize(
    ("cell", "shown"),
    [
        ("=1+1", "'=1+1"),
        ("+7 916", "'+7 916"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\tx", "'\tx"),
        ("\rx", "'\rx"),
        ("flyer", "flyer"),
        ("a=b", "a=b"),
        (5, 5),
        (None, None),
    ],
)
def test_csv_cells_that_a_spreadsheet_would_run_are_neutralised(
    cell: object, shown: object
) -> None:
    assert subscribers.escape_cell(cell) == shown


def test_the_ledger_pages_by_id(db: Database) -> None:
    channel = make_channel(db, "telegram", "shop_bot")
    for n in range(5):
        deliver(db, channel, d.start("telegram", None, n, user=100 + n))
    with db.reader() as s:
        first = subscribers.ledger_rows(s, None, 0, limit=3)
        rest = subscribers.ledger_rows(s, channel.id, first[-1][0], limit=3)
        other = subscribers.ledger_rows(s, channel.id + 1, 0)
    assert len(first) == 3 and len(rest) == 2 and other == []
    assert len(first[0]) == len(subscribers.CSV_COLUMNS)
