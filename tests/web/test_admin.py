"""The admin UI in-process: signing in, CSRF, the sign-in rate limit, every page in both
languages, the forms that create channels, links, widgets (and refuse bad input, storing
nothing), exports, erasure and the live refresh of the dashboard."""

from __future__ import annotations

import csv
import io
import re
import time
from collections.abc import Iterator
from dataclasses import replace
from ipaddress import ip_network
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import accounts, cli, rollups
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Channel, Link, Placement, Subscriber, Widget
from acquisition.models.accounts import User
from acquisition.web.admin import catalog, security
from acquisition.web.app import create_app
from tests import deliveries as d
from tests.conftest import BASE_URL, count, drained, inside_a_minute
from tests.factories import make_channel, make_link

EMAIL = "anna@example.com"
PASSWORD = "correct horse battery"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')
PNG_LOGO = (
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00"
    b"\x90wS\xde\x00\x00\x00\x0cIDATx\x9cc\xf8\xcf\xc0\x00\x00\x03\x01\x01\x00\xc9\xfe\x92\xef"
    b"\x00\x00\x00\x00IEND\xaeB`\x82"
)


@pytest.fixture
def user(db: Database) -> User:
    with db.writer.begin() as session:
        return accounts.create(session, EMAIL, PASSWORD)


def token(client: TestClient, path: str = "/admin/login") -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = CSRF.search(page.text)
    assert found, "no CSRF field on " + path
    return found.group(1)


def sign_in(client: TestClient, email: str = EMAIL, password: str = PASSWORD) -> Any:
    return client.post(
        "/admin/login",
        data={"email": email, "password": password, "csrf": token(client)},
    )


@pytest.fixture
def admin(client: TestClient, user: User) -> TestClient:
    """The test client, signed in."""
    answer = sign_in(client)
    assert answer.status_code == 303, answer.text
    return client


def post(
    client: TestClient, path: str, data: dict[str, Any], page: str | None = None, **kwargs: Any
) -> Any:
    """Submit a form the way a browser does: with the CSRF token of the page it came from."""
    return client.post(path, data={**data, "csrf": token(client, page or path)}, **kwargs)


def refresh_rollups(db: Database) -> None:
    with db.writer.begin() as session:
        rollups.refresh(session)


def subscriber_through(client: TestClient, db: Database, campaign: str = "spring") -> dict:
    """A channel, a link with a placement, a phone click and a Telegram start: one opt-in."""
    channel = make_channel(db, credentials={"secret": d.CREDENTIALS["telegram"]["secret"]})
    link = make_link(
        db,
        [channel.id],
        campaign=campaign,
        source="flyer",
        placement={"name": "Metro flyer B", "kind": "print", "cost": 300},
    )
    click = client.get(f"/{link.code}", headers={"user-agent": d.PHONE})
    assert click.status_code == 302
    drained(client)
    ref = d.ref_from(click.headers["location"])
    raw = d.encode(d.start("telegram", ref, 1, int(time.time())))
    hook = client.post(
        f"/hooks/telegram/{channel.id}", content=raw, headers=d.sign("telegram", raw)
    )
    assert hook.status_code == 200, hook.text
    refresh_rollups(db)
    return {"channel": channel, "link": link}


# --- signing in ----------------------------------------------------------------------------


def test_the_sign_in_form_has_email_password_and_a_hidden_csrf_field(client: TestClient) -> None:
    page = client.get("/admin/login")
    assert page.status_code == 200
    assert 'name="email"' in page.text and 'name="password"' in page.text
    assert re.search(r'<input type="hidden" name="csrf" value="[^"]+">', page.text)


def test_signing_in_leads_to_the_dashboard_of_the_last_30_days(
    client: TestClient, user: User, db: Database
) -> None:
    subscriber_through(client, db)
    answer = sign_in(client)
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200
    assert "30 days" in page.text
    assert '<svg class="chart"' in page.text
    table = page.text.split('data-live="table"')[1]
    assert "flyer" in table  # the breakdown names the source
    with db.reader() as session:
        assert session.scalar(select(User.last_login_at)) is not None


def test_the_admin_without_a_slash_leads_to_the_dashboard(client: TestClient) -> None:
    assert client.get("/admin").headers["location"] == "/admin/"


