"""The widget in real headless Chromium, served by a real uvicorn process, embedded in a customer
page from another origin with a strict CSP, a hostile stylesheet and UTM parameters in its URL.

The page-driving helpers come from widgets/dev/check.py (the widget's own self-check against a
fake server); here every request goes to the real service and every claim is checked in the
database. Screenshots go to $ACQUISITION_SCREENSHOTS (default build/screenshots/).
"""

from __future__ import annotations

import io
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qs, urlsplit

import httpx2 as httpx
import pytest
import zxingcpp
from PIL import Image
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright
from sqlalchemy import delete, select

from acquisition import apikeys
from acquisition.config import Settings
from acquisition.db import Database
from acquisition.models import Base, Click, WidgetEvent
from tests.conftest import SECRET
from tests.live_server import free_port, live_server
from widgets.dev import check

pytestmark = pytest.mark.browser

# A normal desktop Chrome: Playwright's default says "HeadlessChrome", which is a bot.
DESKTOP_UA = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HOST = check.HOST
# Only the two local servers resolve: no request can leave the machine, and the messenger's deep
# link (the redirect's target) fails fast instead. Playwright cannot route a redirect's next hop,
# so the test watches the browser request the deep link rather than answering it.
NO_INTERNET = "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1"
ROOT = Path(__file__).resolve().parent.parent.parent
T = TypeVar("T")


@dataclass
class Service:
    url: str  # the acquisition service (script, QR, beacon, short links)
    site: str  # the customer's page, another origin
    widget: dict[str, Any]
    db: Database

    def page_url(self, path: str = "/pricing") -> str:
        return f"{self.site}{path}?widget={self.widget['id']}&{check.UTM_QUERY}"

    def link(self, messenger: str) -> dict[str, Any]:
        return next(ln for ln in self.widget["links"] if ln["messenger"] == messenger)


def shots() -> Path:
    folder = Path(os.environ.get("ACQUISITION_SCREENSHOTS") or ROOT / "build" / "screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def shoot(page: Page, name: str) -> None:
    check.settle(page)
    page.screenshot(path=shots() / name)


def eventually(probe: Callable[[], T | None], what: str, timeout: float = 10.0) -> T:
    """Poll `probe` until it returns something (the click spool reaches the database within
    milliseconds, the beacon is committed before its 204, but both run in another process)."""
    deadline = time.monotonic() + timeout
    while True:
        found = probe()
        if found:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def service(
    database: Database, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Service]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    site_server, site = check.serve(check.site_handler(url), "localhost")
    with database.writer.begin() as session:
        _key, token = apikeys.create(session, "browser tests")
    env = {
        "ACQUISITION_DATABASE_URL": settings.database_url,
        "ACQUISITION_BASE_URL": url,
        "ACQUISITION_SECRET_KEY": SECRET,
        "ACQUISITION_SPOOL_DIR": str(tmp_path_factory.mktemp("spool")),
        "ACQUISITION_LINK_CACHE_SECONDS": "0",
    }
    try:
        with live_server(env, port=port, log_dir=tmp_path_factory.mktemp("log")) as server:
            api = httpx.Client(
                base_url=f"{url}/api/v1", headers={"authorization": f"Bearer {token}"}
            )
            ids = []
            for messenger, handle in (("telegram", "shop_bot"), ("viber", "shop")):
                r = api.post("/channels", json={"messenger": messenger, "handle": handle})
                assert r.status_code == 201, r.text
                ids.append(r.json()["id"])
            r = api.post(
                "/widgets",
                json={
                    "channels": ids,
                    "origins": [site],
                    "include": ["/pricing*"],
                    "consent": {"version": "v2", "text": {"en": "I agree to receive messages"}},
                },
            )
            assert r.status_code == 201, r.text
            api.close()
            yield Service(server.url, site, r.json(), database)
            assert "Traceback" not in server.output(), server.output()
    finally:
        site_server.shutdown()
        with database.engine.begin() as conn:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(delete(table))


@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    with sync_playwright() as pw:
        yield pw


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    browser = playwright.chromium.launch(
        executable_path=check.CHROMIUM, args=[*check.CHROMIUM_ARGS, NO_INTERNET]
    )
    yield browser
    browser.close()


def hosts_contacted(context: BrowserContext) -> set[str]:
    """Every host:port the pages of `context` send a request to (redirect hops included)."""
    hosts: set[str] = set()
    context.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))
    return hosts


