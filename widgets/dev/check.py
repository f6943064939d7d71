"""Self-check of the site widget in headless Chromium, under a strict CSP and a hostile stylesheet.

Two local servers stand in for the two sides of a real embed:
  * "svc" (127.0.0.1:<port>) plays the acquisition service: /w/<id>.js (widget.js minified with
    rjsmin, widget.css with rcssmin, tokens substituted as the real server does), the QR images,
    the beacon endpoint and the short links; it records every hit.
  * "site" (localhost:<port>) plays a customer's page, sent with
    Content-Security-Policy: default-src 'none'; script-src <svc>; img-src <svc>; connect-src <svc>;
    style-src 'self' (the last only for the page's own hostile.css).

Run:  .venv/bin/python widgets/dev/check.py   (needs playwright, rjsmin, rcssmin in the venv and
Chromium at /usr/bin/chromium; never `playwright install`). Screenshots go to /tmp/widget-shots/.

The page-driving helpers (open_page, tab_to, open_panel_with_keyboard, ...) take a page and
base URLs only, so the browser tests against the real server can reuse them.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import rcssmin
import rjsmin
from playwright.sync_api import Browser, BrowserContext, Page, Playwright, sync_playwright

WIDGETS = Path(__file__).resolve().parent.parent
SHOTS = Path("/tmp/widget-shots")
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]  # Playwright adds --user-data-dir=<fresh temp dir> itself (and refuses it in args).
UTM_QUERY = "utm_source=newsletter&utm_campaign=spring"
HOST = "[data-acquisition-widget]"


# --- the served script ----------------------------------------------------------------------------


def build_script(config: dict[str, Any]) -> str:
    """What GET /w/<id>.js serves: minified widget.js with the config and minified CSS put in."""
    js = rjsmin.jsmin((WIDGETS / "widget.js").read_text("utf-8"))
    css = minified_css()
    for token in ("__ACQUISITION_CONFIG__", "__ACQUISITION_CSS__"):
        assert js.count(token) == 1, f"{token} must occur exactly once"
    return js.replace("__ACQUISITION_CONFIG__", json.dumps(config)).replace(
        "__ACQUISITION_CSS__", json.dumps(css)
    )


def minified_css() -> str:
    return rcssmin.cssmin((WIDGETS / "widget.css").read_text("utf-8"))


def css_hash() -> str:
    """CSP source for the <style> fallback (browsers without constructable stylesheets)."""
    digest = hashlib.sha256(minified_css().encode("utf-8")).digest()
    return "'sha256-" + base64.b64encode(digest).decode() + "'"


def gzip_size(text: str) -> int:
    return len(gzip.compress(text.encode("utf-8"), compresslevel=9))


def sample_configs(svc: str) -> dict[str, dict[str, Any]]:
    def button(messenger: str, label: str, code: str, widget: str, qr: bool = False) -> dict:
        return {
            "messenger": messenger,
            "label": label,
            "href": f"{svc}/{code}",
            "qr": f"{svc}/w/{widget}/qr/{code}.svg" if qr else None,
        }

    texts = {
        "en": {"consent": "I agree to receive messages from Shop"},
        "ru": {"consent": "Я согласен получать сообщения от Shop"},
    }
    return {
        # Panel, consent checkbox, four messengers, two of them phone-only.
        "wgt_7Hk2": {
            "id": "wgt_7Hk2",
            "layout": "panel",
            "position": "right",
            "lang": "en",
            "color": "#2AABEE",
            "text_color": "#FFFFFF",
            "delay": 0,
            "scroll": 0,
            "include": ["/pricing*"],
            "exclude": ["/pricing/admin*"],
            "texts": texts,
            "consent_version": "v2",
            "buttons": [
                button("telegram", "Telegram", "K7Q2XP", "wgt_7Hk2"),
                button("whatsapp", "WhatsApp", "W4RT9D", "wgt_7Hk2"),
                button("viber", "Viber", "M3TZB8", "wgt_7Hk2", qr=True),
                button("instagram", "Instagram", "N8VB2C", "wgt_7Hk2", qr=True),
            ],
            "beacon": f"{svc}/w/wgt_7Hk2/e",
        },
        # Round buttons on the left, Russian, no consent.
        "wgt_Stck": {
            "id": "wgt_Stck",
            "layout": "buttons",
            "position": "left",
            "lang": "ru",
            "color": "#5B3DF5",
            "text_color": "#FFFFFF",
            "delay": 0,
            "scroll": 0,
            "include": [],
            "exclude": [],
            "texts": {},
            "consent_version": None,
            "buttons": [
                button("telegram", "Telegram", "T5GH7K", "wgt_Stck"),
                button("vk", "VK", "V2KD9P", "wgt_Stck"),
                button("max", "MAX", "X9MA3Q", "wgt_Stck", qr=True),
                button("viber", "Viber", "B6VR4N", "wgt_Stck", qr=True),
            ],
            "beacon": f"{svc}/w/wgt_Stck/e",
        },
        # Shown only after 1 s and 50 % scroll.
        "wgt_Late": {
            "id": "wgt_Late",
            "layout": "panel",
            "position": "right",
            "lang": "auto",
            "color": "#111111",
            "text_color": "#FFFFFF",
            "delay": 1,
            "scroll": 50,
            "include": [],
            "exclude": [],
            "texts": {},
            "consent_version": None,
            "buttons": [button("messenger", "Messenger", "F3MS8R", "wgt_Late")],
            "beacon": f"{svc}/w/wgt_Late/e",
        },
    }


# --- the two servers ------------------------------------------------------------------------------


def fake_qr_svg() -> str:
    """A QR-looking 21x21 SVG (three finder patterns and some noise): enough to see it rendered."""

    def finder(x: int, y: int, fx: int, fy: int) -> bool:
        dx, dy = x - fx, y - fy
        if not (0 <= dx < 7 and 0 <= dy < 7):
            return False
        return dx in (0, 6) or dy in (0, 6) or (1 < dx < 5 and 1 < dy < 5)

    def dark(x: int, y: int) -> bool:
        corners = ((0, 0), (14, 0), (0, 14))
        if any(finder(x, y, fx, fy) for fx, fy in corners):
            return True
        near_finder = (x < 8 and (y < 8 or y > 12)) or (x > 12 and y < 8)
        return not near_finder and (x * 7 + y * 13 + x * y) % 5 < 2

    cells = "".join(f"M{x} {y}h1v1h-1z" for y in range(21) for x in range(21) if dark(x, y))
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 21 21" shape-rendering="crispEdges">'
        f'<rect width="21" height="21" fill="#fff"/><path fill="#000" d="{cells}"/></svg>'
    )


@dataclass
class Hit:
    path: str
    query: dict[str, str]
    body: Any = None


@dataclass
class Svc:
    """The fake acquisition service: serves widget scripts and records what the browser sent."""

    configs: dict[str, dict[str, Any]] = field(default_factory=dict)
    beacons: list[Hit] = field(default_factory=list)
    qr: list[Hit] = field(default_factory=list)
    visits: list[Hit] = field(default_factory=list)

    def clear(self) -> None:
        self.beacons.clear()
        self.qr.clear()
        self.visits.clear()

    def handler(self) -> type[BaseHTTPRequestHandler]:
        svc = self

        class Handler(QuietHandler):
            def do_GET(self) -> None:
                url = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(url.query).items()}
                parts = url.path.strip("/").split("/")
                if parts[0] == "w" and len(parts) == 2 and parts[1].endswith(".js"):
                    config = svc.configs.get(parts[1][:-3])
                    if config is None:
                        return self.reply(404, "text/plain", "unknown widget")
                    return self.reply(200, "text/javascript; charset=utf-8", build_script(config))
                if parts[0] == "w" and len(parts) == 4 and parts[2] == "qr":
                    svc.qr.append(Hit(url.path, query))
                    return self.reply(200, "image/svg+xml", fake_qr_svg())
                if len(parts) == 1 and parts[0]:
                    svc.visits.append(Hit(url.path, query))
                    return self.reply(200, "text/html; charset=utf-8", "<p>short link followed</p>")
                return self.reply(404, "text/plain", "not found")

            def do_POST(self) -> None:
                url = urlsplit(self.path)
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                hit = Hit(url.path, {}, json.loads(body))
                hit.query["content-type"] = self.headers.get("content-type", "")
                hit.query["cookie"] = self.headers.get("cookie", "")
                svc.beacons.append(hit)
                self.reply(204, "text/plain", "")

        return Handler


class QuietHandler(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass

    def reply(
        self, status: int, content_type: str, text: str, headers: dict[str, str] | None = None
    ) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", "no-store")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


HOSTILE_CSS = """
:root { font-size: 40px; }
* { color: red !important; font-family: "Comic Sans MS", serif !important;
    letter-spacing: 3px !important; line-height: 3 !important; box-sizing: content-box !important; }
