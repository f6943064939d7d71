"""/metrics: Prometheus text for clients inside the deployment, counting what the service did."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from acquisition import metrics
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.web.app import create_app
from acquisition.web.redirect import routes
from tests import deliveries as d
from tests.conftest import BASE_URL, drained, inside_a_minute
from tests.factories import make_channel, make_link

BOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture
def inside(settings: Settings, db: Database, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(replace(settings, spool_dir=str(tmp_path / "spool")), db)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False, client=("10.1.2.3", 1)) as c:
        yield c


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample, 0 when it is absent."""
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    pattern = rf"^{re.escape(name)}{re.escape('{' + wanted + '}') if labels else ''} (\S+)$"
    found = re.search(pattern, text, re.M)
    return float(found.group(1)) if found else 0.0


def scrape(client: TestClient) -> str:
    r = client.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return r.text


def test_metrics_are_hidden_from_the_internet(client: TestClient) -> None:
    r = client.get("/metrics")  # the test client's address is no IP at all
    assert r.status_code == 404
    public = TestClient(client.app, base_url=BASE_URL, client=("8.8.8.8", 1))
    assert public.get("/metrics").status_code == 404


def test_clicks_bots_misses_and_webhooks_are_counted(inside: TestClient, db: Database) -> None:
    channel = make_channel(db, "telegram", "shop_bot", credentials=d.CREDENTIALS["telegram"])
    link = make_link(db, [channel.id])
    before = scrape(inside)
    for _ in range(3):
        assert inside.get(f"/{link.code}", headers={"user-agent": d.PHONE}).status_code == 302
    assert inside.get(f"/{link.code}", headers={"user-agent": BOT}).status_code == 200
    assert (
        inside.get(
            f"/{link.code}", headers={"user-agent": "TelegramBot (like TwitterBot)"}
        ).status_code
        == 200
    )
    assert inside.get("/ZZZZZZZ").status_code == 404
    raw = d.encode(d.start("telegram", None))
    assert (
        inside.post(
            f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
        ).status_code
        == 200
    )
    assert (
        inside.post(
            f"/hooks/telegram/{channel.id}",
            content=raw,
            headers={"content-type": "application/json"},
        ).status_code
        == 401
    )
    drained(inside)
    after = scrape(inside)

    def grew(name: str, **labels: str) -> float:
        return sample(after, name, **labels) - sample(before, name, **labels)

    assert grew("acquisition_clicks_total", visitor="human") == 3
    assert grew("acquisition_clicks_total", visitor="bot") == 1
    assert grew("acquisition_clicks_total", visitor="preview") == 1
    assert grew("acquisition_http_requests_total", method="GET", route="/{code}", status="404") == 1
    assert grew("acquisition_http_requests_total", method="GET", route="/{code}", status="302") == 3
    assert grew("acquisition_webhook_requests_total", messenger="telegram", outcome="accepted") == 1
    assert (
        grew("acquisition_webhook_requests_total", messenger="telegram", outcome="unauthorized")
        == 1
    )
    assert grew("acquisition_webhook_events_total", outcome="recorded") >= 1
    assert grew("acquisition_request_duration_seconds_count", kind="redirect") == 6
    assert grew("acquisition_request_duration_seconds_count", kind="webhook") == 2
    assert sample(after, "acquisition_click_spool_backlog_bytes") == 0
    assert sample(after, "acquisition_relay_queue_depth") == 0
    assert sample(after, "acquisition_database_up") == 1


def test_routes_are_labelled_by_template_not_by_path(inside: TestClient, db: Database) -> None:
    for n in range(5):
        inside.get(f"/api/v1/links/CODE{n}")
        inside.get(f"/some/unknown/path/{n}")
    text = scrape(inside)
    assert 'route="/api/v1/links/{code}"' in text
    assert 'route="unmatched"' in text
    assert "CODE1" not in text and "unknown/path" not in text


def test_a_rate_limited_answer_is_counted(settings: Settings, db: Database, tmp_path: Path) -> None:
    strict = replace(settings, rate_limit_api="1/minute", spool_dir=str(tmp_path / "s"))
    inside_a_minute()
    with TestClient(create_app(strict, db), base_url=BASE_URL, client=("10.1.2.3", 1)) as c:
        before = sample(scrape(c), "acquisition_rate_limited_total", limit="api")
        c.get("/api/v1/links")
        assert c.get("/api/v1/links").status_code == 429
        assert sample(scrape(c), "acquisition_rate_limited_total", limit="api") == before + 1


def test_redirects_counted_in_bulk_land_in_the_right_latency_buckets(inside: TestClient) -> None:
    """The front's 302s reach prometheus_client in bulk: each duration in its own bucket."""

    def bucket(text: str, le: str) -> float:
        return sample(text, "acquisition_request_duration_seconds_bucket", kind="redirect", le=le)

    before = scrape(inside)
    scope = {"method": "GET", "route": routes[0], "root_path": "", "app_root_path": ""}
    for took in (0.0004, 0.001, 0.0011, 0.3, 7.0):  # 0.001 itself is in the 0.001 bucket
        metrics.redirected(scope, False, took)
    metrics.redirected(scope, True, 0.002)
    after = scrape(inside)
    bounds = ("0.001", "0.0025", "0.5", "+Inf")
    grown = {le: bucket(after, le) - bucket(before, le) for le in bounds}
    assert grown == {"0.001": 2, "0.0025": 4, "0.5": 5, "+Inf": 6}  # cumulative, as scraped
    total = "acquisition_request_duration_seconds_sum"
    assert sample(after, total, kind="redirect") - sample(before, total, kind="redirect") == (
        pytest.approx(0.0004 + 0.001 + 0.0011 + 0.3 + 7.0 + 0.002)
    )
    requests = "acquisition_http_requests_total"
    labels = {"method": "GET", "route": "/{code}", "status": "302"}
    assert sample(after, requests, **labels) - sample(before, requests, **labels) == 6
    unrecorded = "acquisition_clicks_unrecorded_total"
    assert sample(after, unrecorded) - sample(before, unrecorded) == 1
