"""Nothing acknowledged is lost, proven on a real `acquisition serve` (two workers) under load:
SIGTERM drains; SIGKILL of the whole process group loses nothing either, because the restarted
server replays the spool. Webhooks answered 200 are stored exactly once in both cases."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import httpx2 as httpx
import pytest
from sqlalchemy import func, select

from acquisition.db import Database
from acquisition.models import Click, WebhookEvent
from tests import deliveries as d
from tests.factories import make_channel, make_link
from tests.server_process import PHONE, Load, free_port, ref_of, serve, server_env

pytestmark = pytest.mark.server
FIRST_UPDATE = 900_000_000  # tests.deliveries numbers Telegram updates from here


def setup(db: Database) -> tuple[int, str]:
    channel = make_channel(db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    return channel.id, make_link(db, [channel.id], source="poster").code


def clicker(url: str) -> Callable[[httpx.Client, int], str | None]:
    def click(client: httpx.Client, _n: int) -> str | None:
        r = client.get(url, headers={"user-agent": PHONE})
        return ref_of(r.headers["location"]) if r.status_code == 302 else None

    return click


def starter(url: str) -> Callable[[httpx.Client, int], str | None]:
    def start(client: httpx.Client, n: int) -> str | None:
        raw = d.encode(d.start("telegram", None, n=n, user=10_000 + n))
        r = client.post(url, content=raw, headers=d.sign("telegram", raw))
        return f"u{FIRST_UPDATE + n}" if r.status_code == 200 else None

    return start


def stored_refs(db: Database) -> list[str]:
    with db.reader() as s:
        return list(s.scalars(select(Click.ref).where(Click.visitor == "human")))


def stored_events(db: Database) -> list[str]:
    with db.reader() as s:
        return list(s.scalars(select(WebhookEvent.event_id)))


def assert_kept(acknowledged: list[str], stored: list[str], what: str) -> None:
    assert len(set(acknowledged)) == len(acknowledged), f"the server acknowledged a {what} twice"
    assert len(set(stored)) == len(stored), f"a {what} is stored twice"
    lost = set(acknowledged) - set(stored)
    assert not lost, f"{len(lost)} acknowledged {what}s are missing, e.g. {sorted(lost)[:3]}"


def test_sigterm_under_load_drains_every_acknowledged_click_and_webhook(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    channel, code = setup(db)
    port = free_port()
    spool = tmp_path / "spool"
    with serve(server_env(database_url, spool, port), tmp_path / "server.log") as server:
        clicks = Load(clicker(f"{server.url}/{code}"), threads=6).start()
        hooks = Load(starter(f"{server.url}/hooks/telegram/{channel}"), threads=2).start()
        clicks.wait_for(1000)
        hooks.wait_for(60)
        rate = clicks.rate()
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0, server.output()
        clicks.stop()
        hooks.stop()
    assert_kept(clicks.acknowledged, stored_refs(db), "click")
    assert_kept(hooks.acknowledged, stored_events(db), "webhook")
    assert not list(spool.glob("clicks-*.jsonl")), "the spool was not drained on SIGTERM"
    print(
        f"\nSIGTERM: {clicks.sent} clicks sent ({rate:.0f}/s before the signal), "
        f"{len(clicks.acknowledged)} 302s, {len(stored_refs(db))} stored, 0 lost; "
        f"{len(hooks.acknowledged)} webhooks acknowledged, all stored once"
    )


def test_sigkill_under_load_then_restart_replays_every_acknowledged_click(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    channel, code = setup(db)
    spool = tmp_path / "spool"
    port = free_port()
    env = server_env(database_url, spool, port)
    with serve(env, tmp_path / "first.log") as server:
        clicks = Load(clicker(f"{server.url}/{code}"), threads=6).start()
        hooks = Load(starter(f"{server.url}/hooks/telegram/{channel}"), threads=2).start()
        clicks.wait_for(1000)
        hooks.wait_for(60)
        rate = clicks.rate()
        server.signal(signal.SIGKILL)
        server.wait(10)
        clicks.stop()
        hooks.stop()
    # Webhooks commit before their 200: every acknowledged one is there already.
    assert_kept(hooks.acknowledged, stored_events(db), "webhook")
    waiting = len(set(clicks.acknowledged) - set(stored_refs(db)))
    leftovers = list(spool.glob("clicks-*.jsonl"))
    assert leftovers, "a killed worker leaves its spool file behind"
    with serve(env, tmp_path / "second.log", port=free_port()) as again:
        deadline = time.monotonic() + 20
        while set(clicks.acknowledged) - set(stored_refs(db)) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert httpx.get(f"{again.url}/healthz").status_code == 200
    assert_kept(clicks.acknowledged, stored_refs(db), "click")
    assert not list(spool.glob("clicks-*.jsonl"))
    print(
        f"\nSIGKILL: {clicks.sent} clicks sent ({rate:.0f}/s before the signal), "
        f"{len(clicks.acknowledged)} 302s, {waiting} only in the spool at the kill, replayed "
        f"on restart; {len(hooks.acknowledged)} webhooks acknowledged, all stored once; 0 lost"
    )


def test_two_workers_report_one_set_of_metrics_and_log_json_lines(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    _channel, code = setup(db)
    port = free_port()
    log = tmp_path / "server.log"
    with serve(server_env(database_url, tmp_path / "spool", port), log) as server:
        for _ in range(60):  # a new connection each: the kernel spreads them over both workers
            r = httpx.get(f"{server.url}/{code}", headers={"user-agent": PHONE})
            assert r.status_code == 302
        # Each worker hands its redirects' counts on at least once a second (metrics.sync).
        deadline = time.monotonic() + 3
        while True:
            text = httpx.get(f"{server.url}/metrics").text
            found = re.search(r'^acquisition_clicks_total\{visitor="human"\} (\S+)$', text, re.M)
            human = float(found.group(1)) if found else 0.0
            if human >= 60 or time.monotonic() > deadline:
                break
            time.sleep(0.1)
    assert human == 60
    lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
    access = [x for x in lines if x["logger"] == "acquisition.access"]
    assert sum(1 for x in access if x["route"] == "/{code}" and x["status"] == 302) == 60
    assert {x["client"] for x in access} == {"127.0.0.0"}
    assert len({x["request_id"] for x in access}) == len(access)
    workers = {x["message"] for x in lines if x["message"].startswith("Started server process")}
    assert len(workers) == 2
    with db.reader() as s:
        assert s.scalar(select(func.count()).select_from(Click)) == 60