def test_pages_ask_for_sign_in_and_come_back_after_it(client: TestClient, user: User) -> None:
    answer = client.get("/admin/links?campaign=spring")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/admin/login?next=%2Fadmin%2Flinks%3Fcampaign%3Dspring"
    form = client.get(answer.headers["location"])
    assert 'value="/admin/links?campaign=spring"' in form.text
    signed = client.post(
        "/admin/login",
        data={
            "email": EMAIL,
            "password": PASSWORD,
            "csrf": CSRF.search(form.text).group(1),
            "next": "/admin/links?campaign=spring",
        },
    )
    assert signed.headers["location"] == "/admin/links?campaign=spring"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/elsewhere",
        "/admin\\@evil.example",
        "/admin/login",
    ],
)
def test_after_sign_in_only_admin_pages_are_a_destination(
    client: TestClient, user: User, target: str
) -> None:
    answer = client.post(
        "/admin/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf": token(client), "next": target},
    )
    assert answer.headers["location"] == "/admin/"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        (EMAIL, "wrong password!"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
        (EMAIL, "x" * 5000),
    ],
)
def test_a_wrong_email_or_password_gets_the_same_answer(
    client: TestClient, user: User, email: str, password: str
) -> None:
    answer = sign_in(client, email, password)
    assert answer.status_code == 401
    assert "Wrong email or password." in answer.text
    assert security.COOKIE not in answer.cookies or "uid" not in answer.text
    assert client.get("/admin/").status_code == 303


def test_email_case_does_not_matter(client: TestClient, user: User) -> None:
    assert sign_in(client, " Anna@Example.COM ").status_code == 303


def test_signing_in_without_a_csrf_token_is_refused(client: TestClient, user: User) -> None:
    client.get("/admin/login")
    answer = client.post("/admin/login", data={"email": EMAIL, "password": PASSWORD})
    assert answer.status_code == 403
    assert "expired" in answer.text
    assert client.get("/admin/").status_code == 303


def test_a_csrf_token_of_another_session_is_refused(
    client: TestClient, user: User, settings: Settings, db: Database, tmp_path: Path
) -> None:
    other = create_app(replace(settings, spool_dir=str(tmp_path / "other")), db)
    with TestClient(other, base_url=BASE_URL) as stranger:
        foreign = token(stranger)
    client.get("/admin/login")
    answer = client.post(
        "/admin/login", data={"email": EMAIL, "password": PASSWORD, "csrf": foreign}
    )
    assert answer.status_code == 403


def test_a_forged_csrf_token_is_refused(client: TestClient, user: User) -> None:
    real = token(client)
    answer = client.post(
        "/admin/login", data={"email": EMAIL, "password": PASSWORD, "csrf": real[:-2] + "xx"}
    )
    assert answer.status_code == 403


def test_a_cross_site_form_is_refused_even_with_a_token(client: TestClient, user: User) -> None:
    real = token(client)
    for headers in (
        {"sec-fetch-site": "cross-site"},
        {"origin": "https://evil.example"},
        {"origin": "null"},
    ):
        answer = client.post(
            "/admin/login",
            data={"email": EMAIL, "password": PASSWORD, "csrf": real},
            headers=headers,
        )
        assert answer.status_code == 403, headers


def test_a_same_origin_form_is_accepted(client: TestClient, user: User) -> None:
    answer = client.post(
        "/admin/login",
        data={"email": EMAIL, "password": PASSWORD, "csrf": token(client)},
        headers={"origin": BASE_URL, "sec-fetch-site": "same-origin"},
    )
    assert answer.status_code == 303


@pytest.fixture
def strict_client(settings: Settings, db: Database, tmp_path: Path) -> Iterator[TestClient]:
    """Three sign-in attempts a minute, behind a trusted proxy (so each test request may come
    from its own address, in X-Forwarded-For)."""
    app = create_app(
        replace(
            settings,
            spool_dir=str(tmp_path / "spool"),
            rate_limit_login="3/minute",
            trusted_proxies=(ip_network("10.0.0.1/32"),),
        ),
        db,
    )
    inside_a_minute()
    with TestClient(
        app, base_url=BASE_URL, follow_redirects=False, client=("10.0.0.1", 50000)
    ) as test_client:
        yield test_client


