"""The consent ledger and attribution rules, driven through optins.record with normalised
events (the webhook tests cover the platforms' own bodies)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import sessionmaker

from acquisition import optins, refs, rollups
from acquisition.db import Database
from acquisition.messengers.base import Event
from acquisition.models import (
    Channel,
    Click,
    ConsentEvent,
    Link,
    RollupDay,
    Start,
    Subscriber,
    WebhookEvent,
    utcnow,
)
from tests.conftest import count
from tests.factories import make_channel, make_link

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def make_click(
    db: Database, link: Link, channel_id: int, ref: str | None = None, **extra: Any
) -> str:
    ref = ref or refs.make()
    with db.writer.begin() as s:
        s.add(
            Click(
                link_id=link.id,
                channel_id=channel_id,
                ref=ref,
                at=extra.pop("at", T0),
                visitor="human",
                device="mobile",
                via="link",
                link_version=1,
                **extra,
            )
        )
    return ref


def record(db: Database, channel: Channel, *events: Event, via: str = "webhook") -> optins.Outcome:
    with db.writer.begin() as s:
        body = repr([e.event_id for e in events]).encode()
        return optins.record(
            s, s.get(Channel, channel.id), events, optins.Evidence(body, utcnow(), via)
        )


def start(
    n: int, when: datetime, ref: str | None = None, user: str = "42", subscribes: bool = True
) -> Event:
    return Event("start", f"u{n}", user, when, "message", ref=ref, subscribes=subscribes)


def message(n: int, when: datetime, user: str = "42") -> Event:
    return Event("message", f"u{n}", user, when, "message", subscribes=True)


def optout(n: int, when: datetime, user: str = "42") -> Event:
    return Event("optout", f"u{n}", user, when, "my_chat_member")


def ledger(db: Database) -> list[tuple[str, str, int | None, int | None]]:
    with db.reader() as s:
        rows = s.scalars(select(ConsentEvent).order_by(ConsentEvent.at, ConsentEvent.id))
        return [(c.kind, c.method, c.first_start_id, c.last_start_id) for c in rows]


def starts(db: Database) -> list[Start]:
    with db.reader() as s:
        return list(s.scalars(select(Start).order_by(Start.id)))


def status(db: Database, user: str = "42") -> str | None:
    with db.reader() as s:
        subscriber = s.scalars(select(Subscriber).where(Subscriber.messenger_user_id == user)).one()
        latest = optins.latest(s, subscriber.id)
        return None if latest is None else latest.kind


@pytest.fixture
def channel(db: Database) -> Channel:
    return make_channel(db, "telegram", "shop_bot")


@pytest.fixture
def link(db: Database, channel: Channel) -> Link:
    return make_link(
        db,
        [channel.id],
        campaign="spring",
        source="flyer",
        placement={"name": "Metro flyer B", "kind": "print"},
        welcome_text="Coupon SPRING10",
    )


def test_a_start_resolves_its_ref_to_the_click_link_placement_and_utm(
    db: Database, channel: Channel, link: Link
) -> None:
    ref = make_click(db, link, channel.id, source="newsletter", campaign="spring", medium="email")
    outcome = record(db, channel, start(1, at(1), ref.lower()))  # refs come back in any case
    assert outcome.recorded == 1
    [touch] = starts(db)
    assert (touch.ref, touch.link_id, touch.placement_id) == (ref, link.id, link.placement_id)
    assert (touch.source, touch.medium, touch.campaign) == ("newsletter", "email", "spring")
    assert ledger(db) == [("opt_in", "telegram_start", touch.id, touch.id)]
    assert outcome.reply == {"method": "sendMessage", "chat_id": 42, "text": "Coupon SPRING10"}


def test_a_ref_two_clicks_share_months_apart_is_the_latest_clicks(
    db: Database, channel: Channel, link: Link
) -> None:
    ref = make_click(db, link, channel.id, at=at(-60 * 24 * 200), source="old flyer")
    make_click(db, link, channel.id, ref, at=at(0), source="billboard")
    record(db, channel, start(1, at(1), ref))
    [touch] = starts(db)
    assert touch.source == "billboard"


def test_a_shared_ref_is_the_latest_click_of_the_starts_own_channel(
    db: Database, channel: Channel, link: Link
) -> None:
    other = make_channel(db, "telegram", "other_bot")
    ref = make_click(db, link, channel.id, at=at(-60 * 24 * 200), source="flyer")
    make_click(db, make_link(db, [other.id]), other.id, ref, at=at(0), source="elsewhere")
    record(db, channel, start(1, at(1), ref))
    [touch] = starts(db)
    assert (touch.source, touch.link_id) == ("flyer", link.id)


def test_a_start_that_beats_its_click_to_the_database_is_attributed_when_the_click_lands(
    db: Database, channel: Channel, link: Link
) -> None:
    ref = refs.make()
    record(db, channel, start(1, at(1), ref))
    [touch] = starts(db)
    assert (touch.ref, touch.click_id, touch.source) == (ref, None, "direct")
    with db.reader() as s:
        assert optins.resolvable(s) == []
    make_click(db, link, channel.id, ref, source="flyer", consent_version="v3")
    with db.reader() as s:
        assert optins.resolvable(s) == [ref]
    with db.writer.begin() as s:
        assert optins.resolve_pending(s, [ref, "NOSUCHREF000"]) == 1
    [touch] = starts(db)
    assert (touch.click_id is not None, touch.source, touch.link_id) == (True, "flyer", link.id)
    with db.reader() as s:
        [consent] = s.scalars(select(ConsentEvent)).all()
        assert (consent.first_start_id, consent.consent_version) == (touch.id, "v3")
    with db.writer.begin() as s:
        assert optins.resolve_pending(s, [ref]) == 0  # already attributed


def test_first_touch_is_the_earliest_start_with_a_click_and_last_touch_the_latest_start(
    db: Database, link: Link
) -> None:
    viber = make_channel(db, "viber", "mybakery")
    first_ref = make_click(db, link, viber.id, source="flyer")
    second_ref = make_click(db, link, viber.id, source="instagram")
    record(db, viber, start(1, at(0), None, subscribes=False))  # a direct look first
    record(db, viber, start(2, at(1), first_ref, subscribes=False))
    record(db, viber, start(3, at(2), second_ref, subscribes=False))
    record(db, viber, message(4, at(3)))
    direct, first, second = starts(db)
    assert ledger(db) == [("opt_in", "viber_first_message", first.id, second.id)]
    assert direct.source == "direct"


def test_a_start_delivered_after_the_message_that_subscribed_becomes_its_touch(
    db: Database, channel: Channel, link: Link
) -> None:
    viber = make_channel(db, "viber", "mybakery")
    ref = make_click(db, link, viber.id)
    record(db, viber, message(2, at(2)))
    assert ledger(db) == [("opt_in", "viber_first_message", None, None)]
    record(db, viber, start(1, at(1), ref, subscribes=False))
    [touch] = starts(db)
    assert ledger(db) == [("opt_in", "viber_first_message", touch.id, touch.id)]


def test_explicit_signals_are_always_kept_and_implicit_ones_only_when_they_change_status(
    db: Database, channel: Channel
) -> None:
    record(db, channel, message(1, at(0)))
    record(db, channel, message(2, at(1)))
    record(db, channel, start(3, at(2)))  # pressing Start again is a fresh, explicit yes
    record(db, channel, start(4, at(3)))
    assert [row[:2] for row in ledger(db)] == [
        ("opt_in", "telegram_message"),
        ("opt_in", "telegram_start"),
        ("opt_in", "telegram_start"),
    ]
    assert count(db, WebhookEvent) == 3 and count(db, Start) == 2


def test_an_opt_out_of_someone_never_seen_before_is_kept(db: Database, channel: Channel) -> None:
    outcome = record(db, channel, optout(1, at(0), user="77"))
    assert outcome.recorded == 1
    assert ledger(db) == [("opt_out", "telegram_blocked", None, None)]
    assert status(db, "77") == "opt_out"


def test_status_follows_provider_time_whatever_the_delivery_order(
    db: Database, channel: Channel
) -> None:
    record(db, channel, start(1, at(10)))
    record(db, channel, optout(2, at(5)))
    assert status(db) == "opt_in"
    record(db, channel, optout(3, at(20)))
    record(db, channel, start(4, at(15)))
    assert status(db) == "opt_out"
    # same provider second: the one we received last wins
    record(db, channel, start(5, at(20)))
    assert status(db) == "opt_in"


def test_a_message_after_a_block_delivered_late_does_not_outvote_a_later_opt_out(
    db: Database, channel: Channel
) -> None:
    record(db, channel, start(1, at(0)))
    record(db, channel, optout(2, at(10)))
    record(db, channel, message(3, at(5)))  # subscribed as of minute 5 already: no row
    assert status(db) == "opt_out"
    assert len(ledger(db)) == 2


def test_bot_reports_are_recorded_with_their_own_method(db: Database, channel: Channel) -> None:
    record(db, channel, start(1, at(0)), via="api")
    assert ledger(db)[0][:2] == ("opt_in", "bot_report")


def test_events_without_a_person_and_unknown_kinds_are_ignored(
    db: Database, channel: Channel
) -> None:
    outcome = record(
        db,
        channel,
        Event("ignored", "u1", "42", at(0), "callback_query"),
        Event("start", "u2", "", at(0), "message", subscribes=True),
    )
    assert (outcome.ignored, outcome.recorded) == (2, 0)
    assert count(db, Subscriber) == 0


def test_a_provider_id_longer_than_the_column_is_kept_as_its_digest(
    db: Database, channel: Channel
) -> None:
    long_id = "m_" + "x" * 400
    record(db, channel, Event("start", long_id, "42", at(0), "referral", subscribes=True))
    again = record(db, channel, Event("start", long_id, "42", at(0), "referral", subscribes=True))
    assert again.duplicates == 1
    with db.reader() as s:
        [stored] = s.scalars(select(WebhookEvent.event_id)).all()
    assert stored.startswith("sha256:") and len(stored) == 71


def test_record_leaves_the_commit_to_its_caller(db: Database, channel: Channel) -> None:
    with db.writer() as s:
        optins.record(
            s, s.get(Channel, channel.id), [start(1, at(0))], optins.Evidence(b"{}", utcnow())
        )
        s.rollback()
    assert count(db, Subscriber) == count(db, WebhookEvent) == 0


def test_one_event_recorded_by_many_transactions_at_once_is_stored_once(
    db: Database, channel: Channel
) -> None:
    gate = threading.Barrier(6)
    errors: list[BaseException] = []

    def deliver() -> None:
        gate.wait()
        try:
            record(db, channel, start(1, at(0)))
        except BaseException as error:  # pragma: no cover - reported below
            errors.append(error)

    threads = [threading.Thread(target=deliver) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert count(db, WebhookEvent) == count(db, ConsentEvent) == count(db, Subscriber) == 1


def test_counters_add_up_what_each_delivery_did(db: Database, channel: Channel) -> None:
    before = dict(optins.COUNTERS)
    record(db, channel, start(1, at(0)), message(2, at(1)))
    record(db, channel, start(1, at(0)))

    def grew(name: str) -> int:
        return optins.COUNTERS[name] - before.get(name, 0)

    assert (grew("events.recorded"), grew("events.unchanged"), grew("events.duplicates")) == (
        1,
        1,
        1,
    )


def test_the_drainers_resolver_attributes_waiting_starts_and_never_raises(
    db: Database, channel: Channel, link: Link
) -> None:
    ref = refs.make()
    record(db, channel, start(1, at(1), ref))
    make_click(db, link, channel.id, ref, source="flyer")
    resolve = optins.resolver(db)
    resolve([ref, refs.make()])
    assert starts(db)[0].source == "flyer"
    resolve([])  # nothing waiting: no write at all
    broken = create_engine("sqlite:////nonexistent-dir/acquisition.db")
    down = Database(broken, sessionmaker(broken), sessionmaker(broken))
    optins.resolver(down)([ref])  # the store is down: logged, and the drainer carries on


def test_events_and_attributions_of_an_earlier_day_have_that_days_rollup_recomputed(
    db: Database, channel: Channel, link: Link
) -> None:
    """The dashboard reads the daily rollup, which refreshes only recent days by itself: a
    delayed webhook, or a start attributed once its click lands, must mark its own day."""

    def marked() -> list[object]:
        with db.reader() as s:
            return list(s.scalars(select(RollupDay.day).where(RollupDay.marked > RollupDay.done)))

    def refresh() -> None:
        with db.writer.begin() as s:
            rollups.refresh(s)

    ref = refs.make()
    record(db, channel, start(1, at(1), ref))  # months ago, delivered now
    assert marked() == [T0.date()]
    refresh()
    assert marked() == []
    make_click(db, link, channel.id, ref, source="flyer")
    with db.writer.begin() as s:
        assert optins.resolve_pending(s, [ref]) == 1
    assert marked() == [T0.date()]
    refresh()
    record(db, channel, start(1, at(1), ref))  # a re-delivery stores nothing: marks nothing
    record(db, channel, message(2, datetime.now(UTC)))  # today is refreshed on every run
    assert marked() == []