def clicks_with_ref(db: Database, ref: str) -> Click | None:
    with db.reader() as session:
        return session.scalar(select(Click).where(Click.ref == ref))


def counters(db: Database) -> dict[tuple[str, str], WidgetEvent]:
    with db.reader() as session:
        rows = session.scalars(select(WidgetEvent)).all()
    return {(row.kind, row.messenger): row for row in rows}


def decode_qr(png: bytes) -> str:
    image = Image.open(io.BytesIO(png)).convert("L")
    image = image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST)
    [found] = zxingcpp.read_barcodes(image, formats=zxingcpp.BarcodeFormat.QRCode)
    return found.text


def assert_attributed(query: dict[str, list[str]], service: Service) -> None:
    assert query["utm_source"] == ["newsletter"] and query["utm_campaign"] == ["spring"], query
    assert query["w"] == [service.widget["id"]], query
    assert query["page"][0].startswith(f"{service.site}/pricing?"), query


def test_desktop_keyboard_qr_and_click_are_attributed_end_to_end(
    browser: Browser, service: Service
) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="light", user_agent=DESKTOP_UA
    )
    hosts = hosts_contacted(context)
    page, recorded = check.open_page(context, service.page_url())
    host = page.locator(HOST)
    assert host.get_attribute("data-acquisition-widget") == service.widget["id"]
    assert host.evaluate("h => h.shadowRoot !== null")
    shoot(page, "desktop-light.png")

    # Keyboard only: Tab to the launcher, Enter opens the panel with focus inside it.
    check.open_panel_with_keyboard(page)
    focused = check.deep_focus(page)
    assert focused and focused["tag"] == "input" and focused["inWidget"], focused
    page.keyboard.press("Space")  # the consent checkbox
    links = check.panel_links(page)
    assert links.count() == 2
    for i in range(2):
        assert links.nth(i).is_visible()
        assert links.nth(i).get_attribute("aria-disabled") == "false"
    telegram = service.link("telegram")
    href = check.link_named(page, "Telegram").get_attribute("href") or ""
    assert href.startswith(telegram["href"] + "?"), href
    assert_attributed(parse_qs(urlsplit(href).query), service)
    shoot(page, "desktop-light-panel.png")

    # Viber is phone-only: a QR hand-off, served by the service, encoding the same attribution.
    viber = service.link("viber")
    check.tab_to(page, lambda f: f["tag"] == "a" and "Viber" in f["text"])
    page.keyboard.press("Enter")
    image = page.locator(f"{HOST} .q img")
    image.wait_for(state="visible")
    check.wait_until(
        lambda: image.evaluate("i => i.complete && i.naturalWidth > 0"), what="QR image", page=page
    )
    assert page.url == service.page_url()
    shoot(page, "desktop-light-qr.png")
    scanned = urlsplit(decode_qr(image.screenshot()))
    assert f"{scanned.scheme}://{scanned.netloc}{scanned.path}" == viber["href"]
    query = parse_qs(scanned.query)
    assert_attributed(query, service)
    assert query["cv"] == ["v2"]

    # Escape closes and gives focus back; reopen, Tab to Telegram, Enter follows the link.
    page.keyboard.press("Escape")
    page.locator(f"{HOST} .p").wait_for(state="hidden")
    assert check.is_toggle(check.deep_focus(page))
    check.assert_clean(recorded, page)  # no CSP violation, no console error so far
    page.keyboard.press("Enter")
    check.tab_to(page, lambda f: f["tag"] == "a" and "Telegram" in f["text"])
    with page.expect_request("https://t.me/**") as deep_link:
        page.keyboard.press("Enter")
    # The browser followed the short link, carrying the page's attribution, and the service
    # answered with a redirect to the bot's deep link with a fresh ref.
    final = deep_link.value
    assert final.is_navigation_request() and final.redirected_from is not None
    followed = urlsplit(final.redirected_from.url)
    assert f"{followed.scheme}://{followed.netloc}{followed.path}" == telegram["href"]
    assert_attributed(parse_qs(followed.query), service)
    assert final.url.startswith("https://t.me/shop_bot?start="), final.url
    ref = parse_qs(urlsplit(final.url).query)["start"][0]

    click = eventually(lambda: clicks_with_ref(service.db, ref), "the click in the database")
    assert (click.visitor, click.device, click.via) == ("human", "desktop", "widget")
    assert (click.source, click.campaign) == ("newsletter", "spring")
    assert click.widget == service.widget["id"] and click.consent_version == "v2"
    assert (click.page or "").startswith(f"{service.site}/pricing?")

    def with_click() -> dict[tuple[str, str], WidgetEvent] | None:
        found = counters(service.db)
        return found if ("click", "telegram") in found else None

    events = eventually(with_click, "the click beacon")
    impression = events[("impression", "")]
    assert (impression.count, impression.path) == (1, "/pricing")
    assert (impression.source, impression.campaign) == ("newsletter", "spring")
    assert events[("qr", "viber")].count == 1 and events[("click", "telegram")].count == 1
    assert not recorded.console_errors and not recorded.of("csp")
    # Nothing but the site, the service and (the redirect's target) the messenger.
    assert hosts == {urlsplit(service.site).netloc, urlsplit(service.url).netloc, "t.me"}, hosts
    context.close()