def test_sign_in_attempts_are_limited_per_email(strict_client: TestClient, user: User) -> None:
    for i in range(3):
        strict_client.headers["x-forwarded-for"] = f"203.0.113.{i + 1}"
        assert sign_in(strict_client, password="wrong password!").status_code == 401
    strict_client.headers["x-forwarded-for"] = "203.0.113.50"
    answer = sign_in(strict_client)  # even the right password, from anywhere, for now
    assert answer.status_code == 429
    assert int(answer.headers["retry-after"]) >= 1
    assert "Too many sign-in attempts" in answer.text
    assert "Retry" not in answer.text and '<html lang="en">' in answer.text
    strict_client.headers["x-forwarded-for"] = "203.0.113.51"
    assert sign_in(strict_client, "other@example.com", "wrong password!").status_code == 401


def test_sign_in_attempts_are_limited_per_address(strict_client: TestClient, user: User) -> None:
    statuses = [
        sign_in(strict_client, f"user{i}@example.com", "wrong password!").status_code
        for i in range(4)
    ]
    assert statuses[:3] == [401, 401, 401]
    assert statuses[3] == 429


def test_signing_out_ends_the_session(admin: TestClient) -> None:
    answer = post(admin, "/admin/logout", {}, page="/admin/")
    assert answer.status_code == 303
    assert admin.get("/admin/").status_code == 303


def test_signing_out_needs_the_csrf_token(admin: TestClient) -> None:
    assert admin.post("/admin/logout").status_code == 403
    assert admin.get("/admin/").status_code == 200


def test_a_password_change_ends_every_session(admin: TestClient, db: Database) -> None:
    with db.writer.begin() as session:
        found = session.scalars(select(User)).one()
        accounts.set_password(session, found, "another long password")
    assert admin.get("/admin/").status_code == 303


def test_a_tampered_session_cookie_is_ignored(admin: TestClient) -> None:
    value = admin.cookies[security.COOKIE]
    admin.cookies.clear()
    admin.cookies.set(security.COOKIE, value[:-3] + "abc", path="/admin")
    assert admin.get("/admin/").status_code == 303


def test_the_session_cookie_is_httponly_samesite_secure_and_only_for_the_admin(
    client: TestClient, user: User
) -> None:
    answer = sign_in(client)
    cookie = next(
        v
        for k, v in answer.headers.multi_items()
        if k == "set-cookie" and v.startswith(security.COOKIE)
    )
    flags = cookie.lower()
    assert "httponly" in flags and "samesite=lax" in flags and "secure" in flags
    assert "path=/admin" in flags


def test_admin_pages_carry_a_strict_csp(admin: TestClient) -> None:
    page = admin.get("/admin/")
    csp = page.headers["content-security-policy"]
    for rule in (
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ):
        assert rule in csp
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["cache-control"] == "no-store"
    assert "<script>" not in page.text and " style=" not in page.text
    assert not re.search(r"\son[a-z]+=", page.text)


# --- the pages, in both languages ----------------------------------------------------------

PAGES = [
    "/admin/",
    "/admin/?group=campaign",
    "/admin/?group=placement&sort=cost&dir=asc",
    "/admin/?group=day&since=2026-01-01&until=2026-01-31",
    "/admin/?group=link&attribution=last",
    "/admin/channels",
    "/admin/channels/new",
    "/admin/channels/new?messenger=vk",
    "/admin/links",
    "/admin/links/new",
    "/admin/links/bulk",
    "/admin/widgets",
    "/admin/widgets/new",
    "/admin/subscribers",
    "/admin/subscribers?status=subscribed",
]


@pytest.mark.parametrize("lang", ["en", "ru"])
def test_every_page_renders_in_both_languages(admin: TestClient, db: Database, lang: str) -> None:
    made = subscriber_through(admin, db)
    admin.cookies.set("acq_lang", lang, path="/admin")
    extra = [
        f"/admin/channels/{made['channel'].id}",
        f"/admin/links/{made['link'].code}",
        "/admin/subscribers/" + str(_subscriber_id(db)),
        "/admin/subscribers/" + str(_subscriber_id(db)) + "/erase",
    ]
    for path in [*PAGES, *extra]:
        page = admin.get(path)
        assert page.status_code == 200, (path, page.text[:500])
        assert f'<html lang="{lang}">' in page.text
        assert "None" not in re.sub(r"<[^>]+>", "", page.text), path
    if lang == "ru":
        assert "Панель" in admin.get("/admin/").text


