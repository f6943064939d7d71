"""The dashboard's numbers on a small hand-made month, worked out by hand.

March 2026 on two channels (Telegram "Shop" and Viber "Shop Viber"):

- links: FLYER01 (placement "Metro flyer B", cost 300; spring, flyer/print), FOOTER1 (placement
  "Site footer", no cost; spring, site/web), VKPOST1 (no placement; summer, vk/social);
- clicks: FLYER01 4 humans on Mar 2 (+1 preview and 1 bot without a channel), FOOTER1 3 on
  Mar 3 (2 Telegram, 1 Viber), VKPOST1 2 on Mar 10; FLYER01 1 on Feb 20;
- people: A starts through FLYER01 on Mar 2 and opts in, starts again through FOOTER1 on Mar 5
  and opts in again (first touch flyer, last touch footer), opts out on Mar 20; B starts
  through VKPOST1 on Mar 10 and through FLYER01 on Mar 11, and opts in then (first vk, last
  flyer); C starts without a ref on Mar 3, opts in, opts out on Mar 6; D opts in on Mar 4 with
  no start at all; E (Viber) starts through FOOTER1 on Mar 3 and opts in; F starts through
  FLYER01 on Feb 25 and opts in.
"""

from __future__ import annotations

import time
from dataclasses import asdict, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import insert
from starlette.testclient import TestClient

from acquisition import dashboard, rollups
from acquisition.dashboard import Filters, Funnel
from acquisition.db import Database
from acquisition.errors import Invalid
from acquisition.models import Base
from acquisition.web.app import create_app
from tests.test_rollups import World

NOW = datetime(2026, 4, 15, 12, 0, tzinfo=UTC)
MARCH = Filters(date(2026, 3, 1), date(2026, 3, 31))


def at(day: int, hour: int = 12, month: int = 3) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


@pytest.fixture
def month(db: Database) -> dict[str, int]:
    w = World(db)
    shop, viber = w.channel("telegram", "Shop"), w.channel("viber", "Shop Viber")
    flyer_b = w.placement("Metro flyer B", "300")
    footer = w.placement("Site footer")
    flyer = w.link("FLYER01", flyer_b, campaign="spring", source="flyer", medium="print")
    site = w.link("FOOTER1", footer, campaign="spring", source="site", medium="web")
    vk = w.link("VKPOST1", None, campaign="summer", source="vk", medium="social")
    utm = {"flyer": w.link_utm[flyer], "site": w.link_utm[site], "vk": w.link_utm[vk]}
    for _ in range(4):
        w.click(flyer, at(2, 9), shop, **utm["flyer"])
    w.click(flyer, at(2, 9), None, "preview", **utm["flyer"])
    w.click(flyer, at(2, 9), None, "bot", **utm["flyer"])
    for channel in (shop, shop, viber):
        w.click(site, at(3, 9), channel, **utm["site"])
    for _ in range(2):
        w.click(vk, at(10, 9), shop, **utm["vk"])
    w.click(flyer, at(20, 9, month=2), shop, **utm["flyer"])

    a, b, c, d = (w.subscriber(shop) for _ in range(4))
    e, f = w.subscriber(viber), w.subscriber(shop)
    a1, a2 = w.start(a, at(2, 10), flyer), w.start(a, at(5, 9), site)
    w.consent(a, "opt_in", at(2, 10), a1, a1)
    w.consent(a, "opt_in", at(5, 9), a1, a2)
    w.consent(a, "opt_out", at(20), a1, a2)
    b1, b2 = w.start(b, at(10), vk), w.start(b, at(11, 8), flyer)
    w.consent(b, "opt_in", at(11, 8), b1, b2)
    c1 = w.start(c, at(3, 15))
    w.consent(c, "opt_in", at(3, 15), c1, c1)
    w.consent(c, "opt_out", at(6), c1, c1)
    w.consent(d, "opt_in", at(4))
    e1 = w.start(e, at(3, 16), site)
    w.consent(e, "opt_in", at(3, 16), e1, e1)
    f1 = w.start(f, at(25, month=2), flyer)
    w.consent(f, "opt_in", at(25, month=2), f1, f1)
    rollups.rebuild(db.writer, now=NOW)
    return {
        "shop": shop,
        "viber": viber,
        "flyer_b": flyer_b,
        "footer": footer,
        "flyer": flyer,
        "site": site,
        "vk": vk,
    }


