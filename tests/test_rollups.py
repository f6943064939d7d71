"""The daily rollup: equal to a direct count over the base tables, idempotent, convergent after
late and re-pointed events, safe under concurrent refreshes.

`World` builds base rows with plain inserts and keeps them in memory, and `expected_*` count
them directly in Python by the rules in acquisition/dashboard.py: the rollup must agree."""

from __future__ import annotations

import random
import threading
import time
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import delete, func, select

from acquisition import dashboard, rollups
from acquisition.dashboard import Filters
from acquisition.db import Database
from acquisition.models import (
    Channel,
    Click,
    ConsentEvent,
    DailyStat,
    Link,
    Placement,
    RollupDay,
    Start,
    Subscriber,
    WebhookDelivery,
    WebhookEvent,
    WeeklyStat,
)

NOW = datetime(2026, 3, 31, 12, 0, tzinfo=UTC)
UTM = ("source", "medium", "campaign", "content")


@dataclass
class World:
    """Base rows as inserted, for the reference count."""

    db: Database
    channels: dict[int, str] = field(default_factory=dict)  # id -> messenger
    placements: dict[int, Decimal | None] = field(default_factory=dict)
    links: dict[int, int | None] = field(default_factory=dict)  # id -> placement id
    link_utm: dict[int, dict[str, str | None]] = field(default_factory=dict)
    clicks: list[dict[str, Any]] = field(default_factory=list)
    starts: dict[int, dict[str, Any]] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)
    _serial: int = 0

    def _next(self) -> int:
        self._serial += 1
        return self._serial

    def channel(self, messenger: str = "telegram", name: str = "Shop") -> int:
        with self.db.writer.begin() as s:
            row = Channel(
                messenger=messenger, handle=f"h{self._next()}_bot", name=name, credentials={}
            )
            s.add(row)
            s.flush()
            s.add(
                WebhookDelivery(
                    channel_id=row.id,
                    via="webhook",
                    received_at=NOW,
                    body="{}",
                    body_sha256=f"{row.id:064d}",
                )
            )
        self.channels[row.id] = messenger
        return row.id

    def placement(self, name: str, cost: str | None = None) -> int:
        with self.db.writer.begin() as s:
            row = Placement(name=name, kind="print", cost=Decimal(cost) if cost else None)
            s.add(row)
        self.placements[row.id] = row.cost
        return row.id

    def link(self, code: str, placement: int | None = None, **utm: str | None) -> int:
        with self.db.writer.begin() as s:
            row = Link(code=code, placement_id=placement, **utm)
            s.add(row)
        self.links[row.id] = placement
        self.link_utm[row.id] = {name: utm.get(name) for name in UTM}
        return row.id

    def move_link(self, link: int, placement: int | None) -> None:
        with self.db.writer.begin() as s:
            s.get_one(Link, link).placement_id = placement
        self.links[link] = placement

    def click(
        self,
        link: int,
        at: datetime,
        channel: int | None = None,
        visitor: str = "human",
        **utm: str | None,
    ) -> None:
        values = {name: utm.get(name) for name in UTM}
        with self.db.writer.begin() as s:
            s.add(
                Click(
                    link_id=link,
                    channel_id=channel,
                    ref=f"R{self._next():011d}",
                    at=at,
                    visitor=visitor,
                    device="mobile",
                    via="direct",
                    link_version=1,
                    **values,
                )
            )
        self.clicks.append({"link_id": link, "channel_id": channel, "at": at} | values)
        self.clicks[-1]["visitor"] = visitor

    def subscriber(self, channel: int) -> int:
        with self.db.writer.begin() as s:
            row = Subscriber(
                channel_id=channel,
                messenger_user_id=str(self._next()),
                first_seen_at=NOW,
                last_seen_at=NOW,
            )
            s.add(row)
        return row.id

    def _hook(self, s: Any, subscriber: Subscriber, at: datetime) -> int:
        delivery = s.scalar(
            select(WebhookDelivery.id).where(WebhookDelivery.channel_id == subscriber.channel_id)
        )
        hook = WebhookEvent(
            channel_id=subscriber.channel_id,
            event_id=f"e{self._next()}",
            event_type="test",
            delivery_id=delivery,
            subscriber_id=subscriber.id,
            at=at,
            received_at=at,
        )
        s.add(hook)
        s.flush()
        return int(hook.id)

    def start(
        self, subscriber: int, at: datetime, link: int | None = None, **utm: str | None
    ) -> int:
        # Like a start through a click: the click's (here the link's) UTM, unless given.
        values = {name: utm.get(name) for name in UTM}
        if link is not None and not utm:
            values = dict(self.link_utm[link])
        if link is None and not any(values.values()):
            values["source"] = "direct"
        with self.db.writer.begin() as s:
            person = s.get_one(Subscriber, subscriber)
            row = Start(
                channel_id=person.channel_id,
                subscriber_id=subscriber,
                webhook_event_id=self._hook(s, person, at),
                link_id=link,
                at=at,
                received_at=at,
                **values,
            )
            s.add(row)
            s.flush()
        self.starts[row.id] = {
            "at": at,
            "channel_id": person.channel_id,
            "link_id": link,
            "subscriber_id": subscriber,
        } | values
        return int(row.id)

    def consent(
        self,
        subscriber: int,
        kind: str,
        at: datetime,
        first: int | None = None,
        last: int | None = None,
        received: datetime | None = None,
    ) -> int:
        with self.db.writer.begin() as s:
            person = s.get_one(Subscriber, subscriber)
            row = ConsentEvent(
                channel_id=person.channel_id,
                subscriber_id=subscriber,
                kind=kind,
                method="test",
                at=at,
                received_at=received or at,
                webhook_event_id=self._hook(s, person, at),
                first_start_id=first,
                last_start_id=last,
            )
            s.add(row)
            s.flush()
        self.events.append(
            {
                "id": row.id,
                "subscriber_id": subscriber,
                "channel_id": person.channel_id,
                "kind": kind,
                "at": at,
                "received_at": received or at,
                "first": first,
                "last": last,
            }
        )
        return int(row.id)

    def repoint(self, event: int, first: int | None, last: int | None) -> None:
        with self.db.writer.begin() as s:
            row = s.get_one(ConsentEvent, event)
            row.first_start_id, row.last_start_id = first, last
        for item in self.events:
            if item["id"] == event:
                item["first"], item["last"] = first, last


