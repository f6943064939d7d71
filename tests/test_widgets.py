"""Widget config: every bad field is refused naming it; the public config has the script's shape."""

from __future__ import annotations

from typing import Any

import pytest

from acquisition import widget_events, widgets
from acquisition.db import Database
from acquisition.errors import Invalid
from acquisition.models import Link, Placement, Widget, WidgetLink
from tests.conftest import BASE_URL, count
from tests.factories import make_channel

GOOD: dict[str, Any] = {"channels": [1], "origins": ["https://example.org"]}

BAD: list[tuple[dict[str, Any], str]] = [
    ({"channels": None}, "channels"),
    ({"channels": []}, "channels"),
    ({"channels": "1"}, "channels"),
    ({"channels": [1, 1]}, "channels"),
    ({"channels": list(range(1, 12))}, "channels"),
    ({"channels": [True]}, "channels.0"),
    ({"channels": [1, "2"]}, "channels.1"),
    ({"origins": None}, "origins"),
    ({"origins": []}, "origins"),
    ({"origins": "https://example.org"}, "origins"),
    ({"origins": [f"https://s{i}.example.org" for i in range(21)]}, "origins"),
    ({"origins": ["example.org"]}, "origins.0"),
    ({"origins": ["ftp://example.org"]}, "origins.0"),
    ({"origins": ["javascript:alert(1)"]}, "origins.0"),
    ({"origins": ["https://example.org/shop"]}, "origins.0"),
    ({"origins": ["https://example.org?x=1"]}, "origins.0"),
    ({"origins": ["https://example.org#top"]}, "origins.0"),
    ({"origins": ["https://user@example.org"]}, "origins.0"),
    ({"origins": ["https://example.org:99999"]}, "origins.0"),
    ({"origins": ["https://пример.рф"]}, "origins.0"),
    ({"origins": ["https://exa mple.org"]}, "origins.0"),
    ({"origins": ["https://*.example.org"]}, "origins.0"),
    ({"origins": ["https://"]}, "origins.0"),
    ({"origins": ["https://ok.org", 5]}, "origins.1"),
    ({"layout": "grid"}, "layout"),
    ({"position": "top"}, "position"),
    ({"lang": "de"}, "lang"),
    ({"color": "red"}, "color"),
    ({"color": "#FFF"}, "color"),
    ({"color": "#12345G"}, "color"),
    ({"color": "#11223344"}, "color"),
    ({"color": "#112233; background:url(x)"}, "color"),
    ({"text_color": "white"}, "text_color"),
    ({"delay": -1}, "delay"),
    ({"delay": 601}, "delay"),
    ({"delay": 1.5}, "delay"),
    ({"delay": "5"}, "delay"),
    ({"scroll": 101}, "scroll"),
    ({"scroll": True}, "scroll"),
    ({"include": "/pricing"}, "include"),
    ({"include": ["/p"] * 21}, "include"),
    ({"include": ["pricing"]}, "include.0"),
    ({"include": [""]}, "include.0"),
    ({"include": ["/" + "a" * 200]}, "include.0"),
    ({"include": ["/a b"]}, "include.0"),
    ({"exclude": ["/ok", "/цены"]}, "exclude.1"),
    ({"exclude": ["/\x00"]}, "exclude.0"),
    ({"exclude": [5]}, "exclude.0"),
    ({"texts": "Hi"}, "texts"),
    ({"texts": {"english": {"cta": "Hi"}}}, "texts.english"),
    ({"texts": {"en": "Hi"}}, "texts.en"),
    ({"texts": {"en": {"greeting": "Hi"}}}, "texts.en.greeting"),
    ({"texts": {"en": {"consent": "I agree"}}}, "texts.en.consent"),
    ({"texts": {"en": {"cta": "x" * 201}}}, "texts.en.cta"),
    ({"texts": {"en": {"cta": 5}}}, "texts.en.cta"),
    ({"texts": {"en": {"cta": "line\nbreak"}}}, "texts.en.cta"),
    ({"texts": {"en": {"cta": "zero\u200bwidth"}}}, "texts.en.cta"),
    ({"texts": {f"{a}{b}": {"cta": "x"} for a in "ab" for b in "abcdef"}}, "texts"),
    ({"consent": "v1"}, "consent"),
    ({"consent": {}}, "consent.version"),
    ({"consent": {"version": "v 1"}}, "consent.version"),
    ({"consent": {"version": "v" * 33}}, "consent.version"),
    ({"consent": {"version": "v1", "text": "I agree"}}, "consent.text"),
    ({"consent": {"version": "v1", "text": {"en": "x" * 501}}}, "consent.text.en"),
    ({"consent": {"version": "v1", "text": {"EN": "I agree"}}}, "consent.text.EN"),
    ({"consent": {"version": "v1", "wording": "I agree"}}, "consent.wording"),
    ({"whatsapp_qr": "yes"}, "whatsapp_qr"),
    ({"name": "x" * 101}, "name"),
    ({"name": 5}, "name"),
    ({"colour": "#112233"}, "colour"),
]


