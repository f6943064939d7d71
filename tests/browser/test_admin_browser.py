"""The admin in real headless Chromium against a real uvicorn process: a marketer signs in,
registers a Telegram channel, builds a link with a placement, designs its QR code, and, once a
phone followed the link and the bot's webhook reported the start, sees the opt-in appear on the
dashboard without reloading it. Also: a forged CSRF token and a wrong password are refused, the
pages work with the keyboard, fit a phone, and never log a console error or a CSP violation.

Screenshots go to $ACQUISITION_SCREENSHOTS (default build/screenshots/).
"""

from __future__ import annotations

import contextlib
import os
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, expect, sync_playwright
from sqlalchemy import delete, select

from acquisition import accounts, channels, rollups
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Base, Channel, Link, Subscriber
from tests import deliveries as d
from tests.conftest import SECRET
from tests.live_server import free_port, live_server

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Mobile Safari/537.36"
)
EMAIL = "marketer@example.com"
PASSWORD = "a long and good password"
ROOT = Path(__file__).resolve().parent.parent.parent
# CSP violations are reported to the page as events; console errors by the browser.
WATCH = """
window.__problems = [];
document.addEventListener('securitypolicyviolation', (e) => {
  window.__problems.push('csp: ' + e.violatedDirective + ' ' + e.blockedURI);
}, true);
"""


def full_page(page: Page, name: str) -> None:
    """A full-page screenshot from the top (the sticky header stays where it belongs)."""
    page.evaluate("() => window.scrollTo(0, 0)")
    page.screenshot(path=shots() / name, full_page=True)


def shots() -> Path:
    folder = Path(os.environ.get("ACQUISITION_SCREENSHOTS") or ROOT / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@dataclass
class Service:
    url: str
    db: Database
    log: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def service(
    database: Database, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with database.writer.begin() as session:
        accounts.create(session, EMAIL, PASSWORD)
    env = {
        "ACQUISITION_DATABASE_URL": settings.database_url,
        "ACQUISITION_BASE_URL": url,
        "ACQUISITION_SECRET_KEY": SECRET,
        "ACQUISITION_SPOOL_DIR": str(tmp_path_factory.mktemp("spool")),
        "ACQUISITION_LINK_CACHE_SECONDS": "0",
    }
    try:
        with live_server(env, port=port, log_dir=tmp_path_factory.mktemp("log")) as server:
            yield Service(server.url, database)
            assert "Traceback" not in server.output(), server.output()
    finally:
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as pw:
        yield _launch(pw)


def _launch(pw: Playwright) -> Browser:
    return pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)


@dataclass
class Tab:
    page: Page
    errors: list[str]

    def problems(self) -> list[str]:
        found = list(self.errors)
        with contextlib.suppress(Exception):  # a navigating page took its own list along
            found += self.page.evaluate("window.__problems || []")
        return found


def open_tab(browser: Browser, **options: object) -> tuple[BrowserContext, Tab]:
    settings: dict[str, object] = {
        "user_agent": DESKTOP_UA,
        "viewport": {"width": 1366, "height": 900},
        "locale": "en-US",
        **options,
    }
    context = browser.new_context(**settings)  # type: ignore[arg-type]
    context.add_init_script(WATCH)
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda m: m.type == "error" and errors.append(m.text))
    page.on("pageerror", lambda e: errors.append(f"pageerror: {e}"))
    return context, Tab(page, errors)


def sign_in(tab: Tab, service: Service) -> None:
    page = tab.page
    page.goto(f"{service.url}/admin/")
    expect(page).to_have_url(re.compile(r"/admin/login\?next="))
    # Keyboard only: the email field has the focus, Tab to the password, Enter submits.
    page.keyboard.type(EMAIL)
    page.keyboard.press("Tab")
    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{service.url}/admin/")