# the reference count -----------------------------------------------------------------------


def _kind_at(world: World, subscriber: int, at: datetime) -> str | None:
    mine = [e for e in world.events if e["subscriber_id"] == subscriber and e["at"] <= at]
    if not mine:
        return None
    return str(max(mine, key=lambda e: (e["at"], e["received_at"], e["id"]))["kind"])


def facts(world: World, f: Filters, now: datetime = NOW) -> list[dict[str, Any]]:
    """Everything the period counts, one dict per contribution, before the filters."""

    def inside(at: datetime) -> bool:
        return f.since <= at.date() < f.until

    out: list[dict[str, Any]] = []
    for c in world.clicks:
        if inside(c["at"]):
            out.append(
                {name: c[name] or "" for name in UTM}
                | {"day": c["at"].date(), "link_id": c["link_id"], "channel_id": c["channel_id"]}
                | {
                    "clicks": int(c["visitor"] == "human"),
                    "previews": int(c["visitor"] == "preview"),
                    "bots": int(c["visitor"] == "bot"),
                }
            )
    for s in world.starts.values():
        if inside(s["at"]):
            out.append(
                {name: s[name] or "" for name in UTM}
                | {"day": s["at"].date(), "link_id": s["link_id"], "channel_id": s["channel_id"]}
                | {"starts": 1}
            )
    for kind in ("opt_in", "opt_out"):
        first: dict[int, dict[str, Any]] = {}
        for e in sorted(world.events, key=lambda e: (e["at"], e["id"])):
            if e["kind"] == kind and inside(e["at"]):
                first.setdefault(e["subscriber_id"], e)
        for e in first.values():
            touch = world.starts.get(e[f.attribution])
            dims = {name: (touch[name] or "") if touch else "" for name in UTM}
            if touch is None:
                dims["source"] = "direct"
            fact = dims | {
                "day": e["at"].date(),
                "link_id": touch["link_id"] if touch else None,
                "channel_id": e["channel_id"],
                "optins" if kind == "opt_in" else "optouts": 1,
            }
            if kind == "opt_in":
                for n in (7, 30):
                    if e["at"] <= now - timedelta(days=n):
                        fact[f"matured_{n}d"] = 1
                        kept = _kind_at(world, e["subscriber_id"], e["at"] + timedelta(days=n))
                        fact[f"retained_{n}d"] = int(kept == "opt_in")
            out.append(fact)
    for fact in out:
        link = fact["link_id"]
        fact["placement"] = world.links.get(link) if link else None
    return [fact for fact in out if _matches(fact, f)]