div { display: none !important; position: static !important; transform: rotate(8deg) !important;
      opacity: .2 !important; width: 1px !important; height: 1px !important;
      overflow: hidden !important; filter: blur(4px) !important; }
[data-acquisition-widget] { visibility: hidden !important; z-index: -1 !important;
      pointer-events: none !important; }
a, button { all: unset !important; background: yellow !important; }
svg, img, input, label, span, h2 { display: none !important; }
.l, .p, .b { border-radius: 0 !important; }
section { max-width: 640px; margin: 40px auto; padding: 0 24px; }
h1 { font-size: 28px; margin: 0 0 12px; } p { font-size: 16px; line-height: 1.5 !important; }
.tall { height: 3000px; }
"""


def site_handler(svc_origin: str) -> type[BaseHTTPRequestHandler]:
    csp = (
        f"default-src 'none'; script-src {svc_origin}; img-src {svc_origin}; "
        f"connect-src {svc_origin}; style-src 'self'"
    )

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/hostile.css":
                return self.reply(200, "text/css", HOSTILE_CSS)
            query = parse_qs(url.query)
            policy = csp + (" " + css_hash() if "style_hash" in query else "")
            widget = query.get("widget", ["wgt_7Hk2"])[0]
            script = f'<script async src="{svc_origin}/w/{widget}.js"></script>'
            copies = 2 if "twice" in query else 1
            tall = '<p class="tall">…</p>' if "tall" in query else ""
            page = (
                '<!doctype html><html lang="en"><head><meta charset="utf-8">'
                '<meta name="viewport" content="width=device-width, initial-scale=1">'
                '<title>Shop</title><link rel="stylesheet" href="/hostile.css">'
                + script
                * copies
                + "</head><body><section><h1>Shop: pricing</h1>"
                "<p>A customer page with a strict CSP and a hostile stylesheet. "
                '<a href="#plans">See plans</a></p>'
                '<p class="p" id="leak-p">Same class names as the widget.</p>'
                '<a class="b l" id="leak-a" href="#x">page link</a>'
                f'<div id="page-div">page div</div>{tall}</section></body></html>'
            )
            self.reply(200, "text/html; charset=utf-8", page, {"Content-Security-Policy": policy})

    return Handler


def serve(handler: type[BaseHTTPRequestHandler], host: str) -> tuple[ThreadingHTTPServer, str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://{host}:{server.server_address[1]}"


# --- page driving (reusable by the browser tests) -------------------------------------------------

RECORDER = """
window.__acqSeen = [];
document.addEventListener('securitypolicyviolation', function (e) {
  window.__acqRecord({kind: 'csp', directive: e.violatedDirective, blocked: e.blockedURI});
}, true);
['show', 'open', 'close', 'click', 'qr'].forEach(function (name) {
  document.addEventListener('acquisition:' + name, function (e) {
    window.__acqRecord({kind: 'event', type: e.type, detail: e.detail});
    if (name === 'click' && window.__acqCancelClicks) e.preventDefault();
  });
});
window.dataLayer = [];
window.dataLayer.push = function (item) {
  window.__acqRecord({kind: 'dataLayer', item: item});
  return Array.prototype.push.call(this, item);
};
"""


@dataclass
class Recorded:
    """What a page reported through the init script and the console (survives navigations)."""

    items: list[dict[str, Any]] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [i for i in self.items if i["kind"] == kind]

    def events(self, type_: str) -> list[dict[str, Any]]:
        return [i["detail"] for i in self.of("event") if i["type"] == type_]


def open_page(
    context: BrowserContext, url: str, wait_for_widget: bool = True
) -> tuple[Page, Recorded]:
    """Open a host page with recorders for CSP violations, widget events, dataLayer and console."""
    recorded = Recorded()
    page = context.new_page()
    page.expose_function("__acqRecord", lambda item: recorded.items.append(item))
    page.add_init_script(RECORDER)
    page.on("console", lambda m: m.type == "error" and recorded.console_errors.append(m.text))
    page.on("pageerror", lambda e: recorded.console_errors.append(f"pageerror: {e}"))
    page.goto(url)
    if wait_for_widget:
        launcher = page.locator(f"{HOST} .l").first
        launcher.wait_for(state="visible")
        launcher.evaluate("e => Promise.all(e.getAnimations().map(a => a.finished))")
    return page, recorded


def deep_focus(page: Page) -> dict[str, Any] | None:
    """The focused element, looking inside shadow roots: its class, name and role-ish facts."""
    return page.evaluate("""() => {
      let a = document.activeElement;
      while (a && a.shadowRoot && a.shadowRoot.activeElement) a = a.shadowRoot.activeElement;
      if (!a || a === document.body) return null;
      return {tag: a.tagName.toLowerCase(), cls: a.className || '',
              label: a.getAttribute('aria-label'), text: (a.textContent || '').trim(),
              inWidget: a.getRootNode() instanceof ShadowRoot};
    }""")


def tab_to(
    page: Page, matches: Callable[[dict[str, Any]], bool], max_tabs: int = 30
) -> dict[str, Any]:
    """Press Tab until the focused element satisfies `matches`; return it."""
    for _ in range(max_tabs):
        page.keyboard.press("Tab")
        focused = deep_focus(page)
        if focused and matches(focused):
            return focused
    raise AssertionError("never reached the element with Tab")


def is_toggle(focused: dict[str, Any]) -> bool:
    return focused["inWidget"] and focused["tag"] == "button" and "l" in focused["cls"].split()


def open_panel_with_keyboard(page: Page) -> None:
    tab_to(page, is_toggle)
    page.keyboard.press("Enter")
    page.locator(f"{HOST} .p.o").wait_for(state="visible")


def settle(page: Page) -> None:
    """Wait for the widget's CSS transitions and animations to finish."""
    page.evaluate(f"""() => Promise.all(document.querySelector('{HOST}').shadowRoot
                    .getAnimations().map(a => a.finished))""")