def funnel_of(db: Database, filters: Filters) -> Funnel:
    with db.reader() as s:
        return dashboard.funnel(s, filters)


def rows_of(db: Database, filters: Filters, group: str) -> list[tuple[Any, ...]]:
    with db.reader() as s:
        return [
            (row.key, row.label, row.clicks, row.starts, row.optins, row.optouts)
            for row in dashboard.breakdown(s, filters, group)
        ]


def test_funnel_of_the_month(db: Database, month: dict[str, int]) -> None:
    result = funnel_of(db, MARCH)
    assert asdict(result) == {
        "impressions": 0,
        "clicks": 9,
        "previews": 1,
        "bots": 1,
        "starts": 6,
        "optins": 5,  # A once, though A opted in twice in the month
        "optouts": 2,
        # 7 days on: all but C (opted out after 3 days); 30 days on: B, D, E.
        "still_subscribed_7d": 4,
        "still_subscribed_30d": 3,
        "cost": Decimal("300.00"),  # the flyer placement; the footer has no cost
        "matured_7d": 5,
        "matured_30d": 5,
    }
    assert result.conversion == pytest.approx(5 / 9)
    assert result.cost_per_subscriber == Decimal("60.00")


def test_breakdown_by_source_first_and_last_touch(db: Database, month: dict[str, int]) -> None:
    assert rows_of(db, MARCH, "source") == [
        ("direct", "direct", 0, 1, 2, 1),  # C and D; C opted out
        ("flyer", "flyer", 4, 2, 1, 1),  # A (first touch flyer)
        ("site", "site", 3, 2, 1, 0),  # E
        ("vk", "vk", 2, 1, 1, 0),  # B (first touch vk)
    ]
    last = Filters(MARCH.since, MARCH.until, attribution="last")
    assert rows_of(db, last, "source") == [
        ("flyer", "flyer", 4, 2, 2, 0),  # A's first opt-in of the month and B, by last touch
        ("direct", "direct", 0, 1, 2, 1),  # as many opt-ins, fewer clicks
        ("site", "site", 3, 2, 1, 1),  # E; A's opt-out's last touch was the footer
        ("vk", "vk", 2, 1, 0, 0),
    ]


def test_breakdown_by_placement_carries_cost(db: Database, month: dict[str, int]) -> None:
    with db.reader() as s:
        rows = dashboard.breakdown(s, MARCH, "placement")
    assert [
        (r.key, r.label, r.clicks, r.previews, r.bots, r.optins, r.cost, r.cost_per_subscriber)
        for r in rows
    ] == [
        (None, "(not set)", 2, 0, 0, 3, None, None),  # VKPOST1 (B) and no link at all (C, D)
        (month["flyer_b"], "Metro flyer B", 4, 1, 1, 1, Decimal("300.00"), Decimal("300.00")),
        (month["footer"], "Site footer", 3, 0, 0, 1, None, None),
    ]
    assert rows[1].conversion == 0.25


def test_breakdown_labels_channels_messengers_links_and_days(
    db: Database, month: dict[str, int]
) -> None:
    assert rows_of(db, MARCH, "channel") == [
        (month["shop"], "Shop (Telegram)", 8, 5, 4, 2),
        (month["viber"], "Shop Viber (Viber)", 1, 1, 1, 0),
        (None, "(not set)", 0, 0, 0, 0),  # the preview and the bot
    ]
    assert [row[:2] for row in rows_of(db, MARCH, "messenger")] == [
        ("telegram", "Telegram"),
        ("viber", "Viber"),
        (None, "(not set)"),
    ]
    assert rows_of(db, MARCH, "link") == [
        (None, "(not set)", 0, 1, 2, 1),
        (month["flyer"], "FLYER01", 4, 2, 1, 1),
        (month["site"], "FOOTER1", 3, 2, 1, 0),
        (month["vk"], "VKPOST1", 2, 1, 1, 0),
    ]
    days = rows_of(db, MARCH, "day")
    assert [(key, optins) for key, _label, _c, _s, optins, _o in days if optins] == [
        ("2026-03-03", 2),
        ("2026-03-02", 1),
        ("2026-03-04", 1),
        ("2026-03-11", 1),
    ]
    assert rows_of(db, MARCH, "campaign")[0][:5] == ("spring", "spring", 7, 4, 2)