def _matches(fact: dict[str, Any], f: Filters) -> bool:
    return (
        (f.campaign is None or fact["campaign"] == f.campaign)
        and (f.source is None or fact["source"] == f.source)
        and (f.channel_id is None or fact["channel_id"] == f.channel_id)
        and (f.placement_id is None or fact["placement"] == f.placement_id)
    )


COUNTED = (
    "impressions",
    "clicks",
    "previews",
    "bots",
    "starts",
    "optins",
    "optouts",
    "retained_7d",
    "retained_30d",
    "matured_7d",
    "matured_30d",
)


def _total(world: World, found: list[dict[str, Any]], costed: bool = True) -> dict[str, Any]:
    total = {name: sum(fact.get(name, 0) for fact in found) for name in COUNTED}
    costs = [world.placements[p] for p in {f["placement"] for f in found} if p is not None]
    known = [cost for cost in costs if cost is not None]
    total["cost"] = sum(known, Decimal(0)) if known and costed else None
    return total


def expected_funnel(world: World, f: Filters, now: datetime = NOW) -> dict[str, Any]:
    return _total(world, facts(world, f, now))


def expected_breakdown(world: World, f: Filters, group: str) -> dict[Any, dict[str, Any]]:
    groups: dict[Any, list[dict[str, Any]]] = defaultdict(list)
    for fact in facts(world, f):
        if group in UTM:
            key = fact[group] or None
        elif group == "placement":
            key = fact["placement"]
        elif group == "channel":
            key = fact["channel_id"]
        elif group == "messenger":
            key = world.channels.get(fact["channel_id"])
        elif group == "link":
            key = fact["link_id"]
        else:
            key = fact["day"].isoformat()
        groups[key].append(fact)
    return {key: _total(world, found, group != "day") for key, found in groups.items()}


def funnel_numbers(funnel: dashboard.Funnel) -> dict[str, Any]:
    numbers = {name: getattr(funnel, name) for name in COUNTED[:7]}
    numbers["retained_7d"] = funnel.still_subscribed_7d
    numbers["retained_30d"] = funnel.still_subscribed_30d
    numbers["matured_7d"], numbers["matured_30d"] = funnel.matured_7d, funnel.matured_30d
    numbers["cost"] = funnel.cost
    return numbers


def row_numbers(row: dashboard.Row) -> dict[str, Any]:
    numbers = {name: getattr(row, name) for name in COUNTED[:7]}
    numbers["retained_7d"] = row.still_subscribed_7d
    numbers["retained_30d"] = row.still_subscribed_30d
    numbers["matured_7d"], numbers["matured_30d"] = row.matured_7d, row.matured_30d
    numbers["cost"] = row.cost
    return numbers


def assert_agrees(world: World, f: Filters) -> None:
    with world.db.reader() as s:
        assert funnel_numbers(dashboard.funnel(s, f)) == expected_funnel(world, f)
        this, before = dashboard.compare(s, f)
        earlier = replace(f, since=f.since - (f.until - f.since), until=f.since)
        assert funnel_numbers(this) == expected_funnel(world, f)
        assert funnel_numbers(before) == expected_funnel(world, earlier)
        for group in dashboard.GROUPS:
            rows = dashboard.breakdown(s, f, group, limit=10_000)
            assert {row.key: row_numbers(row) for row in rows} == expected_breakdown(
                world, f, group
            ), group
            order = [(-row.optins, -row.clicks) for row in rows]
            assert order == sorted(order)
        by_day = {p.day: p for p in dashboard.series(s, f)}
        assert len(by_day) == (f.until - f.since).days
        for key, numbers in expected_breakdown(world, f, "day").items():
            point = by_day[date.fromisoformat(key)]
            for name in ("impressions", "clicks", "starts", "optins", "optouts"):
                assert getattr(point, name) == numbers[name], (key, name)