def shoot(page: Page, name: str) -> None:
    settle(page)
    page.screenshot(path=SHOTS / name)


def panel_links(page: Page):
    return page.locator(f"{HOST} .p .v a.b")


def link_named(page: Page, label: str):
    return panel_links(page).filter(has_text=label)


def wait_until(
    predicate: Callable[[], bool],
    timeout: float = 3.0,
    what: str = "condition",
    page: Page | None = None,
) -> None:
    """Poll `predicate`. Pass the page when it depends on what the page reports: Playwright's sync
    API delivers exposed-function calls only while it is inside one of its own calls."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        if page:
            page.wait_for_timeout(50)
        else:
            time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def query_of(url: str) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}


def assert_clean(recorded: Recorded, page: Page) -> None:
    page.wait_for_timeout(100)  # let late reports arrive
    violations = recorded.of("csp")
    assert not violations, f"CSP violations: {violations}"
    assert not recorded.console_errors, f"console errors: {recorded.console_errors}"


def assert_attributed(query: dict[str, str], site: str, widget: str) -> None:
    assert query.get("utm_source") == "newsletter", query
    assert query.get("utm_campaign") == "spring", query
    assert query.get("w") == widget, query
    assert query.get("page", "").startswith(site), query


# --- scenarios ------------------------------------------------------------------------------------


def check_desktop(browser: Browser, site: str, svc: Svc, svc_origin: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="light")
    url = f"{site}/pricing?{UTM_QUERY}"
    page, recorded = open_page(context, url)

    host = page.locator(HOST)
    assert host.count() == 1 and host.get_attribute("data-acquisition-widget") == "wgt_7Hk2"
    # The hostile page CSS does not hide, move or restyle it.
    toggle = page.locator(f"{HOST} button.l")
    box = toggle.bounding_box()
    assert box and round(box["width"]) == 56 and round(box["height"]) == 56, box
    assert box["x"] > 1280 - 90 and box["y"] > 800 - 90, box
    on_top = page.evaluate(
        "([x, y]) => document.elementFromPoint(x, y).dataset.acquisitionWidget",
        [box["x"] + 28, box["y"] + 28],
    )
    assert on_top == "wgt_7Hk2", "the launcher is covered or not hit-testable"
    assert "Comic" not in toggle.evaluate("e => getComputedStyle(e).fontFamily")
    # The colour came through host.style.setProperty (CSSOM) without a CSP violation.
    assert toggle.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(42, 171, 238)"
    # ... and its own CSS stays inside: page elements with the same class names are untouched.
    leak = page.evaluate("""() => ({
      p: getComputedStyle(document.getElementById('leak-p')).visibility,
      a: getComputedStyle(document.getElementById('leak-a')).width})""")
    assert leak["p"] == "visible" and leak["a"] != "56px", leak

    toggle.hover()
    shoot(page, "desktop-light-hover.png")
    page.mouse.move(10, 10)

    open_panel_with_keyboard(page)
    assert toggle.get_attribute("aria-expanded") == "true"
    assert page.locator(f"{HOST} #p").get_attribute("role") == "dialog"
    focused = deep_focus(page)
    assert focused and focused["tag"] == "input", f"focus should move into the panel: {focused}"
    links = panel_links(page)
    assert links.count() == 4
    for i in range(4):
        assert links.nth(i).is_visible()
        assert links.nth(i).get_attribute("aria-disabled") == "true"
        assert links.nth(i).get_attribute("target") is None
    href = link_named(page, "Telegram").get_attribute("href")
    assert href.startswith(f"{svc_origin}/K7Q2XP?"), href
    assert_attributed(query_of(href), site, "wgt_7Hk2")
    assert "cv" not in query_of(href)

    # Consent not given: a click does not navigate, and points at the checkbox.
    link_named(page, "Telegram").click(force=True)  # force: Playwright honours aria-disabled
    assert page.url == url
    assert deep_focus(page)["tag"] == "input"
    assert not svc.visits
    page.keyboard.press("Space")
    assert links.first.get_attribute("aria-disabled") == "false"
    assert query_of(link_named(page, "Telegram").get_attribute("href")).get("cv") == "v2"
    shoot(page, "desktop-light-panel.png")

    # Viber on desktop: the QR hand-off, its image loaded only now, with the same attribution.
    assert not svc.qr
    viber = link_named(page, "Viber")
    assert viber.get_attribute("aria-haspopup") == "dialog"
    viber.click()
    img = page.locator(f"{HOST} .q img")
    img.wait_for(state="visible")
    wait_until(lambda: img.evaluate("i => i.complete && i.naturalWidth > 0"), what="QR image")
    assert page.url == url
    assert len(svc.qr) == 1 and svc.qr[0].path == "/w/wgt_7Hk2/qr/M3TZB8.svg"
    assert_attributed(svc.qr[0].query, site, "wgt_7Hk2")
    assert svc.qr[0].query.get("cv") == "v2"
    assert deep_focus(page)["cls"] == "qh"
    anyway = page.locator(f"{HOST} .q a.n")
    assert anyway.get_attribute("href").startswith(f"{svc_origin}/M3TZB8?")
    shoot(page, "desktop-light-qr.png")

    # Escape closes and gives focus back to the launcher.
    page.keyboard.press("Escape")
    page.locator(f"{HOST} .p").wait_for(state="hidden")
    assert toggle.get_attribute("aria-expanded") == "false"
    assert is_toggle(deep_focus(page))

    # A pointer press outside the widget closes the panel.
    toggle.click()
    page.locator(f"{HOST} .p.o").wait_for(state="visible")
    page.mouse.click(200, 500)
    page.locator(f"{HOST} .p").wait_for(state="hidden")

    # A cancelled acquisition:click does not navigate and sends no click beacon.
    page.evaluate("window.__acqCancelClicks = true")
    toggle.click()
    link_named(page, "Telegram").click()
    assert page.url == url and not svc.visits
    assert recorded.events("acquisition:click")[-1]["messenger"] == "telegram"
    page.evaluate("window.__acqCancelClicks = false")

    # A real click: same-tab navigation to the short link with everything attached.
    with page.expect_navigation():
        link_named(page, "Telegram").click()
    wait_until(lambda: bool(svc.visits), what="short link visit")
    assert svc.visits[0].path == "/K7Q2XP"
    assert_attributed(svc.visits[0].query, site, "wgt_7Hk2")
    assert svc.visits[0].query.get("cv") == "v2"
    wait_until(lambda: any(b.body["t"] == "click" for b in svc.beacons), what="click beacon")

    kinds = [b.body["t"] for b in svc.beacons]
    assert kinds == ["impression", "qr", "click"], kinds
    impression = svc.beacons[0].body
    assert impression["utm_source"] == "newsletter" and impression["w"] == "wgt_7Hk2", impression
    assert svc.beacons[2].body["m"] == "telegram" and svc.beacons[2].body["cv"] == "v2"
    assert all(b.query["cookie"] == "" for b in svc.beacons)
    assert all(b.query["content-type"].startswith("text/plain") for b in svc.beacons)
    types = [i["type"] for i in recorded.of("event")]
    assert types == [
        "acquisition:show",
        "acquisition:open",
        "acquisition:qr",
        "acquisition:close",
        "acquisition:open",
        "acquisition:close",
        "acquisition:open",
        "acquisition:click",
        "acquisition:click",
    ], types
    pushes = [i["item"] for i in recorded.of("dataLayer")]
    assert pushes == [{"event": "acquisition_open", "widget": "wgt_7Hk2"}] * 3 + [
        {"event": "acquisition_click", "widget": "wgt_7Hk2", "messenger": "telegram"}
    ]
    assert_clean(recorded, page)
    # Positive control: the recorder does see a violation when one happens.
    page.go_back()
    page.evaluate("document.body.setAttribute('style', 'color: blue')")
    wait_until(lambda: bool(recorded.of("csp")), what="the control CSP violation", page=page)
    assert recorded.of("csp")[0]["directive"].startswith("style-src"), recorded.of("csp")
    context.close()


def check_dark(browser: Browser, site: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800}, color_scheme="dark")
    page, recorded = open_page(context, f"{site}/pricing?{UTM_QUERY}")
    open_panel_with_keyboard(page)
    page.keyboard.press("Space")
    background = page.locator(f"{HOST} .p").evaluate("e => getComputedStyle(e).backgroundColor")
    assert background == "rgb(34, 36, 40)", background
    shoot(page, "desktop-dark-panel.png")
    link_named(page, "Instagram").click()
    page.locator(f"{HOST} .q img").wait_for(state="visible")
    shoot(page, "desktop-dark-qr.png")
    assert_clean(recorded, page)
    context.close()


def check_mobile(pw: Playwright, browser: Browser, site: str, svc: Svc, svc_origin: str) -> None:
    context = browser.new_context(**pw.devices["Pixel 7"])
    url = f"{site}/pricing?{UTM_QUERY}"
    page, recorded = open_page(context, url)
    page.locator(f"{HOST} button.l").tap()
    page.locator(f"{HOST} .p.o").wait_for(state="visible")
    page.locator(f"{HOST} .c input").tap()
    viber = link_named(page, "Viber")
    assert viber.get_attribute("aria-haspopup") is None
    shoot(page, "mobile-panel.png")
    svc.clear()
    with page.expect_navigation():
        viber.tap()
    assert not svc.qr, "mobile must not show the QR hand-off"
    wait_until(lambda: bool(svc.visits), what="short link visit")
    assert svc.visits[0].path == "/M3TZB8"
    assert_attributed(svc.visits[0].query, site, "wgt_7Hk2")
    assert_clean(recorded, page)
    context.close()


def check_buttons_layout(pw: Playwright, browser: Browser, site: str) -> None:
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page, recorded = open_page(context, f"{site}/?widget=wgt_Stck&{UTM_QUERY}")
    stack = page.locator(f"{HOST} .st a.l")
    assert stack.count() == 4
    assert stack.first.get_attribute("aria-label") == "Telegram"
    box = stack.first.bounding_box()
    assert box and box["x"] < 90, box
    assert page.locator(f"{HOST} .r").get_attribute("lang") == "ru"
    assert_attributed(query_of(stack.first.get_attribute("href")), site, "wgt_Stck")
    shoot(page, "desktop-buttons.png")
    max_button = page.locator(f"{HOST} .st a.l[aria-label=MAX]")
    max_button.focus()
    page.keyboard.press("Enter")
    page.locator(f"{HOST} .q img").wait_for(state="visible")
    assert page.locator(f"{HOST} .q .n").inner_text() == "Открыть на этом устройстве"
    shoot(page, "desktop-buttons-qr.png")
    page.keyboard.press("Escape")
    assert deep_focus(page)["label"] == "MAX", "focus returns to the button that opened the QR"
    assert_clean(recorded, page)
    context.close()

    context = browser.new_context(**pw.devices["Pixel 7"])
    page, recorded = open_page(context, f"{site}/?widget=wgt_Stck&{UTM_QUERY}")
    assert page.locator(f"{HOST} .st a.l[aria-label=MAX]").get_attribute("aria-haspopup") is None
    shoot(page, "mobile-buttons.png")
    assert_clean(recorded, page)
    context.close()


def check_rules(browser: Browser, site: str) -> None:
    context = browser.new_context()
    for path, why in (("/", "not included"), ("/pricing/admin/x", "excluded")):
        page, recorded = open_page(context, f"{site}{path}?{UTM_QUERY}", wait_for_widget=False)
        page.wait_for_timeout(400)
        assert page.locator(HOST).count() == 0, f"{path}: shown although {why}"
        page.close()
    page, recorded = open_page(context, f"{site}/pricing?twice=1&{UTM_QUERY}")
    page.wait_for_timeout(300)
    assert page.locator(HOST).count() == 1, "included twice must render once"
    assert len(recorded.events("acquisition:show")) == 1
    page.close()

    context.close()

    # lang "auto" follows the browser; shown only after the delay and the scroll depth.
    context = browser.new_context(locale="ru-RU")
    page, recorded = open_page(context, f"{site}/?widget=wgt_Late&tall=1", wait_for_widget=False)
    page.wait_for_timeout(1300)
    assert page.locator(f"{HOST} .l").count() == 0, "shown before 50 % scroll"
    page.mouse.wheel(0, 1000)
    page.wait_for_timeout(300)
    assert page.locator(f"{HOST} .l").count() == 0, "shown before 50 % scroll"
    page.mouse.wheel(0, 5000)
    page.locator(f"{HOST} .l").wait_for(state="visible")
    assert len(recorded.events("acquisition:show")) == 1
    assert page.locator(f"{HOST} .tip").text_content() == "Напишите нам"
    assert_clean(recorded, page)
    context.close()


NO_ADOPTED_SHEETS = """
Object.defineProperty(ShadowRoot.prototype, 'adoptedStyleSheets',
  {get: function () { return undefined; }, set: function () {}, configurable: true});
