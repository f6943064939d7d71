"""Link -> click -> deep link -> webhook start -> opt-in attributed to the placement -> opt-out,
through the HTTP interface only (the API, the short link and the webhook).

A click may reach the database a few milliseconds after its 302 (it waits in the spool), so
the start can arrive first: the numbers are polled for up to two seconds, which passes whether
the start was attributed at once, by the drainer, or when the numbers were read.
"""

from __future__ import annotations

import time
from typing import Any

from starlette.testclient import TestClient

from tests import deliveries as d


def placement_row(api: TestClient, want: dict[str, int]) -> dict[str, Any]:
    deadline = time.monotonic() + 2
    while True:
        r = api.get("/api/v1/stats?group_by=placement")
        assert r.status_code == 200, r.text
        found = [row for row in r.json()["rows"] if row["placement"] == "Billboard 12, Tverskaya"]
        if found and all(found[0][key] == value for key, value in want.items()):
            return found[0]
        if time.monotonic() > deadline:
            raise AssertionError(f"stats never showed {want}: {r.json()['rows']}")
        time.sleep(0.05)


def test_a_billboard_click_becomes_an_attributed_subscriber_and_then_an_opt_out(
    api: TestClient,
) -> None:
    channel = api.post("/api/v1/channels", json={"messenger": "telegram", "handle": "@shop_bot"})
    assert channel.status_code == 201, channel.text
    channel_id, secret = channel.json()["id"], channel.json()["webhook"]["secret"]
    link = api.post(
        "/api/v1/links",
        json={
            "channels": [channel_id],
            "campaign": "spring",
            "source": "billboard",
            "placement": {"name": "Billboard 12, Tverskaya", "kind": "outdoor", "cost": 1500},
        },
    )
    assert link.status_code == 201, link.text

    click = api.get(f"/{link.json()['code']}", headers={"user-agent": d.PHONE})
    assert click.status_code == 302
    assert click.headers["location"].startswith("https://t.me/shop_bot?start=")
    ref = d.ref_from(click.headers["location"])

    start = d.encode(d.start("telegram", ref, 1, int(time.time())))
    hook = f"/hooks/telegram/{channel_id}"
    headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}
    assert api.post(hook, content=start, headers=headers).status_code == 200

    row = placement_row(api, {"clicks": 1, "starts": 1, "optins": 1})
    assert (row["optouts"], row["conversion"]) == (0, 1.0)
    [subscriber] = api.get(f"/api/v1/subscribers?channel={channel_id}").json()["subscribers"]
    assert (subscriber["messenger_user_id"], subscriber["status"]) == ("111222333", "subscribed")
    assert subscriber["first_touch"]["placement"] == "Billboard 12, Tverskaya"

    blocked = d.encode(d.optout("telegram", 2, int(time.time()) + 1))
    assert api.post(hook, content=blocked, headers=headers).status_code == 200
    placement_row(api, {"clicks": 1, "starts": 1, "optins": 1, "optouts": 1})
    [subscriber] = api.get(f"/api/v1/subscribers?channel={channel_id}").json()["subscribers"]
    assert subscriber["status"] == "unsubscribed"
    history = api.get(f"/api/v1/subscribers/{subscriber['id']}/consent").json()["events"]
    assert [(e["kind"], e["method"]) for e in history] == [
        ("opt_in", "telegram_start"),
        ("opt_out", "telegram_blocked"),
    ]
    assert history[0]["first_touch"]["placement"] == "Billboard 12, Tverskaya"
    assert history[1]["last_touch"]["ref"] == ref