def random_world(db: Database, seed: int) -> World:
    rng = random.Random(seed)
    world = World(db)
    channels = [world.channel("telegram"), world.channel("viber", "Shop Viber")]
    placements = [world.placement("A", "100.00"), world.placement("B"), world.placement("C", "5")]
    choices = {
        "source": ["yandex", "vk", "flyer", None],
        "medium": ["cpc", "print", None],
        "campaign": ["spring", "summer", None],
        "content": ["a", "b", None],
    }
    links = [
        world.link(
            f"L{n}",
            rng.choice([*placements, None]),
            **{name: rng.choice(values) for name, values in choices.items()},
        )
        for n in range(5)
    ]

    def moment() -> datetime:
        return NOW - timedelta(seconds=rng.randrange(45 * 86400))

    def utm() -> dict[str, str | None]:
        return {name: rng.choice(values) for name, values in choices.items()}

    for _ in range(120):
        visitor = rng.choices(["human", "preview", "bot"], [8, 1, 1])[0]
        world.click(rng.choice(links), moment(), rng.choice([*channels, None]), visitor, **utm())
    for _ in range(25):
        person = world.subscriber(rng.choice(channels))
        touches = [
            world.start(person, moment(), rng.choice([*links, None]), **utm())
            for _ in range(rng.randrange(4))
        ]
        at = moment()
        for _ in range(rng.randrange(1, 5)):
            kind = rng.choices(["opt_in", "opt_out"], [7, 3])[0]
            first, last = rng.choice([*touches, None]), rng.choice([*touches, None])
            world.consent(person, kind, at, first, last, at + timedelta(seconds=rng.random()))
            # Next event: the same day, exactly 7 or 30 days later (the edges), or anywhere.
            at = rng.choice(
                [
                    at + timedelta(minutes=rng.randrange(1, 600)),
                    at + timedelta(days=7),
                    at + timedelta(days=30),
                    at,
                    moment(),
                ]
            )
            at = min(at, NOW)
    return world


def random_filters(rng: random.Random, world: World) -> Filters:
    start = (NOW - timedelta(days=rng.randrange(1, 50))).date()
    return Filters(
        since=start,
        until=start + timedelta(days=rng.randrange(1, 50)),
        campaign=rng.choice([None, None, "spring", "summer"]),
        source=rng.choice([None, None, "vk", "direct"]),
        channel_id=rng.choice([None, None, *world.channels]),
        placement_id=rng.choice([None, None, *world.placements]),
        attribution=rng.choice(["first", "last"]),
    )


# tests -------------------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_rollup_equals_a_direct_count_of_random_data(db: Database, seed: int) -> None:
    world = random_world(db, seed)
    rollups.rebuild(db.writer, now=NOW)
    rng = random.Random(seed)
    everything = Filters((NOW - timedelta(days=60)).date(), NOW.date() + timedelta(days=1))
    assert_agrees(world, everything)
    assert_agrees(world, Filters(everything.since, everything.until, attribution="last"))
    for _ in range(6):
        assert_agrees(world, random_filters(rng, world))


def assert_same_as_rebuilt(db: Database, now: datetime = NOW) -> None:
    """What the refreshes left is exactly what recomputing every day gives (no stale rows)."""
    refreshed = _snapshot(db)
    rollups.rebuild(db.writer, now=now)
    assert refreshed == _snapshot(db)


def _snapshot(db: Database) -> list[tuple[Any, ...]]:
    """Every daily and weekly rollup row."""
    rows = []
    with db.reader() as s:
        for table in (DailyStat, WeeklyStat):
            columns = [c.name for c in table.__table__.columns]
            for row in s.scalars(select(table)).all():
                rows.append((table.__tablename__, *(getattr(row, name) for name in columns)))
    return sorted(rows)


def test_refresh_is_idempotent(db: Database) -> None:
    world = random_world(db, 7)
    rollups.rebuild(db.writer, now=NOW)
    first = _snapshot(db)
    for _ in range(2):
        with db.writer.begin() as s:
            assert rollups.refresh(s, NOW) is not None
        assert _snapshot(db) == first
    rollups.rebuild(db.writer, now=NOW)
    assert _snapshot(db) == first
    assert first  # not vacuous
    assert_agrees(world, Filters(date(2026, 2, 1), date(2026, 4, 1)))