def test_series_has_every_day_and_adds_up_to_the_funnel(
    db: Database, month: dict[str, int]
) -> None:
    with db.reader() as s:
        points = dashboard.series(s, MARCH)
    assert [p.day for p in points] == [date(2026, 3, 1) + timedelta(n) for n in range(30)]
    by_day = {p.day.day: (p.clicks, p.starts, p.optins, p.optouts) for p in points}
    assert by_day[1] == (0, 0, 0, 0)
    assert by_day[2] == (4, 1, 1, 0)
    assert by_day[3] == (3, 2, 2, 0)
    assert by_day[5] == (0, 1, 0, 0)  # A's second opt-in: A already counted on the 2nd
    assert by_day[20] == (0, 0, 0, 1)
    assert sum(p.optins for p in points) == funnel_of(db, MARCH).optins


def test_filters(db: Database, month: dict[str, int]) -> None:
    spring = Filters(MARCH.since, MARCH.until, campaign="spring")
    assert (funnel_of(db, spring).clicks, funnel_of(db, spring).optins) == (7, 2)
    spring_last = Filters(MARCH.since, MARCH.until, campaign="spring", attribution="last")
    assert funnel_of(db, spring_last).optins == 3  # A, B (via the flyer), E
    viber = funnel_of(db, Filters(MARCH.since, MARCH.until, channel_id=month["viber"]))
    assert (viber.clicks, viber.starts, viber.optins, viber.cost) == (1, 1, 1, None)
    flyer = funnel_of(db, Filters(MARCH.since, MARCH.until, placement_id=month["flyer_b"]))
    assert (flyer.clicks, flyer.previews, flyer.bots, flyer.optins) == (4, 1, 1, 1)
    assert flyer.cost_per_subscriber == Decimal("300.00")
    direct = funnel_of(db, Filters(MARCH.since, MARCH.until, source="direct"))
    assert (direct.clicks, direct.starts, direct.optins, direct.optouts) == (0, 1, 2, 1)
    assert (direct.conversion, direct.cost, direct.cost_per_subscriber) == (0.0, None, None)


def test_a_link_moved_to_another_placement_takes_its_history_along(
    db: Database, month: dict[str, int]
) -> None:
    world = World(db)
    world.move_link(month["vk"], month["footer"])
    with db.reader() as s:
        rows = dashboard.breakdown(s, MARCH, "placement")
    assert [(r.key, r.clicks, r.optins) for r in rows] == [
        (month["footer"], 5, 2),  # VKPOST1's clicks and B now count here
        (None, 0, 2),
        (month["flyer_b"], 4, 1),
    ]


def test_compare_with_the_previous_period(db: Database, month: dict[str, int]) -> None:
    with db.reader() as s:
        now, before = dashboard.compare(s, MARCH)
    assert (now.clicks, now.optins) == (9, 5)
    # 30 days before March 1: Jan 30 to Feb 28 holds F's click, start and opt-in.
    assert (before.clicks, before.starts, before.optins, before.optouts) == (1, 1, 1, 0)
    assert before.cost == Decimal("300.00")


def test_people_count_once_per_channel(db: Database) -> None:
    w = World(db)
    shop, viber = w.channel("telegram", "Shop"), w.channel("viber", "Shop Viber")
    link = w.link("L", source="flyer")
    on_telegram, on_viber = w.subscriber(shop), w.subscriber(viber)  # the same person, say
    for day in (2, 3, 9):  # three /start in a week on Telegram: one person there
        touch = w.start(on_telegram, at(day), link)
        w.consent(on_telegram, "opt_in", at(day), touch, touch)
    touch = w.start(on_viber, at(4), link)
    w.consent(on_viber, "opt_in", at(4), touch, touch)
    rollups.rebuild(db.writer, now=NOW)
    assert funnel_of(db, MARCH).optins == 2
    assert funnel_of(db, MARCH).starts == 4
    assert [row[4] for row in rows_of(db, MARCH, "channel")] == [1, 1]
    # A week on its own counts the Telegram person again, on their first day in it.
    week = Filters(date(2026, 3, 9), date(2026, 3, 16))
    assert (funnel_of(db, week).optins, funnel_of(db, week).starts) == (1, 1)


