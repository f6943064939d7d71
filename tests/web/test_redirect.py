from __future__ import annotations

from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition.db import Database
from acquisition.models import Click, utcnow
from tests.conftest import count, drained
from tests.factories import make_channel, make_link

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
)
DESKTOP = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/130.0 Safari/537.36"
)
VIBER_IN_APP = (
    "Mozilla/5.0 (Linux; Android 7.1.2; AFTMM Build/NS6265; wv) AppleWebKit/537.36 "
    "(KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.158 Mobile Safari/537.36 Viber/11.9.5.8"
)


def clicks(client: TestClient, db: Database) -> list[Click]:
    drained(client)
    with db.reader() as s:
        return list(s.scalars(select(Click).order_by(Click.id)))


@pytest.fixture
def telegram_link(db: Database) -> str:
    channel = make_channel(db, "telegram", "shop_bot")
    return make_link(
        db,
        [channel.id],
        campaign="spring",
        source="flyer",
        medium="print",
        placement={"name": "Metro flyer B", "kind": "print"},
    ).code


def test_a_click_is_stored_before_the_redirect_with_a_ref_that_travels(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    r = client.get(f"/{telegram_link}", headers={"user-agent": PHONE, "x-forwarded-for": "1.2.3.4"})
    assert r.status_code == 302
    assert r.headers["cache-control"] == "no-store"
    location = urlsplit(r.headers["location"])
    assert (location.scheme, location.netloc, location.path) == ("https", "t.me", "/shop_bot")
    ref = parse_qs(location.query)["start"][0]
    [click] = clicks(client, db)
    assert click.ref == ref
    assert (click.visitor, click.device, click.via) == ("human", "mobile", "link")
    assert (click.campaign, click.source, click.medium) == ("spring", "flyer", "print")
    assert click.ip == "testclient" or click.ip is None or click.ip.endswith(".0")


def test_codes_are_case_insensitive_and_forgive_lookalike_letters(
    client: TestClient, db: Database
) -> None:
    channel = make_channel(db)
    code = make_link(db, [channel.id]).code
    typed = code.lower().replace("0", "o").replace("1", "l")
    assert client.get(f"/{typed}", headers={"user-agent": PHONE}).status_code == 302
    drained(client)
    assert count(db, Click) == 1


def test_query_utm_overrides_are_recorded_as_the_click_source(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    r = client.get(
        f"/{telegram_link}?utm_source=newsletter&utm_campaign=may&gclid=abc123&ref_url=https://blog.example/post&w=wgt1",
        headers={"user-agent": DESKTOP},
    )
    assert r.status_code == 302
    [click] = clicks(client, db)
    assert (click.source, click.campaign, click.medium) == ("newsletter", "may", "print")
    assert click.click_id == "gclid:abc123"
    assert click.referrer == "https://blog.example/post"
    assert click.via == "widget" and click.widget == "wgt1"


def test_a_scan_of_a_widgets_code_is_a_scan_of_that_widget(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    """The widget's desktop hand-off shows a code whose URL carries the widget: the click is a
    scan (via "qr", as every /Q/ visit) and still names its widget."""
    r = client.get(f"/Q/{telegram_link}?w=wgt1&utm_source=footer", headers={"user-agent": PHONE})
    assert r.status_code == 302
    [click] = clicks(client, db)
    assert (click.via, click.widget, click.source) == ("qr", "wgt1", "footer")


@pytest.mark.parametrize(
    "agent",
    [
        "TelegramBot (like TwitterBot)",
        "WhatsApp/2.23.20.0 A",
        "WhatsApp",
        "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
        "Mozilla/5.0 (compatible; vkShare; +http://vk.com/dev/Share)",
        "ViberUrlDownloader",
        "Viber",
    ],
)
def test_preview_crawlers_get_an_open_graph_page_and_no_click(
    client: TestClient, db: Database, telegram_link: str, agent: str
) -> None:
    r = client.get(f"/{telegram_link}", headers={"user-agent": agent})
    assert r.status_code == 200
    assert 'property="og:title"' in r.text
    [visit] = clicks(client, db)
    assert visit.visitor == "preview"
    assert "t.me" not in r.text and visit.ref not in r.text


@pytest.mark.parametrize(
    "agent",
    [
        "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
        "curl/8.5.0",
        "python-requests/2.32",
        "",
    ],
)
def test_other_bots_are_recorded_apart(
    client: TestClient, db: Database, telegram_link: str, agent: str
) -> None:
    r = client.get(f"/{telegram_link}", headers={"user-agent": agent})
    assert r.status_code == 200
    [visit] = clicks(client, db)
    assert visit.visitor == "bot"
    assert visit.ref not in r.text


def test_head_requests_are_never_clicks(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    r = client.head(f"/{telegram_link}", headers={"user-agent": PHONE})
    assert r.status_code == 200
    assert [c.visitor for c in clicks(client, db)] == ["bot"]


def test_in_app_browsers_of_real_people_count(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    assert client.get(f"/{telegram_link}", headers={"user-agent": VIBER_IN_APP}).status_code == 302
    assert [c.visitor for c in clicks(client, db)] == ["human"]


def test_bot_visits_do_not_count_in_stats(
    api: TestClient, db: Database, telegram_link: str
) -> None:
    api.get(f"/{telegram_link}", headers={"user-agent": PHONE})
    api.get(f"/{telegram_link}", headers={"user-agent": "TelegramBot (like TwitterBot)"})
    api.get(f"/{telegram_link}", headers={"user-agent": "curl/8"})
    drained(api)
    rows = api.get("/api/v1/stats?group_by=source").json()["rows"]
    [row] = rows
    assert {k: row[k] for k in ("source", "clicks", "bot_visits", "previews")} == {
        "source": "flyer",
        "clicks": 1,
        "bot_visits": 2,
        "previews": 1,
    }


def test_unknown_codes_get_a_friendly_404(client: TestClient, db: Database) -> None:
    r = client.get("/ZZZZZZZ", headers={"user-agent": PHONE})
    assert r.status_code == 404
    assert "does not exist" in r.text
    assert client.get("/%3Cscript%3E", headers={"user-agent": PHONE}).status_code == 404
    assert count(db, Click) == 0


def test_disabled_and_expired_links_say_so(client: TestClient, db: Database) -> None:
    channel = make_channel(db)
    off = make_link(db, [channel.id], disabled=True).code
    past = (utcnow() - timedelta(days=1)).isoformat()
    expired = make_link(
        db, [channel.id], valid_from=(utcnow() - timedelta(days=9)).isoformat(), valid_until=past
    ).code
    r = client.get(f"/{off}", headers={"user-agent": PHONE})
    assert r.status_code == 410 and "switched off" in r.text
    r = client.get(f"/{expired}", headers={"user-agent": PHONE})
    assert r.status_code == 410 and "ended" in r.text
    assert count(db, Click) == 0


def test_multi_channel_links_show_a_chooser_tracked_per_channel(
    client: TestClient, db: Database
) -> None:
    telegram = make_channel(db, "telegram", "shop_bot")
    vk = make_channel(db, "vk", "shopclub")
    code = make_link(db, [telegram.id, vk.id], source="poster").code
    r = client.get(f"/{code}?utm_source=story", headers={"user-agent": PHONE})
    assert r.status_code == 200
    assert f"/{code}?c={vk.id}&amp;utm_source=story" in r.text
    assert count(db, Click) == 0
    r = client.get(f"/{code}?c={vk.id}&utm_source=story", headers={"user-agent": PHONE})
    assert r.status_code == 302
    assert r.headers["location"].startswith("https://vk.me/shopclub?ref=")
    [click] = clicks(client, db)
    assert click.channel_id == vk.id and click.source == "story"


def test_whatsapp_carries_a_readable_ref_code_in_the_prefilled_text(
    client: TestClient, db: Database
) -> None:
    from acquisition.messengers import whatsapp

    channel = make_channel(db, "whatsapp", "+7 916 123-45-67")
    code = make_link(db, [channel.id], text="Hello! I want the summer offer").code
    r = client.get(f"/{code}", headers={"user-agent": PHONE})
    location = urlsplit(r.headers["location"])
    assert (location.netloc, location.path) == ("wa.me", "/79161234567")
    text = parse_qs(location.query)["text"][0]
    assert text.startswith("Hello! I want the summer offer")
    [click] = clicks(client, db)
    assert whatsapp.find_ref(text) == click.ref


def test_the_redirect_never_goes_where_a_request_says(
    client: TestClient, db: Database, telegram_link: str
) -> None:
    for query in (
        "?next=https://evil.example",
        "?url=//evil.example",
        "?c=https://evil.example",
        "?location=javascript:alert(1)",
    ):
        r = client.get(f"/{telegram_link}{query}", headers={"user-agent": PHONE})
        assert r.status_code == 302
        assert r.headers["location"].startswith("https://t.me/shop_bot?start=")


def test_security_headers_on_pages(client: TestClient, db: Database) -> None:
    r = client.get("/NOSUCHCODE", headers={"user-agent": PHONE})
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
    assert r.headers["x-frame-options"] == "DENY"


def test_a_redirect_carries_the_security_headers_that_apply_to_it(
    client: TestClient, telegram_link: str
) -> None:
    """HSTS, and the Referrer-Policy that narrows what the messenger learns of the page the
    person came from; nosniff and X-Frame-Options only concern content, which a 302 has none of.
    (That the short-link front sends the same as the full stack: test_short_link_front.)"""
    r = client.get(f"/{telegram_link}", headers={"user-agent": PHONE})
    assert r.status_code == 302
    assert r.headers["strict-transport-security"] == "max-age=31536000"
    assert r.headers["referrer-policy"] == "strict-origin-when-cross-origin"
    assert "x-content-type-options" not in r.headers
    assert "x-frame-options" not in r.headers


def test_phone_only_messengers_show_a_scan_page_on_desktop(
    client: TestClient, db: Database
) -> None:
    channel = make_channel(db, "viber", "shopbot")
    code = make_link(db, [channel.id], source="site").code
    r = client.get(f"/{code}?utm_source=footer", headers={"user-agent": DESKTOP})
    assert r.status_code == 200
    assert "Scan with your phone" in r.text
    assert 'src="data:image/svg+xml;base64,' in r.text
    assert clicks(client, db) == []
    anyway = client.get(f"/{code}?utm_source=footer&open=1", headers={"user-agent": DESKTOP})
    assert anyway.status_code == 302
    assert anyway.headers["location"].startswith("viber://pa?chatURI=shopbot&context=")
    on_phone = client.get(f"/{code}", headers={"user-agent": PHONE})
    assert on_phone.status_code == 302
    assert [c.source for c in clicks(client, db)] == ["footer", "site"]


def test_the_scan_page_code_carries_the_visit_source(client: TestClient, db: Database) -> None:
    import base64
    import re

    from tests.test_qr import decode, svg_image

    channel = make_channel(db, "instagram", "shop.example")
    code = make_link(db, [channel.id]).code
    r = client.get(f"/{code}?utm_source=footer", headers={"user-agent": DESKTOP})
    svg = base64.b64decode(re.search(r'base64,([^"]+)"', r.text).group(1))  # type: ignore[union-attr]
    assert decode(svg_image(svg)) == [f"HTTPS://GO.EXAMPLE.COM/Q/{code}?utm_source=footer"]