def test_refresh_covers_today_yesterday_and_marked_days(db: Database) -> None:
    world = World(db)
    channel = world.channel()
    link = world.link("L", source="flyer")
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW)
    assert done is not None and done.days == (date(2026, 3, 30), date(2026, 3, 31))
    # A late spool drain: clicks of yesterday and of five days ago reach the table now.
    world.click(link, NOW - timedelta(days=1), channel)
    world.click(link, NOW - timedelta(days=5), channel)
    period = Filters(date(2026, 3, 1), date(2026, 4, 1))
    with db.writer.begin() as s:  # another worker's refresher, just after: nothing to do
        assert (
            rollups.refresh(s, NOW + timedelta(seconds=2), fresh_for=timedelta(seconds=5)) is None
        )
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW + timedelta(seconds=10), fresh_for=timedelta(seconds=5))
    assert done is not None and done.days == (date(2026, 3, 31),)  # yesterday: just done
    later = NOW + rollups.YESTERDAY_EVERY + timedelta(seconds=1)
    with db.writer.begin() as s:
        done = rollups.refresh(s, later)
    assert done is not None and done.days == (date(2026, 3, 30), date(2026, 3, 31))
    with db.reader() as s:
        assert dashboard.funnel(s, period).clicks == 1  # the old day is not scanned
    with db.writer.begin() as s:
        rollups.mark_dirty(s, [NOW - timedelta(days=5), NOW], now=NOW)  # today: refreshed anyway
        marked = s.scalars(select(RollupDay.day).where(RollupDay.marked > RollupDay.done)).all()
    assert marked == [date(2026, 3, 26)]
    with db.writer.begin() as s:
        done = rollups.refresh(s, later)
    assert done is not None and date(2026, 3, 26) in done.days
    with db.reader() as s:
        assert dashboard.funnel(s, period).clicks == 2
        assert s.scalar(select(func.count()).where(RollupDay.marked > RollupDay.done)) == 0
    assert_agrees(world, period)


def test_late_opt_out_converges_retention_of_earlier_opt_ins(db: Database) -> None:
    world = World(db)
    person = world.subscriber(world.channel())
    touch = world.start(person, NOW - timedelta(days=20), world.link("L", source="vk"))
    opted_in = NOW - timedelta(days=20)
    world.consent(person, "opt_in", opted_in, touch, touch)
    rollups.rebuild(db.writer, now=NOW)
    period = Filters(date(2026, 3, 1), date(2026, 4, 1))
    with db.reader() as s:
        assert dashboard.funnel(s, period).still_subscribed_7d == 1
    # An opt-out delivered now, with the provider's time 15 days ago (inside the 7-day window).
    world.consent(person, "opt_out", opted_in + timedelta(days=5), touch, touch)
    with db.writer.begin() as s:
        rollups.mark_dirty(s, [opted_in + timedelta(days=5)])
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW)
    assert done is not None and opted_in.date() in done.people_days
    with db.reader() as s:
        result = dashboard.funnel(s, period)
    assert (result.optins, result.optouts, result.still_subscribed_7d) == (1, 1, 0)
    assert_agrees(world, period)
    assert_same_as_rebuilt(db)


def test_late_opt_out_of_yesterday_reaches_a_cohort_already_judged(db: Database) -> None:
    world = World(db)
    person = world.subscriber(world.channel())
    opted_in = datetime(2026, 3, 23, 10, tzinfo=UTC)
    world.consent(person, "opt_in", opted_in)
    after_midnight = datetime(2026, 3, 31, 0, 30, tzinfo=UTC)
    rollups.rebuild(db.writer, now=after_midnight)  # its 7-day window closed at midnight
    cohort = Filters(date(2026, 3, 23), date(2026, 3, 24))
    with db.reader() as s:
        assert dashboard.funnel(s, cohort).still_subscribed_7d == 1
    # Blocked on the 30th at 9:00, an hour before the week was up; delivered at 2:00 today.
    world.consent(person, "opt_out", opted_in + timedelta(days=7) - timedelta(hours=1))
    late = datetime(2026, 3, 31, 2, tzinfo=UTC)
    with db.writer.begin() as s:
        rollups.mark_dirty(s, [opted_in + timedelta(days=7) - timedelta(hours=1)], now=late)
    with db.writer.begin() as s:
        done = rollups.refresh(s, late)
    # One day per window (Feb 28 for 30 days, Mar 23 for 7), not the whole month before the
    # event; and Mar 24, whose week is up today, as it matures.
    assert done is not None
    assert done.people_days == (date(2026, 2, 28), date(2026, 3, 23), date(2026, 3, 24))
    with db.reader() as s:
        result = dashboard.funnel(s, cohort)
    assert (result.matured_7d, result.still_subscribed_7d) == (1, 0)
    assert_same_as_rebuilt(db, late)