def test_dark_mode(playwright: Playwright, browser: Browser, service: Service) -> None:
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, color_scheme="dark", user_agent=DESKTOP_UA
    )
    page, recorded = check.open_page(context, service.page_url())
    check.open_panel_with_keyboard(page)
    page.keyboard.press("Space")
    background = page.locator(f"{HOST} .p").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(34, 36, 40)", background
    shoot(page, "desktop-dark-panel.png")
    check.link_named(page, "Viber").click()
    page.locator(f"{HOST} .q img").wait_for(state="visible")
    shoot(page, "desktop-dark-qr.png")
    check.assert_clean(recorded, page)
    context.close()

    context = browser.new_context(**playwright.devices["Pixel 7"], color_scheme="dark")
    page, recorded = check.open_page(context, service.page_url())
    page.locator(f"{HOST} button.l").tap()
    page.locator(f"{HOST} .p.o").wait_for(state="visible")
    shoot(page, "mobile-dark-panel.png")
    check.assert_clean(recorded, page)
    context.close()


def test_mobile_opens_the_app_link(
    playwright: Playwright, browser: Browser, service: Service
) -> None:
    context = browser.new_context(**playwright.devices["Pixel 7"])
    page, recorded = check.open_page(context, service.page_url())
    page.locator(f"{HOST} button.l").tap()
    page.locator(f"{HOST} .p.o").wait_for(state="visible")
    page.locator(f"{HOST} .c input").tap()
    viber = check.link_named(page, "Viber")
    assert viber.get_attribute("aria-haspopup") is None  # no QR on a phone
    shoot(page, "mobile-panel.png")
    check.assert_clean(recorded, page)

    short = service.link("viber")["href"]
    with page.expect_response(lambda r: r.url.startswith(short + "?")) as answer:
        viber.tap()
    response = answer.value
    assert response.status == 302
    location = response.headers["location"]
    assert location.startswith("viber://pa?chatURI=shop&context="), location
    assert_attributed(parse_qs(urlsplit(response.url).query), service)
    ref = parse_qs(urlsplit(location).query)["context"][0]
    click = eventually(lambda: clicks_with_ref(service.db, ref), "the click in the database")
    assert (click.device, click.source, click.via) == ("mobile", "newsletter", "widget")
    context.close()


def test_a_page_outside_the_include_rules_shows_nothing(browser: Browser, service: Service) -> None:
    context = browser.new_context(user_agent=DESKTOP_UA)
    page, recorded = check.open_page(context, service.page_url("/blog"), wait_for_widget=False)
    page.wait_for_timeout(500)
    assert page.locator(HOST).count() == 0
    check.assert_clean(recorded, page)
    # Positive control: the page's CSP is enforced and a violation would have been seen.
    page.evaluate("document.body.setAttribute('style', 'color: blue')")
    check.wait_until(lambda: bool(recorded.of("csp")), what="the control violation", page=page)
    assert recorded.of("csp")[0]["directive"].startswith("style-src")
    context.close()