def _subscriber_id(db: Database) -> int:
    with db.reader() as session:
        return int(session.scalars(select(Subscriber.id)).one())


def test_an_unknown_admin_page_is_a_page_not_a_problem_document(admin: TestClient) -> None:
    answer = admin.get("/admin/nothing/here")
    assert answer.status_code == 404
    assert "No such page." in answer.text and answer.headers["content-type"].startswith("text/html")


def test_the_browser_language_is_the_default_and_a_link_switches_it(
    client: TestClient, user: User
) -> None:
    assert (
        '<html lang="ru">'
        in client.get("/admin/login", headers={"accept-language": "ru-RU,ru;q=0.9,en;q=0.8"}).text
    )
    assert (
        '<html lang="en">'
        in client.get("/admin/login", headers={"accept-language": "de-DE,en;q=0.5"}).text
    )
    switched = client.get("/admin/lang/ru?next=/admin/login")
    assert switched.status_code == 303 and switched.headers["location"] == "/admin/login"
    assert '<html lang="ru">' in client.get("/admin/login", headers={"accept-language": "en"}).text


def test_every_word_the_pages_use_has_a_russian_translation() -> None:
    root = Path(__file__).resolve().parents[2] / "acquisition" / "web"
    found: set[str] = set()
    pattern = re.compile(r"""\bt\(\s*(?:"((?:[^"\\]|\\.)*)"|'((?:[^'\\]|\\.)*)')""")
    for path in [*(root / "templates" / "admin").rglob("*.html"), *(root / "admin").glob("*.py")]:
        for match in pattern.finditer(path.read_text()):
            found.add(match.group(1) or match.group(2))
    from acquisition.web.admin import channel_pages

    for guide in channel_pages.GUIDE.values():
        found.add(guide["handle"])
        found.update(guide["credentials"].values())
        found.update(guide["steps"])
    for text in re.findall(
        r'flash\(request, "([^"]+)"\)',
        "".join(p.read_text() for p in (root / "admin").glob("*.py")),
    ):
        found.add(text)
    code = "".join(p.read_text() for p in (root / "admin").glob("*.py"))
    for shown in (
        r'message="([^"]+)"',
        r'error="([^"]+)"',
        r'summary="([^"]+)"',
        r'forbidden\(request, "([^"]+)"\)',
    ):
        found.update(re.findall(shown, code))
    auth = (root / "admin" / "auth.py").read_text()
    found.update(re.findall(r'\n\s+(?:\d{3}, )?"([A-Z][^"]*\.)"', auth))
    missing = sorted(text for text in found if not text.endswith(":") and text not in catalog.RU)
    assert not missing, missing


# --- channels ------------------------------------------------------------------------------


def test_creating_a_channel_shows_what_to_register_and_the_secret_once(
    admin: TestClient, db: Database
) -> None:
    answer = post(
        admin,
        "/admin/channels/new",
        {"messenger": "telegram", "handle": "@shop_bot", "name": "Shop"},
        page="/admin/channels/new?messenger=telegram",
    )
    assert answer.status_code == 201, answer.text
    with db.reader() as session:
        channel = session.scalars(select(Channel)).one()
    secret = channel.credentials["secret"]
    assert f"{BASE_URL}/hooks/telegram/{channel.id}" in answer.text
    assert secret in answer.text and "setWebhook" in answer.text
    again = admin.get(f"/admin/channels/{channel.id}")
    assert secret not in again.text and secret[:4] + "…" in again.text


def test_a_bad_channel_form_comes_back_with_the_field_marked_and_nothing_stored(
    admin: TestClient, db: Database
) -> None:
    answer = post(
        admin,
        "/admin/channels/new",
        {"messenger": "telegram", "handle": "not a bot", "name": "Shop", "relay_url": "ftp://x"},
        page="/admin/channels/new?messenger=telegram",
    )
    assert answer.status_code == 422
    handle = re.search(r'<input id="f-handle"[^>]*>', answer.text).group(0)
    assert 'value="not a bot"' in handle and 'aria-invalid="true"' in handle
    assert 'id="handle-error"' in answer.text and 'id="relay_url-error"' in answer.text
    assert count(db, Channel) == 0