"""


def check_style_fallback(browser: Browser, site: str) -> None:
    """Without constructable stylesheets the widget falls back to a <style> element: blocked by
    a strict style-src, allowed when the site lists the CSS hash."""
    context = browser.new_context()
    context.add_init_script(NO_ADOPTED_SHEETS)
    page, recorded = open_page(context, f"{site}/pricing?{UTM_QUERY}", wait_for_widget=False)
    wait_until(
        lambda: bool(recorded.of("csp")), what="the <style> fallback to be blocked", page=page
    )
    assert recorded.of("csp")[0]["directive"] == "style-src-elem", recorded.of("csp")
    page.wait_for_timeout(200)
    assert page.locator(HOST).count() == 0, "an unstyled widget must remove itself"
    assert not recorded.events("acquisition:show")
    page.close()
    page, recorded = open_page(context, f"{site}/pricing?style_hash=1&{UTM_QUERY}")
    box = page.locator(f"{HOST} button.l").bounding_box()
    assert box and round(box["width"]) == 56, box
    assert page.locator(f"{HOST} style").count() == 1
    assert_clean(recorded, page)
    context.close()


def report_size(svc_origin: str) -> None:
    """Gzip sizes as served: the script alone, and with the sample config substituted."""
    template = build_script({})
    served = build_script(sample_configs(svc_origin)["wgt_7Hk2"])
    js = rjsmin.jsmin((WIDGETS / "widget.js").read_text("utf-8"))
    css = minified_css()
    print(f"minified widget.js: {len(js.encode())} B raw, {gzip_size(js)} B gzip -9")
    print(f"minified widget.css: {len(css.encode())} B raw, {gzip_size(css)} B gzip -9")
    print(f"script + css (config {{}}): {gzip_size(template)} B gzip -9")
    print(f"served with the sample config: {len(served.encode())} B raw, {gzip_size(served)} B gz")
    assert gzip_size(template) <= 6 * 1024, "over the 6 KB gzip budget"


def main() -> int:
    SHOTS.mkdir(parents=True, exist_ok=True)
    svc = Svc()
    svc_server, svc_origin = serve(svc.handler(), "127.0.0.1")
    svc.configs = sample_configs(svc_origin)
    site_server, site = serve(site_handler(svc_origin), "localhost")
    failures = 0
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        scenarios: list[tuple[str, Callable[[], None]]] = [
            ("desktop", lambda: check_desktop(browser, site, svc, svc_origin)),
            ("dark", lambda: check_dark(browser, site)),
            ("mobile", lambda: check_mobile(pw, browser, site, svc, svc_origin)),
            ("buttons layout", lambda: check_buttons_layout(pw, browser, site)),
            ("page rules, delay, scroll, twice", lambda: check_rules(browser, site)),
            ("<style> fallback under CSP", lambda: check_style_fallback(browser, site)),
        ]
        for name, scenario in scenarios:
            svc.clear()
            try:
                scenario()
                print(f"ok    {name}")
            except Exception as exc:  # report every scenario, then fail
                failures += 1
                print(f"FAIL  {name}: {type(exc).__name__}: {exc}")
                traceback.print_exc()
        browser.close()
    report_size(svc_origin)
    print(f"screenshots in {SHOTS}")
    svc_server.shutdown()
    site_server.shutdown()
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