def test_a_period_without_clicks(db: Database, month: dict[str, int]) -> None:
    quiet = Filters(date(2026, 1, 1), date(2026, 1, 10))
    result = funnel_of(db, quiet)
    assert asdict(result) == asdict(Funnel(0, 0, 0, 0, 0, 0, 0, 0, 0, None))
    assert (result.conversion, result.cost_per_subscriber) == (0.0, None)
    with db.reader() as s:
        assert [p.clicks for p in dashboard.series(s, quiet)] == [0] * 9
        assert dashboard.breakdown(s, quiet, "source") == []


def test_an_empty_database(db: Database) -> None:
    with db.writer.begin() as s:
        rollups.refresh(s)
    with db.reader() as s:
        assert dashboard.funnel(s, MARCH) == Funnel(0, 0, 0, 0, 0, 0, 0, 0, 0, None)
        assert all(dashboard.breakdown(s, MARCH, group) == [] for group in dashboard.GROUPS)
        assert len(dashboard.series(s, MARCH)) == 30
        assert rollups.refreshed_at(s) is not None


def test_bad_arguments_name_the_field(db: Database) -> None:
    with db.reader() as s:
        with pytest.raises(Invalid) as error:
            dashboard.breakdown(s, MARCH, "weather")
        assert error.value.errors[0].field == "group_by"
        with pytest.raises(Invalid):
            dashboard.funnel(s, Filters(MARCH.until, MARCH.since))


def test_breakdown_limit(db: Database, month: dict[str, int]) -> None:
    with db.reader() as s:
        assert [r.key for r in dashboard.breakdown(s, MARCH, "source", limit=2)] == [
            "direct",
            "flyer",
        ]


def test_widget_impressions_count_for_their_placement(db: Database, month: dict[str, int]) -> None:
    tables = Base.metadata.tables
    if "widget_events" not in tables:
        pytest.skip("no widget_events table yet")
    with db.writer.begin() as s:
        widget = s.execute(
            insert(tables["widgets"])
            .values(
                public_id="w1",
                name="Footer widget",
                placement_id=month["footer"],
                config={},
                origins=[],
                version=1,
                created_at=NOW,
                updated_at=NOW,
            )
            .returning(tables["widgets"].c.id)
        ).scalar_one()
        for kind, count in (("impression", 10), ("impression", 5), ("qr", 3)):
            s.execute(
                insert(tables["widget_events"]).values(
                    widget_id=widget,
                    hour=at(3, 9 if count != 5 else 10),
                    kind=kind,
                    messenger="",
                    path="/",
                    source="newsletter",
                    medium="",
                    campaign="spring",
                    referrer_host="",
                    count=count,
                )
            )
    rollups.rebuild(db.writer, now=NOW)
    assert funnel_of(db, MARCH).impressions == 15
    with db.reader() as s:
        rows = {r.key: r for r in dashboard.breakdown(s, MARCH, "placement")}
        assert rows[month["footer"]].impressions == 15
        sources = {r.key: r.impressions for r in dashboard.breakdown(s, MARCH, "source")}
        assert sources["newsletter"] == 15
        assert dashboard.series(s, MARCH)[2].impressions == 15
        spring = Filters(MARCH.since, MARCH.until, campaign="spring")
        assert dashboard.funnel(s, spring).impressions == 15


def test_the_app_fills_the_rollup_on_start_and_keeps_it_current(
    db: Database, settings: Any, tmp_path: Any
) -> None:
    world = World(db)
    channel, link = world.channel(), world.link("L", source="flyer")
    now = datetime.now(UTC)
    world.click(link, now - timedelta(days=3), channel, source="flyer")  # before the rollup
    period = Filters(now.date() - timedelta(days=7), now.date() + timedelta(days=1))
    app = create_app(replace(settings, spool_dir=str(tmp_path / "spool")), db)
    with TestClient(app):
        deadline = time.monotonic() + 10
        while funnel_of(db, period).clicks < 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert funnel_of(db, period).clicks == 1  # the first run filled the past
        world.click(link, now, channel, source="flyer")
        app.state.rollups.poke()
        deadline = time.monotonic() + 10
        while funnel_of(db, period).clicks < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert funnel_of(db, period).clicks == 2
        with db.reader() as s:
            assert rollups.refreshed_at(s) is not None