def test_late_earlier_opt_in_moves_who_is_new_in_a_period(db: Database) -> None:
    world = World(db)
    person = world.subscriber(world.channel())
    vk = world.start(person, NOW - timedelta(days=3), world.link("V", source="vk"))
    world.consent(person, "opt_in", NOW - timedelta(days=3), vk, vk)
    rollups.rebuild(db.writer, now=NOW)
    # A report of an opt-in ten days ago, through a flyer, arrives late.
    flyer = world.start(person, NOW - timedelta(days=10), world.link("F", source="flyer"))
    world.consent(person, "opt_in", NOW - timedelta(days=10), flyer, flyer)
    world.repoint(world.events[0]["id"], flyer, vk)
    with db.writer.begin() as s:
        rollups.mark_dirty(s, [NOW - timedelta(days=10)])
    with db.writer.begin() as s:
        rollups.refresh(s, NOW)
    month = Filters(date(2026, 3, 1), date(2026, 4, 1))
    with db.reader() as s:
        rows = dashboard.breakdown(s, month, "source")
    assert [(row.key, row.optins) for row in rows] == [("flyer", 1), ("vk", 0)]
    assert_agrees(world, month)
    assert_agrees(world, Filters(date(2026, 3, 25), date(2026, 4, 1)))
    assert_same_as_rebuilt(db)


def test_recomputing_people_alone_leaves_no_empty_rows(db: Database) -> None:
    world = World(db)
    person = world.subscriber(world.channel())
    vk = world.start(person, NOW - timedelta(days=12), world.link("V", source="vk"))
    flyer = world.start(person, NOW - timedelta(days=12), world.link("F", source="flyer"))
    opted_in = world.consent(person, "opt_in", NOW - timedelta(days=10), vk, vk)
    rollups.rebuild(db.writer, now=NOW)
    # Re-pointed, and a later day marked: the opt-in's day is recomputed for people only.
    world.repoint(opted_in, flyer, flyer)
    with db.writer.begin() as s:
        rollups.mark_dirty(s, [NOW - timedelta(days=5)])
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW)
    assert done is not None and (NOW - timedelta(days=10)).date() in done.people_days
    with db.reader() as s:
        days = s.scalars(select(DailyStat.day).where(DailyStat.source == "vk")).all()
    assert days == [(NOW - timedelta(days=12)).date()]  # the vk start's row, not the opt-in's
    assert_agrees(world, Filters(date(2026, 3, 1), date(2026, 4, 1)))
    assert_same_as_rebuilt(db)


def test_retention_is_counted_once_opt_ins_are_old_enough(db: Database) -> None:
    world = World(db)
    person = world.subscriber(world.channel())
    world.consent(person, "opt_in", NOW)
    week = Filters(date(2026, 3, 31), date(2026, 4, 1))
    # Judged from the moment the opt-in is 7 days old, once the refresh after it has run.
    for days, matured in ((0, 0), (1, 0), (6, 0), (7, 1), (9, 1)):
        with db.writer.begin() as s:
            rollups.refresh(s, NOW + timedelta(days=days))
        with db.reader() as s:
            result = dashboard.funnel(s, week)
        assert (result.optins, result.matured_7d, result.still_subscribed_7d) == (
            1,
            matured,
            matured,
        ), days
    with db.reader() as s:
        settled = s.scalar(select(RollupDay.settled).where(RollupDay.day == week.since))
    assert settled is False
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW + timedelta(days=32))
    assert done is not None and date(2026, 3, 31) in done.people_days
    with db.reader() as s:
        result = dashboard.funnel(s, week)
        settled = s.scalar(select(RollupDay.settled).where(RollupDay.day == week.since))
    assert (result.matured_30d, result.still_subscribed_30d, settled) == (1, 1, True)
    assert_same_as_rebuilt(db, NOW + timedelta(days=32))