def test_a_channel_form_without_its_token_stores_nothing(admin: TestClient, db: Database) -> None:
    answer = admin.post("/admin/channels/new", data={"messenger": "telegram", "handle": "shop_bot"})
    assert answer.status_code == 403
    assert count(db, Channel) == 0


def test_vk_gets_a_generated_secret_and_asks_for_the_confirmation_string(
    admin: TestClient, db: Database
) -> None:
    answer = post(
        admin,
        "/admin/channels/new",
        {"messenger": "vk", "handle": "mybakery"},
        page="/admin/channels/new?messenger=vk",
    )
    assert answer.status_code == 201
    with db.reader() as session:
        channel = session.scalars(select(Channel)).one()
    assert len(channel.credentials["secret"]) >= 24
    assert "confirmation" not in channel.credentials
    assert "credentials missing" in answer.text
    updated = post(
        admin,
        f"/admin/channels/{channel.id}",
        {"name": "Bakery", "credentials.confirmation": "a1b2c3d4"},
    )
    assert updated.status_code == 200 and "a1b2c3d4" in updated.text
    assert admin.get(f"/admin/channels/{channel.id}").text.count("ready") >= 1


# --- links ---------------------------------------------------------------------------------


@pytest.fixture
def channel_id(db: Database) -> int:
    return make_channel(db).id


