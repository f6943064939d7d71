"""The consent ledger against a model, driven by Hypothesis: opt-ins, opt-outs, messages and
looks (starts that do not subscribe), with arbitrary provider times (so any delivery order),
re-deliveries and erasure.

The model is the documented rule: explicit signals always count; a message counts only when,
at its own provider time, the person was not subscribed; status is the latest counted signal
by provider time, ties going to the one received last.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    invariant,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import select

from acquisition import optins, subscribers
from acquisition.db import Database
from acquisition.messengers.base import Event
from acquisition.models import (
    Channel,
    ConsentEvent,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
    utcnow,
)
from tests.factories import make_channel

T0 = datetime(2026, 6, 1, tzinfo=UTC)
USERS = ("u1", "u2")
KINDS = {
    "opt_in": ("optin", "my_chat_member"),
    "opt_out": ("optout", "my_chat_member"),
    "start": ("start", "message"),
    "message": ("message", "message"),
}
handles = itertools.count()


@dataclass
class Person:
    signals: list[tuple[int, int, str]] = field(default_factory=list)  # (time, arrival, kind)

    def as_of(self, t: int | None = None) -> str | None:
        counted = [s for s in self.signals if t is None or s[0] <= t]
        return max(counted)[2] if counted else None


class Ledger(RuleBasedStateMachine):
    sent = Bundle("sent")

    def __init__(self, db: Database) -> None:
        super().__init__()
        self.db = db
        self.channel = make_channel(db, "telegram", f"model{next(handles)}_bot")
        self.people = {user: Person() for user in USERS}
        self.erased: dict[str, list[int]] = {user: [] for user in USERS}
        self.arrivals = itertools.count()
        self.numbers = itertools.count(1)
        self.seen: dict[int, tuple[object, ...]] = {}
        self.stored: set[str] = set()

    def _record(self, event: Event) -> optins.Outcome:
        with self.db.writer.begin() as s:
            channel = s.get(Channel, self.channel.id)
            evidence = optins.Evidence(event.event_id.encode(), utcnow())
            return optins.record(s, channel, [event], evidence)

    @rule(
        target=sent,
        user=st.sampled_from(USERS),
        minute=st.integers(0, 30),
        kind=st.sampled_from(tuple(KINDS)),
    )
    def deliver(self, user: str, minute: int, kind: str) -> tuple[Event, str, int]:
        event_kind, event_type = KINDS[kind]
        event = Event(
            event_kind,
            f"{self.channel.id}-{next(self.numbers)}",
            user,  # type: ignore[arg-type]
            T0 + timedelta(minutes=minute),
            event_type,
            subscribes=kind in ("opt_in", "start", "message"),
        )
        self._deliver(event, kind, minute)
        return event, kind, minute

    def _deliver(self, event: Event, kind: str, minute: int) -> None:
        person = self.people[event.user_id]
        arrival = next(self.arrivals)
        counted = None
        if kind == "opt_out":
            counted = "opt_out"
        elif kind in ("opt_in", "start") or person.as_of(minute) != "opt_in":
            counted = "opt_in"
        if counted is not None:
            person.signals.append((minute, arrival, counted))
        if counted is not None or kind == "start":
            self.stored.add(event.event_id)
        outcome = self._record(event)
        assert outcome.recorded + outcome.unchanged == 1
        assert outcome.recorded == (event.event_id in self.stored)

    @rule(sent=sent)
    def redeliver(self, sent: tuple[Event, str, int]) -> None:
        event, kind, minute = sent
        if event.event_id not in self.stored:
            # Never stored (a message that changed nothing): judged again, as if new, and
            # by the person as they are now (a new person if the old one was erased).
            self._deliver(event, kind, minute)
            return
        before = self._count(WebhookEvent), self._count(ConsentEvent), self._count(Subscriber)
        outcome = self._record(event)
        assert (outcome.recorded, outcome.duplicates) == (0, 1)
        assert (
            self._count(WebhookEvent),
            self._count(ConsentEvent),
            self._count(Subscriber),
        ) == before

    @rule(user=st.sampled_from(USERS))
    def erase(self, user: str) -> None:
        with self.db.writer.begin() as s:
            subscriber = s.scalars(
                select(Subscriber).where(
                    Subscriber.channel_id == self.channel.id, Subscriber.messenger_user_id == user
                )
            ).one_or_none()
            if subscriber is None:
                return
            subscribers.erase(s, subscriber, "model-secret-0123456789")
            self.erased[user].append(subscriber.id)
        # Whoever writes in next with this id is, to us, a new person.
        self.people[user] = Person()

    def _count(self, model: object) -> int:
        with self.db.reader() as s:
            return len(
                s.scalars(
                    select(model.id)
                    .join(  # type: ignore[attr-defined]
                        Channel,
                        Channel.id == model.channel_id,  # type: ignore[attr-defined]
                    )
                    .where(Channel.id == self.channel.id)
                ).all()
            )

    @invariant()
    def status_is_what_the_model_says(self) -> None:
        with self.db.reader() as s:
            for user, person in self.people.items():
                subscriber = s.scalars(
                    select(Subscriber).where(
                        Subscriber.channel_id == self.channel.id,
                        Subscriber.messenger_user_id == user,
                    )
                ).one_or_none()
                latest = optins.latest(s, subscriber.id) if subscriber else None
                assert (latest.kind if latest else None) == person.as_of(), user

    @invariant()
    def consent_rows_are_never_changed_and_always_have_evidence(self) -> None:
        with self.db.reader() as s:
            rows = s.execute(
                select(ConsentEvent, WebhookEvent.id, WebhookDelivery.body_sha256)
                .join(WebhookEvent, WebhookEvent.id == ConsentEvent.webhook_event_id)
                .join(WebhookDelivery, WebhookDelivery.id == WebhookEvent.delivery_id)
                .where(ConsentEvent.channel_id == self.channel.id)
            ).all()
            total = s.scalars(
                select(ConsentEvent.id).where(ConsentEvent.channel_id == self.channel.id)
            ).all()
        assert len(rows) == len(total)  # every row points at stored evidence
        for event, _hook, digest in rows:
            proof = (
                event.kind,
                event.method,
                event.at,
                event.received_at,
                event.webhook_event_id,
                event.subscriber_id,
                digest,
            )
            assert self.seen.setdefault(event.id, proof) == proof
        assert len(self.seen) == len(rows)  # nothing was deleted either

    @invariant()
    def erased_people_keep_their_ledger_but_not_their_id(self) -> None:
        with self.db.reader() as s:
            for user, ids in self.erased.items():
                for subscriber_id in ids:
                    subscriber = s.get(Subscriber, subscriber_id)
                    assert subscriber is not None and subscriber.erased_at is not None
                    assert subscriber.messenger_user_id.startswith("erased:")
                    assert user not in subscriber.messenger_user_id


def test_the_consent_ledger_behaves_like_its_model(db: Database) -> None:
    run_state_machine_as_test(
        lambda: Ledger(db),
        settings=settings(
            max_examples=25,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