def test_concurrent_refreshes_do_not_double_count(db: Database) -> None:
    world = random_world(db, 11)
    rollups.rebuild(db.writer, now=NOW)
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait()
            with db.writer.begin() as s:
                rollups.mark_dirty(s, [NOW - timedelta(days=n) for n in range(0, 45, 9)])
            with db.writer.begin() as s:
                rollups.refresh(s, NOW)
            rollups.rebuild(db.writer, since=date(2026, 3, 1), now=NOW)
        except BaseException as error:  # collected and re-raised in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with db.writer.begin() as s:
        rollups.refresh(s, NOW)
    assert_agrees(world, Filters(date(2026, 2, 1), date(2026, 4, 1)))
    assert_same_as_rebuilt(db)


def test_a_mark_made_while_a_refresh_runs_is_not_lost(db: Database) -> None:
    world = World(db)
    channel = world.channel()
    link = world.link("L")
    old = NOW - timedelta(days=5)
    # Another transaction adds a late click and marks its day, and commits only after a
    # refresh began: that refresh may miss the click, but then the day must stay dirty.
    marker = db.writer()
    marker.begin()
    marker.add(
        Click(
            link_id=link,
            channel_id=channel,
            ref="LATE00000001",
            at=old,
            visitor="human",
            device="mobile",
            via="direct",
            link_version=1,
        )
    )
    rollups.mark_dirty(marker, [old])
    marker.flush()
    refreshing = threading.Thread(target=lambda: _refresh(db))
    refreshing.start()
    time.sleep(0.2)
    marker.commit()
    marker.close()
    refreshing.join()
    world.clicks.append(
        {"link_id": link, "channel_id": channel, "at": old, "visitor": "human"} | dict.fromkeys(UTM)
    )
    period = Filters(date(2026, 3, 1), date(2026, 4, 1))
    with db.reader() as s:
        clean = s.scalar(
            select(RollupDay.marked <= RollupDay.done).where(RollupDay.day == old.date())
        )
        counted = dashboard.funnel(s, period).clicks
    assert counted == 1 or not clean
    _refresh(db)
    assert_agrees(world, period)


def _refresh(db: Database) -> None:
    with db.writer.begin() as s:
        rollups.refresh(s, NOW)


def test_rebuild_since_a_day_leaves_earlier_days_alone(db: Database) -> None:
    world = World(db)
    channel = world.channel()
    link = world.link("L")
    world.click(link, NOW - timedelta(days=10), channel)
    world.click(link, NOW - timedelta(days=2), channel)
    rollups.rebuild(db.writer, now=NOW)
    with db.writer.begin() as s:
        s.execute(delete(Click))
    covered = rollups.rebuild(db.writer, since=date(2026, 3, 25), now=NOW)
    assert covered == 7
    with db.reader() as s:
        days = s.scalars(select(DailyStat.day).where(DailyStat.clicks > 0)).all()
    assert days == [date(2026, 3, 21)]


def test_an_empty_database_rebuilds_to_nothing(db: Database) -> None:
    assert rollups.rebuild(db.writer, now=NOW) == 0
    with db.writer.begin() as s:
        done = rollups.refresh(s, NOW)
    assert done is not None and done.people_days == ()
    assert _snapshot(db) == []


def test_impressions_come_from_a_registered_query(db: Database) -> None:
    world = World(db)
    channel = world.channel()
    link = world.link("L", world.placement("Footer", "10"))
    world.click(link, NOW, channel, source="newsletter")
    # Stand-in for the widget beacons: count human clicks as impressions too.
    rollups.count_impressions(
        select(
            Click.at.label("at"),
            Click.link_id.label("link_id"),
            Click.source.label("source"),
        ).where(Click.visitor == "human")
    )
    try:
        rollups.rebuild(db.writer, now=NOW)
    finally:
        rollups.count_impressions(None)
    with db.reader() as s:
        rows = dashboard.breakdown(s, Filters(NOW.date(), NOW.date() + timedelta(1)), "source")
    assert [(row.key, row.impressions, row.clicks) for row in rows] == [("newsletter", 1, 1)]


def test_cli_rebuilds_the_rollup(db: Database, settings: Any, monkeypatch: Any) -> None:
    from acquisition import cli

    world = World(db)
    world.click(world.link("L"), datetime.now(UTC) - timedelta(days=3), world.channel())
    monkeypatch.setenv("ACQUISITION_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ACQUISITION_SECRET_KEY", settings.secret_key)
    since = (datetime.now(UTC) - timedelta(days=5)).date()
    assert cli.main(["rollups", "rebuild", "--since", since.isoformat()]) == 0
    with db.reader() as s:
        assert s.scalar(select(func.sum(DailyStat.clicks))) == 1