def test_a_marketer_builds_a_link_and_sees_its_opt_in_arrive_live(
    browser: Browser, service: Service
) -> None:
    context, tab = open_tab(browser)
    page = tab.page
    sign_in(tab, service)
    expect(page.locator("h1")).to_have_text("Dashboard")
    expect(page.locator("svg.chart")).to_have_count(2)

    # A Telegram channel: the page answering the form shows the webhook and the secret once.
    page.get_by_role("link", name="Channels").click()
    page.get_by_role("link", name="Add a channel").first.click()
    page.get_by_role("link", name="Telegram").click()
    page.get_by_label("Handle").fill("@shop_bot")
    page.get_by_label("Name shown in the admin").fill("Shop")
    page.get_by_role("button", name="Save channel").click()
    expect(page.get_by_text("Copy the secrets now")).to_be_visible()
    secret = page.locator('[data-credential="secret"] code').inner_text()
    hook_url = page.locator("dd code").first.inner_text()
    assert re.fullmatch(rf"{service.url}/hooks/telegram/\d+", hook_url), hook_url
    full_page(page, "admin-channel.png")

    # A link for a flyer batch, with its cost.
    page.get_by_role("link", name="Create a link").click()
    page.get_by_label("Shop").check()
    page.get_by_label("Campaign", exact=True).fill("spring")
    page.get_by_label("Source", exact=True).fill("flyer")
    page.get_by_label("Medium", exact=True).fill("print")
    page.get_by_label("New placement: name").fill("Metro flyer B")
    page.get_by_label("Kind").select_option("print")
    page.get_by_label("Cost").fill("300")
    page.get_by_role("button", name="Create link").click()
    expect(page.get_by_text("Link created.")).to_be_visible()
    code = page.locator("h1 code").inner_text()

    # The QR designer redraws as the settings change.
    preview = page.locator("[data-qr-preview]")
    page.get_by_label("Size, mm").fill("40")
    page.get_by_label("Caption under the code").fill("Scan me: 10% off")
    expect(preview).to_have_attribute("src", re.compile(r"^data:image/svg\+xml;base64,"))
    full_page(page, "admin-qr-designer.png")
    with page.expect_download() as download:
        page.get_by_role("button", name="Download PDF").click()
    assert download.value.suggested_filename == f"{code}-40mm.pdf"

    # A phone follows the link; the bot's webhook reports the start with the ref.
    click = httpx.get(f"{service.url}/{code}", headers={"user-agent": PHONE_UA})
    assert click.status_code == 302, click.text
    ref = d.ref_from(click.headers["location"])
    raw = d.encode(d.start("telegram", ref, 1, int(time.time())))
    headers = {"content-type": "application/json", "x-telegram-bot-api-secret-token": secret}
    hook = httpx.post(hook_url, content=raw, headers=headers)
    assert hook.status_code == 200, hook.text

    # The dashboard, left open, shows the opt-in without a reload once the rollup caught up.
    page.goto(f"{service.url}/admin/")
    marker = page.evaluate("() => (window.__marker = Math.random())")
    with service.db.writer.begin() as session:
        rollups.refresh(session, wait=True)
    optins = page.locator('[data-metric="optins"] .metric-value')
    expect(optins).to_have_text("1", timeout=30_000)
    assert page.evaluate("() => window.__marker") == marker  # the same page: no reload
    table = page.locator('[data-live="table"] table')
    expect(table).to_contain_text("flyer")
    page.get_by_role("link", name="Campaign", exact=True).click()
    page.get_by_role("link", name="spring").click()
    expect(page.locator('[data-live="table"] table')).to_contain_text("Metro flyer B")
    expect(page.locator('[data-live="table"] table')).to_contain_text("300.00")
    page.goto(f"{service.url}/admin/")
    full_page(page, "admin-dashboard.png")

    assert not tab.problems(), tab.problems()
    context.close()


def test_the_widget_builder_shows_the_real_widget_live(browser: Browser, service: Service) -> None:
    with service.db.writer.begin() as session:
        for messenger, handle in (("telegram", "shop_bot"), ("viber", "shop")):
            if session.scalar(select(Channel.id).where(Channel.messenger == messenger)) is None:
                channels.create(session, channels.parse({"messenger": messenger, "handle": handle}))
    context, tab = open_tab(browser)
    page = tab.page
    sign_in(tab, service)
    page.get_by_role("link", name="Widgets").click()
    page.get_by_role("link", name="Build a widget").first.click()
    host = page.locator('[data-acquisition-widget="preview"]')
    expect(page.locator("[data-preview-error]")).to_be_visible()  # no channel chosen yet
    for box in page.locator('input[name="channels"]').all():
        box.check()
    expect(host).to_have_count(1)
    page.get_by_label("Name", exact=True).fill("Main site")
    page.get_by_label("Allowed sites").fill("https://example.org")
    page.get_by_label("Button colour").fill("#e11d48")
    page.get_by_label("Call to action (EN)").fill("Chat with us")
    expect(host).to_have_count(1)
    page.wait_for_function(
        "() => { const h = document.querySelector('[data-acquisition-widget=\"preview\"]');"
        " return h && h.style.getPropertyValue('--acq-color').toUpperCase() === '#E11D48'; }"
    )
    page.wait_for_timeout(600)  # no reload pending: the form is quiet
    # The widget itself works with the keyboard, in the admin page too.
    host.locator(".l").first.focus()
    page.keyboard.press("Enter")
    expect(host.locator(".p.o")).to_be_visible()
    expect(host.locator(".p.o")).to_contain_text("Telegram")
    page.evaluate(
        """() => Promise.all(document.querySelector('[data-acquisition-widget="preview"]')
        .shadowRoot.getAnimations().map((a) => a.finished))"""
    )
    page.screenshot(path=shots() / "admin-widget-builder.png", full_page=False)
    page.keyboard.press("Escape")
    expect(host.locator(".p.o")).to_have_count(0)
    page.get_by_role("button", name="Save widget").click()
    expect(page.get_by_text("Widget saved.")).to_be_visible()
    snippet = page.locator("#snippet").inner_text()
    assert re.fullmatch(rf'<script async src="{service.url}/w/wgt_\w+\.js"></script>', snippet)
    assert not tab.problems(), tab.problems()
    context.close()