def test_the_link_builder_creates_a_link_with_a_new_placement(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    answer = post(
        admin,
        "/admin/links/new",
        {
            "channels": str(channel_id),
            "campaign": "spring",
            "source": "billboard",
            "medium": "outdoor",
            "placement.name": "Billboard 12, Tverskaya",
            "placement.kind": "outdoor",
            "placement.cost": "1 500,50",
        },
    )
    assert answer.status_code == 303, answer.text
    with db.reader() as session:
        link = session.scalars(select(Link)).one()
        placement = session.scalars(select(Placement)).one()
    assert answer.headers["location"] == f"/admin/links/{link.code}"
    assert (link.campaign, placement.name, str(placement.cost)) == (
        "spring",
        "Billboard 12, Tverskaya",
        "1500.50",
    )
    page = admin.get(answer.headers["location"])
    assert f"{BASE_URL}/{link.code}" in page.text and "Link created." in page.text


def test_the_link_builder_can_reuse_a_placement(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    first = make_link(db, [channel_id], placement={"name": "Footer", "kind": "web"})
    answer = post(
        admin,
        "/admin/links/new",
        {
            "channels": str(channel_id),
            "placement_id": str(first.placement_id),
        },
    )
    assert answer.status_code == 303
    assert count(db, Placement) == 1 and count(db, Link) == 2


def test_a_bad_link_form_comes_back_with_errors_and_nothing_stored(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    answer = post(
        admin,
        "/admin/links/new",
        {
            "campaign": "x" * 101,
            "placement.name": "Flyer",
            "placement.cost": "a lot",
            "slug": "admin",
        },
    )
    assert answer.status_code == 422
    text = answer.text
    assert "Nothing was saved" in text
    for field in ("channels", "campaign", "placement-cost", "slug"):
        assert f'id="{field}-error"' in text, field
    assert 'value="Flyer"' in text  # what was typed is kept
    assert count(db, Link) == 0 and count(db, Placement) == 0


def test_bulk_links_come_from_a_pasted_table(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    table = (
        "name\tkind\taddress\tcost\n"
        "Billboard 12\toutdoor\tTverskaya 12, Moscow\t1500\n"
        "Flyer batch B\tprint\t\t300,50\n"
        "Site footer\tweb\t\t\n"
    )
    answer = post(
        admin,
        "/admin/links/bulk",
        {
            "channels": str(channel_id),
            "campaign": "spring",
            "source": "offline",
            "rows": table,
        },
    )
    assert answer.status_code == 201, answer.text
    with db.reader() as session:
        found = {p.name: (p.kind, p.address, p.cost) for p in session.scalars(select(Placement))}
        assert {ln.campaign for ln in session.scalars(select(Link))} == {"spring"}
    assert found["Billboard 12"][:2] == ("outdoor", "Tverskaya 12, Moscow")
    assert str(found["Flyer batch B"][2]) == "300.50"
    assert answer.text.count(f"{BASE_URL}/") >= 3


def test_bulk_links_accept_quoted_csv_with_the_separator_inside(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    table = 'Billboard 12,outdoor,"Tverskaya 12, Moscow",1500\nFlyer,print,,300\n'
    answer = post(admin, "/admin/links/bulk", {"channels": str(channel_id), "rows": table})
    assert answer.status_code == 201
    assert count(db, Link) == 2


def test_one_bad_line_creates_nothing_and_names_the_line(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    table = "Billboard 12;outdoor;;1500\nFlyer;leaflet;;300\n;print;;\n"
    answer = post(admin, "/admin/links/bulk", {"channels": str(channel_id), "rows": table})
    assert answer.status_code == 422
    assert "Line 2, kind" in answer.text and "Line 3, name" in answer.text
    assert "Billboard 12;outdoor" in answer.text  # the table is kept for fixing
    assert count(db, Link) == 0 and count(db, Placement) == 0


def test_bulk_without_channels_marks_the_channels_once(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    answer = post(admin, "/admin/links/bulk", {"rows": "A;web\nB;web\n"})
    assert answer.status_code == 422
    assert answer.text.count('id="channels-error"') == 1
    assert count(db, Link) == 0


def test_links_export_neutralises_spreadsheet_formulas(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    make_link(db, [channel_id], campaign='=HYPERLINK("http://evil")', source="+cmd")
    answer = admin.get("/admin/links.csv")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    assert rows[0]["campaign"].startswith("'=") and rows[0]["source"] == "'+cmd"


# --- QR designer ---------------------------------------------------------------------------


def test_the_qr_designer_previews_and_downloads_with_a_logo(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    link = make_link(db, [channel_id])
    page = admin.get(f"/admin/links/{link.code}")
    assert f'src="/{link.code}.svg?size_mm=50"' in page.text
    options = {
        "size_mm": "40",
        "dpi": "600",
        "fg": "#112233",
        "bg": "#FFFFFF",
        "ec": "M",
        "quiet": "4",
        "caption": "Scan me",
    }
    logo = {"logo": ("logo.png", PNG_LOGO, "image/png")}
    preview = post(
        admin,
        f"/admin/links/{link.code}/qr",
        {**options, "action": "preview"},
        page=f"/admin/links/{link.code}",
        files=logo,
        headers={"accept": "application/json"},
    )
    assert preview.status_code == 200
    assert preview.json()["ok"] is True
    assert preview.json()["src"].startswith("data:image/svg+xml;base64,")
    for fmt, media in (("png", "image/png"), ("pdf", "application/pdf"), ("svg", "image/svg+xml")):
        answer = post(
            admin,
            f"/admin/links/{link.code}/qr",
            {**options, "format": fmt},
            page=f"/admin/links/{link.code}",
            files=logo,
        )
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith(media)
        assert answer.headers["content-disposition"] == (
            f'attachment; filename="{link.code}-40mm.{fmt}"'
        )


def test_bad_qr_settings_are_named_not_drawn(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    link = make_link(db, [channel_id])
    bad = {"size_mm": "5", "fg": "#FFFFFF", "bg": "#FFFFFF"}
    as_json = post(
        admin,
        f"/admin/links/{link.code}/qr",
        {**bad, "action": "preview"},
        page=f"/admin/links/{link.code}",
        headers={"accept": "application/json"},
    )
    assert as_json.status_code == 200 and as_json.json()["ok"] is False
    assert "size_mm" in as_json.json()["errors"]
    as_page = post(
        admin,
        f"/admin/links/{link.code}/qr",
        {**bad, "format": "png"},
        page=f"/admin/links/{link.code}",
    )
    assert as_page.status_code == 422 and 'id="size_mm-error"' in as_page.text


# --- widgets -------------------------------------------------------------------------------


WIDGET_FORM = {
    "name": "Main site",
    "origins": "https://example.org\nhttps://shop.example.org",
    "layout": "panel",
    "position": "right",
    "lang": "auto",
    "color": "#2aabee",
    "text_color": "#ffffff",
    "delay": "0",
    "scroll": "0",
    "texts.ru.cta": "Напишите нам",
    "consent.version": "v1",
    "consent.text.en": "I agree to receive messages",
}


def test_the_widget_builder_saves_a_widget_and_shows_its_snippet(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    answer = post(admin, "/admin/widgets/new", {**WIDGET_FORM, "channels": str(channel_id)})
    assert answer.status_code == 303, answer.text
    with db.reader() as session:
        widget = session.scalars(select(Widget)).one()
    assert widget.origins == ["https://example.org", "https://shop.example.org"]
    assert widget.config["texts"] == {"ru": {"cta": "Напишите нам"}}
    assert widget.config["consent"]["version"] == "v1"
    page = admin.get(answer.headers["location"])
    assert f"{BASE_URL}/w/{widget.public_id}.js" in page.text
    assert "/admin/widgets/preview.js?" in page.text
    changed = post(
        admin,
        f"/admin/widgets/{widget.public_id}",
        {**WIDGET_FORM, "channels": str(channel_id), "position": "left"},
    )
    assert changed.status_code == 303
    with db.reader() as session:
        assert session.scalars(select(Widget)).one().config["position"] == "left"


def test_a_bad_widget_form_comes_back_with_errors_and_nothing_stored(
    admin: TestClient, db: Database, channel_id: int
) -> None:
    answer = post(
        admin, "/admin/widgets/new", {**WIDGET_FORM, "origins": "example.org/page", "color": "blue"}
    )
    assert answer.status_code == 422
    for field in ("channels", "origins", "color"):
        assert f'id="{field}-error"' in answer.text, field
    assert count(db, Widget) == 0 and count(db, Link) == 0


def test_the_widget_preview_is_the_real_script_with_the_form_settings(
    admin: TestClient, channel_id: int
) -> None:
    script = admin.get(
        f"/admin/widgets/preview.js?channels={channel_id}&color=%23FF0000"
        "&layout=buttons&texts.en.cta=Hi"
    )
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert '"color":"#FF0000"' in script.text and '"layout":"buttons"' in script.text
    assert '"beacon":""' in script.text and "acquisition:preview-ready" in script.text
    bad = admin.get("/admin/widgets/preview.js?color=red")
    assert bad.status_code == 200 and "acquisition:preview-error" in bad.text


# --- subscribers ---------------------------------------------------------------------------


def test_subscribers_can_be_browsed_with_their_consent_history(
    admin: TestClient, db: Database
) -> None:
    made = subscriber_through(admin, db)
    listing = admin.get(f"/admin/subscribers?channel={made['channel'].id}&status=subscribed")
    assert listing.status_code == 200
    assert "Anna" in listing.text or str(d.USER["telegram"]) in listing.text
    assert "flyer" in listing.text
    person = admin.get(f"/admin/subscribers/{_subscriber_id(db)}")
    assert "Opt-in" in person.text and "Metro flyer B" in person.text
    nobody = admin.get("/admin/subscribers?status=unsubscribed")
    assert nobody.text.count("/admin/subscribers/") == 0
    exported = admin.get("/admin/subscribers.csv")
    assert str(d.USER["telegram"]) in exported.text
    ledger = admin.get("/admin/consent.csv")
    assert "opt_in" in ledger.text


def test_erasure_needs_a_confirmation(admin: TestClient, db: Database) -> None:
    subscriber_through(admin, db)
    sid = _subscriber_id(db)
    unconfirmed = post(
        admin, f"/admin/subscribers/{sid}/erase", {}, page=f"/admin/subscribers/{sid}/erase"
    )
    assert unconfirmed.status_code == 422
    with db.reader() as session:
        assert session.get(Subscriber, sid).erased_at is None
    done = post(
        admin,
        f"/admin/subscribers/{sid}/erase",
        {"confirm": "erase"},
        page=f"/admin/subscribers/{sid}/erase",
    )
    assert done.status_code == 303
    with db.reader() as session:
        erased = session.get(Subscriber, sid)
    assert erased.erased_at is not None and erased.messenger_user_id.startswith("erased:")


# --- the dashboard -------------------------------------------------------------------------


def test_the_dashboard_drills_down_from_campaign_to_placements_to_links(
    admin: TestClient, db: Database
) -> None:
    made = subscriber_through(admin, db)
    campaigns = admin.get("/admin/?group=campaign")
    assert 'href="/admin/?' in campaigns.text and "campaign=spring" in campaigns.text
    placements = admin.get("/admin/?group=placement&campaign=spring")
    assert "Metro flyer B" in placements.text
    placement_id = made["link"].placement_id
    assert f"placement={placement_id}" in placements.text
    links_page = admin.get(f"/admin/?group=link&campaign=spring&placement={placement_id}")
    assert f'href="/admin/links/{made["link"].code}"' in links_page.text


def test_the_breakdown_sorts_on_the_server(admin: TestClient, db: Database) -> None:
    subscriber_through(admin, db, campaign="spring")
    page = admin.get("/admin/?group=campaign&sort=label&dir=asc")
    assert 'aria-sort="ascending"' in page.text


def test_a_bad_period_is_named_and_the_default_shown(admin: TestClient) -> None:
    page = admin.get("/admin/?since=2026-13-01&until=yesterday")
    assert page.status_code == 400
    assert "must be a date" in page.text
    assert '<svg class="chart"' in page.text


def test_the_breakdown_exports_as_csv(admin: TestClient, db: Database) -> None:
    subscriber_through(admin, db)
    answer = admin.get("/admin/export.csv?group=source")
    rows = list(csv.DictReader(io.StringIO(answer.text.lstrip("\ufeff"))))
    flyer = next(row for row in rows if row["source"] == "flyer")
    assert (flyer["clicks"], flyer["optins"], flyer["cost"]) == ("1", "1", "300.00")
    days = admin.get("/admin/export.csv?table=days")
    assert days.text.lstrip("\ufeff").startswith("day,impressions,clicks")


def test_the_live_refresh_sends_the_changing_parts(admin: TestClient, db: Database) -> None:
    page = admin.get("/admin/")
    assert 'data-live-url="/admin/live?' in page.text
    subscriber_through(admin, db)
    live = admin.get("/admin/live")
    assert live.status_code == 200
    body = live.json()
    assert set(body["sections"]) == {"funnel", "charts", "table"}
    assert "flyer" in body["sections"]["table"]
    past = admin.get("/admin/?since=2025-01-01&until=2025-01-31")
    assert 'data-live-url=""' in past.text  # a closed period does not poll


# --- users ---------------------------------------------------------------------------------


def test_the_cli_creates_a_user_who_can_sign_in(
    client: TestClient,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("ACQUISITION_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("ACQUISITION_SECRET_KEY", settings.secret_key)
    assert (
        cli.main(
            [
                "user",
                "create",
                "--email",
                "Boris@Example.com",
                "--password",
                "a long enough password",
            ]
        )
        == 0
    )
    assert cli.main(["user", "list"]) == 0
    assert "boris@example.com" in capsys.readouterr().out
    assert sign_in(client, "boris@example.com", "a long enough password").status_code == 303
    assert (
        cli.main(
            [
                "user",
                "create",
                "--email",
                "boris@example.com",
                "--password",
                "a long enough password",
            ]
        )
        == 1
    )
    assert cli.main(["user", "create", "--email", "c@example.com", "--password", "short"]) == 1


def test_names_people_typed_are_shown_as_text_never_as_html(
    admin: TestClient, db: Database
) -> None:
    channel = make_channel(db, name='<img src=x onerror="alert(1)">')
    page = admin.get(f"/admin/channels/{channel.id}")
    assert "<img src=x" not in page.text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;" in page.text


def test_an_outdated_password_hash_is_upgraded_at_sign_in(client: TestClient, db: Database) -> None:
    from argon2 import PasswordHasher

    weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash(PASSWORD)
    with db.writer.begin() as session:
        session.add(User(email=EMAIL, password_hash=weak))
    assert sign_in(client).status_code == 303
    with db.reader() as session:
        stored = session.scalars(select(User)).one()
    assert stored.password_hash != weak and stored.password_hash.startswith("$argon2id$")
    assert client.get("/admin/").status_code == 200  # the session knows the new hash


def test_an_unknown_email_costs_the_same_hash_as_a_wrong_password(db: Database, user: User) -> None:
    def fastest(email: str) -> float:
        times = []
        for _ in range(3):
            began = time.perf_counter()
            with db.reader() as session:
                assert accounts.authenticate(session, email, "wrong password!") is None
            times.append(time.perf_counter() - began)
        return min(times)

    known, unknown, malformed = fastest(EMAIL), fastest("x@example.com"), fastest("nonsense")
    assert known > 0.005  # a memory-hard hash, not a fast one
    for other in (unknown, malformed):
        assert 0.33 < other / known < 3, (known, other)


def test_passwords_are_stored_as_argon2id(db: Database, user: User) -> None:
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash
