"""/api/v1/starts, /optouts, /subscribers, /subscribers/{id}[/consent], /consent.csv and
erasure, through HTTP."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import ConsentEvent, Link, Subscriber, WebhookDelivery, WebhookEvent
from tests import deliveries as d
from tests.conftest import count, drained
from tests.factories import make_channel, make_link


@pytest.fixture
def bot(db: Database) -> int:
    return make_channel(db, "telegram", "shop_bot").id


def click(api: TestClient, link: Link) -> str:
    r = api.get(f"/{link.code}", headers={"user-agent": d.PHONE})
    drained(api)
    return d.ref_from(r.headers["location"])


def report(api: TestClient, kind: str = "starts", **body: Any) -> Any:
    return api.post(f"/api/v1/{kind}", json={"messenger": "telegram", **body})


# reports from bots with their own webhook ----------------------------------------------------


def test_a_reported_start_is_attributed_like_a_webhook_start_and_is_idempotent(
    api: TestClient, db: Database, bot: int
) -> None:
    link = make_link(db, [bot], source="flyer", placement={"name": "Door", "kind": "print"})
    ref = click(api, link)
    body = {
        "channel": bot,
        "user_id": 555,
        "ref": ref,
        "event_id": 9001,
        "time": "2026-05-01T10:00:00+03:00",
        "user_name": "Anna",
        "language": "ru",
    }
    first = report(api, **body)
    assert first.status_code == 201, first.text
    answer = first.json()
    assert answer["duplicate"] is False
    assert answer["start"]["source"] == "flyer" and answer["start"]["placement"] == "Door"
    assert answer["subscriber"]["status"] == "subscribed"
    assert answer["subscriber"]["messenger_user_id"] == "555"
    again = report(api, **body)
    assert (again.status_code, again.json()["duplicate"]) == (200, True)
    assert count(db, ConsentEvent) == 1
    with db.reader() as s:
        [event] = s.scalars(select(ConsentEvent)).all()
        [delivery] = s.scalars(select(WebhookDelivery)).all()
    assert (event.method, event.at.isoformat()) == ("bot_report", "2026-05-01T07:00:00+00:00")
    assert delivery.via == "api"


@pytest.mark.parametrize(
    "text",
    [
        "/start {ref}",
        "/start@shop_bot {ref}",
        "Hi! I want the offer (ref: {ref})",
        "hello, ref {lower} please",
    ],
)
def test_a_reported_start_can_carry_the_ref_inside_the_text_the_person_sent(
    api: TestClient, db: Database, bot: int, text: str
) -> None:
    ref = click(api, make_link(db, [bot], source="poster"))
    r = report(
        api, channel=bot, user_id="7", event_id="e1", text=text.format(ref=ref, lower=ref.lower())
    )
    assert r.status_code == 201, r.text
    assert r.json()["start"]["source"] == "poster"


def test_a_reported_opt_out_unsubscribes(api: TestClient, bot: int) -> None:
    report(api, channel=bot, user_id="7", event_id="s1", time="2026-05-01T10:00:00Z")
    r = report(api, "optouts", channel=bot, user_id="7", event_id="o1", time="2026-05-01T11:00:00Z")
    assert r.status_code == 201
    assert r.json()["subscriber"]["status"] == "unsubscribed"
    assert "start" not in r.json()


def test_a_reported_start_can_say_the_person_is_not_subscribed_yet(
    api: TestClient, db: Database
) -> None:
    viber = make_channel(db, "viber", "mybakery").id
    r = api.post(
        "/api/v1/starts",
        json={
            "messenger": "viber",
            "channel": viber,
            "user_id": "01234567890A=",
            "event_id": "cs1",
            "subscribed": False,
        },
    )
    assert r.status_code == 201
    assert r.json()["subscriber"]["status"] == "unsubscribed"


BAD_REPORTS: list[tuple[dict[str, Any], str]] = [
    ({"channel": None}, "channel"),
    ({"channel": "1"}, "channel"),
    ({"channel": 999999}, "channel"),
    ({"messenger": "icq"}, "messenger"),
    ({"messenger": "viber"}, "messenger"),
    ({"messenger": None}, "messenger"),
    ({"user_id": None}, "user_id"),
    ({"user_id": True}, "user_id"),
    ({"user_id": ""}, "user_id"),
    ({"user_id": "x" * 129}, "user_id"),
    ({"event_id": None}, "event_id"),
    ({"event_id": ["a"]}, "event_id"),
    ({"time": "yesterday"}, "time"),
    ({"time": "2026-05-01T10:00:00"}, "time"),
    ({"ref": "has space"}, "ref"),
    ({"ref": "x" * 65}, "ref"),
    ({"text": 5}, "text"),
    ({"subscribed": "yes"}, "subscribed"),
    ({"colour": "red"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD_REPORTS)
def test_a_bad_report_names_the_field_and_stores_nothing(
    api: TestClient, db: Database, bot: int, change: dict[str, Any], field: str
) -> None:
    body = {"messenger": "telegram", "channel": bot, "user_id": "7", "event_id": "e1", **change}
    body = {key: value for key, value in body.items() if value is not None}
    r = api.post("/api/v1/starts", json=body)
    assert r.status_code == 422, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert count(db, Subscriber) == count(db, WebhookEvent) == 0


def test_an_opt_out_report_takes_no_ref(api: TestClient, bot: int) -> None:
    r = report(api, "optouts", channel=bot, user_id="7", event_id="o1", ref="ABC")
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "ref"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", "/api/v1/starts"),
        ("POST", "/api/v1/optouts"),
        ("GET", "/api/v1/subscribers"),
        ("GET", "/api/v1/subscribers/1"),
        ("GET", "/api/v1/subscribers/1/consent"),
        ("GET", "/api/v1/consent.csv"),
        ("DELETE", "/api/v1/subscribers/1"),
    ],
)
def test_every_opt_in_endpoint_needs_an_api_key(client: TestClient, method: str, path: str) -> None:
    r = client.request(method, path, json={} if method == "POST" else None)
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"


# subscribers ---------------------------------------------------------------------------------


def seed(api: TestClient, db: Database, bot: int) -> dict[str, int]:
    """Three people: one from a flyer (subscribed), one direct who left, one from a poster."""
    flyer = make_link(db, [bot], source="flyer", campaign="spring")
    poster = make_link(db, [bot], source="poster", campaign="summer")
    ids = {}
    for user, link in (("1", flyer), ("2", None), ("3", poster)):
        ref = click(api, link) if link else None
        body = {
            "channel": bot,
            "user_id": user,
            "event_id": f"s{user}",
            "time": f"2026-05-0{user}T10:00:00Z",
            **({"ref": ref} if ref else {}),
        }
        ids[user] = report(api, **body).json()["subscriber"]["id"]
    report(api, "optouts", channel=bot, user_id="2", event_id="o2", time="2026-05-09T10:00:00Z")
    return ids


@pytest.mark.parametrize(
    ("query", "users"),
    [
        ("", ["3", "2", "1"]),
        ("status=subscribed", ["3", "1"]),
        ("status=unsubscribed", ["2"]),
        ("source=flyer", ["1"]),
        ("source=direct", ["2"]),
        ("campaign=summer", ["3"]),
        ("since=2026-05-02T00:00:00Z", ["3", "2"]),
        ("until=2026-05-02T00:00:00Z", ["1"]),
        ("status=subscribed&campaign=spring", ["1"]),
    ],
)
def test_subscribers_can_be_filtered(
    api: TestClient, db: Database, bot: int, query: str, users: list[str]
) -> None:
    seed(api, db, bot)
    r = api.get(f"/api/v1/subscribers?channel={bot}&{query}")
    assert r.status_code == 200, r.text
    assert [s["messenger_user_id"] for s in r.json()["subscribers"]] == users


def test_subscribers_are_paged_with_a_cursor(api: TestClient, db: Database, bot: int) -> None:
    seed(api, db, bot)
    first = api.get("/api/v1/subscribers?limit=2").json()
    assert [s["messenger_user_id"] for s in first["subscribers"]] == ["3", "2"]
    rest = api.get(f"/api/v1/subscribers?limit=2&before={first['next_before']}").json()
    assert [s["messenger_user_id"] for s in rest["subscribers"]] == ["1"]
    assert rest["next_before"] is None


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("status=maybe", "status"),
        ("channel=x", "channel"),
        ("limit=0", "limit"),
        ("limit=501", "limit"),
        ("since=May", "since"),
        ("before=-1", "before"),
        ("source=" + "s" * 101, "source"),
    ],
)
def test_bad_subscriber_filters_name_the_field(api: TestClient, query: str, field: str) -> None:
    r = api.get(f"/api/v1/subscribers?{query}")
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == field


def test_one_subscriber_and_their_consent_history(api: TestClient, db: Database, bot: int) -> None:
    ids = seed(api, db, bot)
    person = api.get(f"/api/v1/subscribers/{ids['2']}").json()
    assert (person["status"], person["first_touch"]["source"]) == ("unsubscribed", "direct")
    history = api.get(f"/api/v1/subscribers/{ids['2']}/consent").json()
    assert [(e["kind"], e["method"], e["at"]) for e in history["events"]] == [
        ("opt_in", "bot_report", "2026-05-02T10:00:00+00:00"),
        ("opt_out", "bot_report", "2026-05-09T10:00:00+00:00"),
    ]
    evidence = history["events"][0]["evidence"]
    assert (evidence["event_id"], evidence["via"], len(evidence["body_sha256"])) == (
        "api:s2",
        "api",
        64,
    )
    assert api.get("/api/v1/subscribers/99999").status_code == 404
    assert api.get("/api/v1/subscribers/99999/consent").status_code == 404
    assert api.get("/api/v1/subscribers/abc").status_code == 422


def test_the_consent_ledger_exports_as_csv_with_formulas_neutralised(
    api: TestClient, db: Database, bot: int
) -> None:
    link = make_link(db, [bot], source='=HYPERLINK("http://evil")', campaign="+spring")
    report(
        api,
        channel=bot,
        user_id="@admin",
        event_id="-1",
        ref=click(api, link),
        time="2026-05-01T10:00:00Z",
    )
    r = api.get(f"/api/v1/consent.csv?channel={bot}")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/csv")
    [header, row] = list(csv.reader(io.StringIO(r.text)))
    line = dict(zip(header, row, strict=True))
    assert line["messenger_user_id"] == "'@admin"
    assert line["event_id"] == "api:-1"
    assert line["first_source"] == '\'=HYPERLINK("http://evil")'
    assert line["last_campaign"] == "'+spring"
    assert (line["kind"], line["method"]) == ("opt_in", "bot_report")
    assert api.get("/api/v1/consent.csv?channel=x").status_code == 422


def test_erasure_removes_identifiers_and_keeps_the_proof(
    api: TestClient, db: Database, bot: int
) -> None:
    ids = seed(api, db, bot)
    before = api.get(f"/api/v1/subscribers/{ids['1']}/consent").json()["events"]
    r = api.delete(f"/api/v1/subscribers/{ids['1']}")
    assert r.status_code == 200, r.text
    token = r.json()["messenger_user_id"]
    assert token.startswith("erased:") and token != "1"
    person = api.get(f"/api/v1/subscribers/{ids['1']}").json()
    assert (person["messenger_user_id"], person["name"], person["erased"]) == (token, None, True)
    assert person["status"] == "subscribed" and person["first_touch"]["source"] == "flyer"
    after = api.get(f"/api/v1/subscribers/{ids['1']}/consent").json()["events"]
    for old, new in zip(before, after, strict=True):
        assert {k: old[k] for k in ("kind", "at", "received_at", "method", "first_touch")} == {
            k: new[k] for k in ("kind", "at", "received_at", "method", "first_touch")
        }
        assert new["evidence"]["body_sha256"] == old["evidence"]["body_sha256"]
        assert new["evidence"]["body_kept"] is False
    assert api.delete(f"/api/v1/subscribers/{ids['1']}").json()["messenger_user_id"] == token
    assert api.delete("/api/v1/subscribers/424242").status_code == 404
    with db.reader() as s:
        assert s.scalars(select(Subscriber.name).where(Subscriber.id == ids["1"])).one() is None