def test_a_wrong_password_keeps_the_marketer_out(browser: Browser, service: Service) -> None:
    context, tab = open_tab(browser)
    page = tab.page
    page.goto(f"{service.url}/admin/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.goto(f"{service.url}/admin/links")
    expect(page).to_have_url(re.compile(r"/admin/login"))
    # The 401 of the failed attempt is the only console message, and it is expected.
    assert all("401" in e for e in tab.problems()), tab.problems()
    context.close()


def test_a_form_with_a_forged_csrf_token_changes_nothing(
    browser: Browser, service: Service
) -> None:
    context, tab = open_tab(browser)
    page = tab.page
    sign_in(tab, service)
    page.goto(f"{service.url}/admin/links/new")
    with service.db.reader() as session:
        before = len(session.scalars(select(Link)).all())
    page.locator('input[name="channels"]').first.check()
    page.get_by_label("Campaign", exact=True).fill("forged")
    # The link form's own token (the header's sign-out form has one too).
    page.locator('form[action="/admin/links/new"] input[name="csrf"]').evaluate(
        "input => { input.value = 'forged'; }"
    )
    page.get_by_role("button", name="Create link").click()
    expect(page.locator("h1")).to_have_text("This form has expired. Reload the page and try again.")
    with service.db.reader() as session:
        assert len(session.scalars(select(Link)).all()) == before
    context.close()


def test_pages_fit_a_phone_and_show_where_the_keyboard_is(
    browser: Browser, service: Service
) -> None:
    context, tab = open_tab(
        browser,
        viewport={"width": 390, "height": 844},
        is_mobile=True,
        has_touch=True,
        user_agent=PHONE_UA,
    )
    page = tab.page
    sign_in(tab, service)
    with service.db.reader() as session:
        code = session.scalars(select(Link.code)).first()
        channel_id = session.scalars(select(Channel.id)).first()
        person = session.scalars(select(Subscriber.id)).first()
    paths = [
        "/admin/",
        "/admin/?group=placement&sort=cost",
        "/admin/links",
        "/admin/links/new",
        "/admin/links/bulk",
        f"/admin/links/{code}",
        "/admin/channels",
        "/admin/channels/new",
        "/admin/channels/new?messenger=vk",
        f"/admin/channels/{channel_id}",
        "/admin/widgets",
        "/admin/widgets/new",
        "/admin/subscribers",
        f"/admin/subscribers/{person}",
        f"/admin/subscribers/{person}/erase",
    ]
    for path in paths:
        page.goto(f"{service.url}{path}")
        assert page.locator("h1").count() == 1, path
        wide = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
        assert wide <= 1, (path, wide)
        assert not tab.problems(), (path, tab.problems())
    page.goto(f"{service.url}/admin/")
    full_page(page, "admin-dashboard-phone.png")
    # Keyboard: the first Tab lands on the skip link, with a visible outline.
    page.keyboard.press("Tab")
    focused = page.evaluate(
        "() => { const e = document.activeElement; const s = getComputedStyle(e);"
        " return [e.className, s.outlineStyle, s.outlineWidth]; }"
    )
    assert focused[0] == "skip" and focused[1] != "none" and focused[2] != "0px", focused
    assert not tab.problems(), tab.problems()
    context.close()