@pytest.mark.parametrize(("change", "field"), BAD)
def test_every_bad_field_is_refused_naming_it(change: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        widgets.parse({**GOOD, **change})
    assert field in [e.field for e in caught.value.errors], caught.value.errors


def test_every_bad_field_of_one_request_is_reported_at_once() -> None:
    with pytest.raises(Invalid) as caught:
        widgets.parse({"channels": [], "origins": ["x"], "color": "red", "delay": 9999})
    assert {e.field for e in caught.value.errors} == {"channels", "origins.0", "color", "delay"}


def test_a_body_that_is_not_an_object_is_refused() -> None:
    with pytest.raises(Invalid) as caught:
        widgets.parse(["channels"])
    assert caught.value.errors[0].field == "body"


def test_defaults_fill_what_is_not_given() -> None:
    spec = widgets.parse(GOOD)
    assert spec.stored() == {
        "channels": [1],
        "layout": "panel",
        "position": "right",
        "lang": "auto",
        "color": "#2AABEE",
        "text_color": "#FFFFFF",
        "delay": 0,
        "scroll": 0,
        "include": [],
        "exclude": [],
        "texts": {},
        "consent": None,
        "whatsapp_qr": False,
    }


@pytest.mark.parametrize(
    ("given", "stored"),
    [
        ("https://Example.ORG", "https://example.org"),
        ("https://example.org/", "https://example.org"),
        ("https://example.org:443", "https://example.org"),
        ("http://example.org:80", "http://example.org"),
        ("http://localhost:8000", "http://localhost:8000"),
        ("https://xn--e1afmkfd.xn--p1ai", "https://xn--e1afmkfd.xn--p1ai"),
        ("http://127.0.0.1:5000", "http://127.0.0.1:5000"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_origins_are_stored_as_browsers_send_them(given: str, stored: str) -> None:
    assert widgets.parse({**GOOD, "origins": [given]}).origins == (stored,)


def test_texts_are_kept_as_plain_text_even_when_they_look_like_markup() -> None:
    hostile = "</script><script>alert(1)</script>"
    spec = widgets.parse({**GOOD, "texts": {"en": {"cta": hostile}, "de": {"title": "Hallo"}}})
    assert spec.texts == {"en": {"cta": hostile}, "de": {"title": "Hallo"}}


def test_null_resets_a_field_to_its_default() -> None:
    spec = widgets.parse({**GOOD, "color": None, "delay": None, "consent": None, "texts": None})
    assert (spec.color, spec.delay, spec.consent, spec.texts) == ("#2AABEE", 0, None, {})


# --- with a database ----------------------------------------------------------------------------


def test_creating_a_widget_makes_one_tracked_link_per_channel(db: Database) -> None:
    telegram = make_channel(db).id
    viber = make_channel(db, "viber", "shop").id
    with db.writer.begin() as session:
        widget = widgets.create(
            session,
            widgets.parse(
                {"channels": [viber, telegram], "origins": ["https://shop.example"], "name": "Shop"}
            ),
        )
        public = widgets.public(widget, BASE_URL)
        config = widgets.script_config(widget, BASE_URL)
    assert widgets.PUBLIC_ID.fullmatch(public["id"])
    assert public["snippet"] == f'<script async src="{BASE_URL}/w/{public["id"]}.js"></script>'
    assert count(db, Widget) == 1 and count(db, WidgetLink) == 2 and count(db, Link) == 2
    assert count(db, Placement) == 1
    with db.reader() as session:
        placement = session.get(Placement, public["placement_id"])
        assert placement is not None and (placement.kind, placement.name) == ("widget", "Shop")
        assert {ln.placement_id for ln in session.query(Link)} == {placement.id}
    assert [b["messenger"] for b in config["buttons"]] == ["viber", "telegram"]
    viber_button, telegram_button = config["buttons"]
    code = public["links"][0]["code"]
    assert viber_button == {
        "messenger": "viber",
        "label": "Viber",
        "href": f"{BASE_URL}/{code}",
        "qr": f"{BASE_URL}/w/{public['id']}/qr/{code}.svg",
    }
    assert telegram_button["qr"] is None
    assert config["beacon"] == f"{BASE_URL}/w/{public['id']}/e"
    assert set(config) == {
        "id",
        "layout",
        "position",
        "lang",
        "color",
        "text_color",
        "delay",
        "scroll",
        "include",
        "exclude",
        "texts",
        "consent_version",
        "buttons",
        "beacon",
    }


def test_whatsapp_gets_a_desktop_qr_only_when_asked(db: Database) -> None:
    whatsapp = make_channel(db, "whatsapp", "+7 916 123-45-67").id
    with db.writer.begin() as session:
        plain = widgets.create(session, widgets.parse({**GOOD, "channels": [whatsapp]}))
        asked = widgets.create(
            session, widgets.parse({**GOOD, "channels": [whatsapp], "whatsapp_qr": True})
        )
        assert widgets.script_config(plain, BASE_URL)["buttons"][0]["qr"] is None
        assert widgets.script_config(asked, BASE_URL)["buttons"][0]["qr"].endswith(".svg")


def test_consent_wording_joins_the_texts_and_its_version_travels(db: Database) -> None:
    channel = make_channel(db).id
    body = {
        **GOOD,
        "channels": [channel],
        "texts": {"en": {"cta": "Chat"}},
        "consent": {"version": "2026-11", "text": {"en": "I agree", "ru": "Я согласен"}},
    }
    with db.writer.begin() as session:
        config = widgets.script_config(widgets.create(session, widgets.parse(body)), BASE_URL)
    assert config["consent_version"] == "2026-11"
    assert config["texts"] == {
        "en": {"cta": "Chat", "consent": "I agree"},
        "ru": {"consent": "Я согласен"},
    }


def test_two_channels_of_one_messenger_are_told_apart(db: Database) -> None:
    first = make_channel(db, handle="shop_bot", name="Shop").id
    second = make_channel(db, handle="help_bot", name="Help").id
    with db.writer.begin() as session:
        widget = widgets.create(session, widgets.parse({**GOOD, "channels": [first, second]}))
        labels = [b["label"] for b in widgets.script_config(widget, BASE_URL)["buttons"]]
    assert labels == ["Telegram: Shop", "Telegram: Help"]


def test_a_channel_taken_off_and_put_back_keeps_its_link(db: Database) -> None:
    first = make_channel(db).id
    second = make_channel(db, "vk", "shop").id
    with db.writer.begin() as session:
        widget = widgets.create(session, widgets.parse({**GOOD, "channels": [first, second]}))
        public_id = widget.public_id
        before = {b["channel"]: b["code"] for b in widgets.buttons(widget, BASE_URL)}
    with db.writer.begin() as session:
        widget = widgets.update(session, widgets.get(session, public_id), {"channels": [second]})
        assert widget.version == 2
        assert [b["channel"] for b in widgets.buttons(widget, BASE_URL)] == [second]
    with db.writer.begin() as session:
        widget = widgets.update(
            session, widgets.get(session, public_id), {"channels": [second, first]}
        )
        after = {b["channel"]: b["code"] for b in widgets.buttons(widget, BASE_URL)}
    assert after == before and widget.version == 3
    assert count(db, Link) == 2


def test_an_edit_that_changes_nothing_keeps_the_version(db: Database) -> None:
    channel = make_channel(db).id
    with db.writer.begin() as session:
        public_id = widgets.create(
            session, widgets.parse({**GOOD, "channels": [channel]})
        ).public_id
    with db.writer.begin() as session:
        widget = widgets.get(session, public_id)
        same = {"color": "#2aabee", "origins": ["https://EXAMPLE.org/"], "delay": None}
        assert widgets.update(session, widget, same).version == 1
        assert widgets.update(session, widget, {"delay": 5}).version == 2


def test_an_unknown_channel_is_named_and_nothing_is_stored(db: Database) -> None:
    channel = make_channel(db).id
    with pytest.raises(Invalid) as caught, db.writer.begin() as session:
        widgets.create(session, widgets.parse({**GOOD, "channels": [channel, 424242]}))
    assert caught.value.errors[0].field == "channels.1"
    assert count(db, Widget) == 0 and count(db, Link) == 0 and count(db, Placement) == 0


@pytest.mark.parametrize("public_id", ["wgt_nope", "wgt_0123456789", "../etc", ""])
def test_unknown_widgets_are_not_found(db: Database, public_id: str) -> None:
    from acquisition.errors import NotFound

    with pytest.raises(NotFound), db.reader() as session:
        widgets.get(session, public_id)


# --- beacons ------------------------------------------------------------------------------------


def test_a_beacon_keeps_the_path_the_utm_and_the_referrer_host() -> None:
    beacon = widget_events.parse(
        {
            "t": "click",
            "m": "telegram",
            "page": "https://shop.example/pricing?utm_source=newsletter#plans",
            "ref_url": "https://www.google.com/search?q=shop",
            "utm_source": "newsletter",
            "utm_campaign": "spring",
            "gclid": "abc",
            "future_key": "ignored",
        }
    )
    assert (beacon.kind, beacon.messenger, beacon.path) == ("click", "telegram", "/pricing")
    assert (beacon.source, beacon.medium, beacon.campaign) == ("newsletter", "", "spring")
    assert beacon.referrer_host == "www.google.com"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "t"),
        ({"t": "hover"}, "t"),
        ({"t": "click"}, "m"),
        ({"t": "qr", "m": "icq"}, "m"),
        ({"t": "impression", "page": 5}, "page"),
        ({"t": "impression", "utm_source": ["a"]}, "utm_source"),
        ({"t": "impression", "page": "x" * 2001}, "page"),
    ],
)
def test_bad_beacons_are_refused_naming_the_field(body: dict[str, Any], field: str) -> None:
    with pytest.raises(Invalid) as caught:
        widget_events.parse(body)
    assert caught.value.errors[0].field == field


@pytest.mark.parametrize(
    ("header", "page", "ok"),
    [
        ("https://shop.example", "", True),
        ("https://SHOP.example:443", "", True),
        ("https://evil.example", "https://shop.example/", False),
        ("http://shop.example", "", False),
        (None, "https://shop.example/", False),
        ("", "https://shop.example/", False),
        ("null", "https://shop.example/pricing", True),
        ("null", "https://evil.example/", False),
        ("null", "", False),
        ("null", "not a url", False),
    ],
)
def test_beacons_are_accepted_only_from_allowed_origins(
    header: str | None, page: str, ok: bool
) -> None:
    beacon = widget_events.parse({"t": "impression", "page": page} if page else {"t": "impression"})
    assert widget_events.allowed({"https://shop.example"}, header, beacon) is ok
