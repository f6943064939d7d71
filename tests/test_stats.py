"""GET /api/v1/stats: the funnel (clicks -> starts -> opt-ins -> opt-outs, conversion) by every
grouping key, first- or last-touch, people counted once per channel."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from starlette.testclient import TestClient

from acquisition import stats
from acquisition.db import Database
from acquisition.models import Channel, Link
from tests import deliveries as d
from tests.conftest import drained
from tests.factories import make_channel, make_link

NOW = int(time.time())
METRICS = {"clicks", "bot_visits", "previews", "starts", "optins", "optouts", "conversion"}


def channel(
    db: Database, messenger: str = "telegram", handle: str = "shop_bot", **extra: Any
) -> Channel:
    return make_channel(
        db, messenger, handle, credentials=d.CREDENTIALS[messenger], name="Shop", **extra
    )


def click(api: TestClient, link: Link) -> str:
    r = api.get(f"/{link.code}", headers={"user-agent": d.PHONE})
    assert r.status_code == 302
    drained(api)
    return d.ref_from(r.headers["location"])


def hook(api: TestClient, messenger: str, channel_id: int, body: dict[str, Any]) -> None:
    assert d.post(api, messenger, channel_id, body).status_code == 200


def funnel(api: TestClient, query: str) -> list[dict[str, Any]]:
    r = api.get(f"/api/v1/stats?{query}")
    assert r.status_code == 200, r.text
    return r.json()["rows"]  # type: ignore[no-any-return]


def row(rows: list[dict[str, Any]], key: str, value: Any) -> dict[str, Any]:
    found = [r for r in rows if r[key] == value]
    assert len(found) == 1, rows
    return found[0]


@pytest.mark.parametrize("group", stats.GROUPS)
def test_every_grouping_key_carries_the_whole_funnel(
    api: TestClient, db: Database, group: str
) -> None:
    bot = channel(db)
    link = make_link(
        db,
        [bot.id],
        campaign="spring",
        source="flyer",
        medium="print",
        content="a",
        placement={"name": "Metro flyer B", "kind": "print"},
    )
    hook(api, "telegram", bot.id, d.start("telegram", click(api, link), 1, NOW))
    hook(api, "telegram", bot.id, d.optout("telegram", 2, NOW + 1))
    today = datetime.fromtimestamp(NOW, UTC).date().isoformat()
    expected = {
        "source": "flyer",
        "medium": "print",
        "campaign": "spring",
        "content": "a",
        "placement": "Metro flyer B",
        "channel": "Shop",
        "messenger": "telegram",
        "link": link.code,
        "day": today,
    }[group]
    rows = funnel(api, f"group_by={group}")
    found = row(rows, group, expected)
    assert set(found) == METRICS | {group}
    assert {k: found[k] for k in METRICS} == {
        "clicks": 1,
        "bot_visits": 0,
        "previews": 0,
        "starts": 1,
        "optins": 1,
        "optouts": 1,
        "conversion": 1.0,
    }


def test_first_touch_is_the_default_and_last_touch_an_option(api: TestClient, db: Database) -> None:
    viber = channel(db, "viber", "mybakery")
    flyer = make_link(db, [viber.id], source="flyer")
    poster = make_link(db, [viber.id], source="poster")
    hook(api, "viber", viber.id, d.start("viber", click(api, flyer), 1, NOW))
    hook(api, "viber", viber.id, d.start("viber", click(api, poster), 2, NOW + 60))
    hook(api, "viber", viber.id, d.message("viber", 3, NOW + 120))
    first = funnel(api, "group_by=source")
    last = funnel(api, "group_by=source&attribution=last")
    assert [(r["source"], r["clicks"], r["starts"], r["optins"]) for r in first] == [
        ("flyer", 1, 1, 1),
        ("poster", 1, 1, 0),
    ]
    assert [(r["source"], r["optins"]) for r in last] == [("poster", 1), ("flyer", 0)]
    assert row(last, "source", "poster")["conversion"] == 1.0
    assert api.get("/api/v1/stats?attribution=middle").json()["errors"][0]["field"] == (
        "attribution"
    )


def test_a_person_counts_once_per_channel_however_often_they_come_back(
    api: TestClient, db: Database
) -> None:
    bot = channel(db)
    other = channel(db, handle="other_bot")
    link = make_link(db, [bot.id], source="flyer")
    hook(api, "telegram", bot.id, d.start("telegram", click(api, link), 1, NOW))
    hook(api, "telegram", bot.id, d.optout("telegram", 2, NOW + 1))
    hook(api, "telegram", bot.id, d.unblock(3, NOW + 2))
    hook(api, "telegram", bot.id, d.start("telegram", click(api, link), 4, NOW + 3))
    hook(api, "telegram", bot.id, d.optout("telegram", 5, NOW + 4))
    hook(api, "telegram", other.id, d.start("telegram", None, 6, NOW + 5))  # same person
    by_channel = funnel(api, "group_by=messenger")
    assert [(r["starts"], r["optins"], r["optouts"]) for r in by_channel] == [(3, 2, 1)]
    flyer = row(funnel(api, "group_by=source"), "source", "flyer")
    assert (flyer["clicks"], flyer["starts"], flyer["optins"], flyer["optouts"]) == (2, 2, 1, 1)
    assert flyer["conversion"] == 0.5


def test_conversion_is_zero_where_there_were_no_clicks(api: TestClient, db: Database) -> None:
    bot = channel(db)
    hook(api, "telegram", bot.id, d.start("telegram", None, 1, NOW))
    direct = row(funnel(api, "group_by=source"), "source", "direct")
    assert (direct["clicks"], direct["optins"], direct["conversion"]) == (0, 1, 0.0)


def test_campaign_and_time_filters_apply_to_every_number(api: TestClient, db: Database) -> None:
    bot = channel(db)
    spring = make_link(db, [bot.id], campaign="spring", source="flyer")
    summer = make_link(db, [bot.id], campaign="summer", source="flyer")
    hook(api, "telegram", bot.id, d.start("telegram", click(api, spring), 1, NOW, user=1))
    hook(api, "telegram", bot.id, d.start("telegram", click(api, summer), 2, NOW, user=2))
    [only] = funnel(api, "group_by=source&campaign=spring")
    assert (only["clicks"], only["starts"], only["optins"]) == (1, 1, 1)
    early = datetime.fromtimestamp(NOW - 3600, UTC).isoformat()
    later = datetime.fromtimestamp(NOW + 3600, UTC).isoformat().replace("+00:00", "Z")
    assert funnel(api, f"group_by=source&to={early.replace('+00:00', 'Z')}") == []
    [both] = funnel(api, f"group_by=source&from={later}".replace("from=", "to="))
    assert (both["clicks"], both["optins"]) == (2, 2)


def test_bot_visits_and_previews_are_still_reported_apart(api: TestClient, db: Database) -> None:
    bot = channel(db)
    link = make_link(db, [bot.id], source="flyer")
    api.get(f"/{link.code}", headers={"user-agent": "TelegramBot (like TwitterBot)"})
    api.get(f"/{link.code}", headers={"user-agent": "curl/8"})
    drained(api)
    flyer = row(funnel(api, "group_by=source"), "source", "flyer")
    assert (flyer["clicks"], flyer["bot_visits"], flyer["previews"]) == (0, 2, 1)
    assert flyer["conversion"] == 0.0
