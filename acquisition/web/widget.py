"""The site widget's public routes (/w/{id}.js and its desktop QR images; the beacon is in
web/beacons.py) and its API (/api/v1/widgets).

The script is widgets/widget.js minified with rjsmin, with widgets/widget.css (minified with
rcssmin) and the widget's config put in as JSON; see widgets/README.md §8 for the contract.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cache
from typing import Any
from urllib.parse import urlencode

import rcssmin
import rjsmin
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acquisition import bundled, qr, widget_events, widgets
from acquisition.db import Database
from acquisition.errors import NotFound
from acquisition.models import Widget
from acquisition.web import problems
from acquisition.web.api import read, write
from acquisition.web.redirect import services

SOURCE = bundled("widgets", "widget.js")
SCRIPT_TYPE = "text/javascript; charset=utf-8"
# The snippet's URL never changes, so the script cannot be cached as immutable: browsers keep it
# five minutes, then revalidate in the background (ETag) while still using their copy for a day.
SCRIPT_CACHE = "public, max-age=300, stale-while-revalidate=86400"
IMMUTABLE = "public, max-age=31536000, immutable"
# Attribution the widget appends to a QR image URL, carried into the code (each cropped).
QR_PARAMS = (
    "cv",
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_content",
    "utm_term",
    "gclid",
    "yclid",
    "fbclid",
    "ttclid",
    "msclkid",
    "wbraid",
    "gbraid",
    "page",
    "ref_url",
)
QR_VALUE = 300
# A longer URL makes a denser code than a phone reads off a 176 px image: whatever does not fit
# is left out, least important last (page and referrer).
QR_MAX_URL = 512
QR_OPTIONS = qr.QrOptions(ec="L")  # a screen gets no dirt or creases: keep the code coarse


# --- the script ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    head: str  # the minified script up to the config, with the CSS already in
    tail: str
    version: str  # changes whenever widget.js or widget.css does
    style_hash: str  # CSP source for the <style> fallback of old browsers


@cache
def template() -> Template:
    """Minify once per process. Both tokens must occur exactly once; the config is spliced in
    between the two halves, never by `replace`, so no text in it can be taken for a token."""
    js = rjsmin.jsmin((SOURCE / "widget.js").read_text("utf-8"))
    css = rcssmin.cssmin((SOURCE / "widget.css").read_text("utf-8"))
    for token in ("__ACQUISITION_CONFIG__", "__ACQUISITION_CSS__"):
        if js.count(token) != 1:
            raise RuntimeError(f"widgets/widget.js must contain {token} exactly once")
    head, tail = js.replace("__ACQUISITION_CSS__", script_json(css)).split("__ACQUISITION_CONFIG__")
    digest = hashlib.sha256(css.encode("utf-8")).digest()
    return Template(
        head=head,
        tail=tail,
        version=hashlib.sha256((head + "\0" + tail).encode("utf-8")).hexdigest()[:12],
        style_hash="'sha256-" + base64.b64encode(digest).decode("ascii") + "'",
    )


def script_json(value: Any) -> str:
    """JSON that stays a JavaScript expression wherever the script ends up: `<`, `>` and `&`
    escaped (no `</script>` or `<!--` even if inlined in HTML), U+2028/2029 escaped (line
    terminators inside string literals before ES2019)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    for char, escape in (
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("&", "\\u0026"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text


@dataclass
class Served:
    """One widget as its public routes need it, built from one database read."""

    pk: int
    public_id: str
    version: int
    origins: frozenset[str]
    codes: frozenset[str]
    config: dict[str, Any]
    _body: bytes | None = field(default=None, repr=False)
    _gzip: bytes | None = field(default=None, repr=False)

    @classmethod
    def of(cls, widget: Widget, base_url: str) -> Served:
        config = widgets.script_config(widget, base_url)
        return cls(
            pk=widget.id,
            public_id=widget.public_id,
            version=widget.version,
            origins=frozenset(widget.origins),
            codes=frozenset(b["href"].rsplit("/", 1)[1] for b in config["buttons"]),
            config=config,
        )

    @property
    def body(self) -> bytes:
        if self._body is None:
            t = template()
            self._body = (t.head + script_json(self.config) + t.tail).encode("utf-8")
        return self._body

    @property
    def gzipped(self) -> bytes:
        if self._gzip is None:
            self._gzip = gzip.compress(self.body, compresslevel=9, mtime=0)
        return self._gzip

    @property
    def tag(self) -> str:
        """A hash of the script as served: it changes with the script, the CSS and the config
        (and with anything else the config shows, such as a channel's name)."""
        return hashlib.sha256(self.body).hexdigest()[:20]


class WidgetCache:
    """public id -> Served for `ttl` seconds (the same as links): every page view of every site
    embedding a widget asks for its script. This worker's own edits call `forget`."""

    def __init__(self, db: Database, base_url: str, ttl: float) -> None:
        self.db, self.base_url, self.ttl = db, base_url, ttl
        self._entries: dict[str, tuple[float, Served | None]] = {}

    async def get(self, public_id: str) -> Served | None:
        if not widgets.PUBLIC_ID.fullmatch(public_id):
            return None
        now = time.monotonic()
        entry = self._entries.get(public_id)
        if entry is not None and entry[0] > now:
            return entry[1]
        served = await run_in_threadpool(self._load, public_id)
        if len(self._entries) > 10_000:
            self._entries.clear()
        self._entries[public_id] = (now + self.ttl, served)
        return served

    def _load(self, public_id: str) -> Served | None:
        with self.db.reader() as session:
            try:
                return Served.of(widgets.get(session, public_id), self.base_url)
            except NotFound:
                return None

    def forget(self, public_id: str) -> None:
        self._entries.pop(public_id, None)


def cached(request: Request) -> WidgetCache:
    state = request.app.state
    cache_ = getattr(state, "widget_cache", None)
    if cache_ is None:
        svc = services(request)
        settings = svc.settings
        cache_ = state.widget_cache = WidgetCache(
            svc.db, settings.base_url, settings.link_cache_seconds
        )
    return cache_


async def script(request: Request) -> Response:
    served = await cached(request).get(request.path_params["widget_id"])
    if served is None:
        return problems.problem(
            404, "Not found", "no such widget", "not-found", headers={"cache-control": "max-age=60"}
        )
    tag = served.tag
    etag = f'W/"{tag}"'
    headers = {
        "etag": etag,
        "cache-control": IMMUTABLE if request.query_params.get("v") == tag else SCRIPT_CACHE,
        "vary": "Accept-Encoding",
        # Sites that isolate themselves (COEP require-corp) may still load it.
        "cross-origin-resource-policy": "cross-origin",
    }
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    body = served.body
    if _accepts_gzip(request.headers.get("accept-encoding", "")):
        body = served.gzipped
        headers["content-encoding"] = "gzip"
    return Response(body, headers=headers, media_type=SCRIPT_TYPE)


def _matches(header: str | None, tag: str) -> bool:
    if not header:
        return False
    candidates = [c.strip().removeprefix("W/").strip('"') for c in header.split(",")]
    return "*" in candidates or tag in candidates


def _accepts_gzip(header: str) -> bool:
    for item in header.lower().split(","):
        name, _, params = item.strip().partition(";")
        if name.strip() in ("gzip", "*"):
            q = params.strip().removeprefix("q=")
            try:
                return not params or float(q) > 0
            except ValueError:
                return False
    return False


# --- the desktop QR hand-off --------------------------------------------------------------------


async def qr_image(request: Request) -> Response:
    """The QR of a button's short link carrying the page's attribution, so the phone's scan is
    counted for the same page visit. Only codes of this widget's buttons."""
    widget_id, code = request.path_params["widget_id"], request.path_params["code"].upper()
    served = await cached(request).get(widget_id)
    if served is None or code not in served.codes:
        raise NotFound("no such code on this widget", field="code")
    data = qr_url(services(request).settings.base_url, code, widget_id, request.query_params)
    body = await run_in_threadpool(qr.render, data, "svg", QR_OPTIONS)
    return Response(
        body,
        media_type=qr.MEDIA_TYPES["svg"],
        headers={
            # Unique per page visit and it names the page: browsers may keep it, proxies not.
            "cache-control": "private, max-age=3600",
            "cross-origin-resource-policy": "cross-origin",
        },
    )


def qr_url(base_url: str, code: str, widget_id: str, query: Any) -> str:
    """The short URL with the allow-listed attribution (anything else dropped), the widget's id
    from the path, each value cropped; what would push it past QR_MAX_URL is left out."""
    url = f"{base_url}/{code}?" + urlencode({"w": widget_id})
    for name in QR_PARAMS:
        value = query.get(name)
        if not value:
            continue
        value = "".join(ch for ch in value[:QR_VALUE] if ch.isprintable()).strip()
        piece = "&" + urlencode({name: value})
        if value and len(url) + len(piece) <= QR_MAX_URL:
            url += piece
    return url


# --- /api/v1/widgets ----------------------------------------------------------------------------


def _public(widget: Widget, base_url: str) -> dict[str, Any]:
    served = Served.of(widget, base_url)
    t = template()
    return {
        **widgets.public(widget, base_url),
        # For tools that rewrite the embed on every change: a URL that may be cached forever.
        "versioned_script_url": f"{widgets.script_url(base_url, widget.public_id)}?v={served.tag}",
        # What the embedding site's Content-Security-Policy must allow (widgets/README.md §2);
        # the style hash only matters to browsers without constructable stylesheets.
        "csp": {
            "script-src": base_url,
            "img-src": base_url,
            "connect-src": base_url,
            "legacy_style_hash": t.style_hash,
        },
    }


async def create_widget(request: Request) -> Response:
    base = services(request).settings.base_url

    def work(session: Session, body: Any) -> dict[str, Any]:
        return _public(widgets.create(session, widgets.parse(body)), base)

    result = await write(request, work)
    return JSONResponse(
        result, status_code=201, headers={"location": f"/api/v1/widgets/{result['id']}"}
    )


async def list_widgets(request: Request) -> Response:
    base = services(request).settings.base_url
    result = await read(request, lambda s: [_public(w, base) for w in widgets.list_all(s)])
    return JSONResponse({"widgets": result})


async def get_widget(request: Request) -> Response:
    public_id = request.path_params["id"]
    base = services(request).settings.base_url
    return JSONResponse(await read(request, lambda s: _public(widgets.get(s, public_id), base)))


async def update_widget(request: Request) -> Response:
    public_id = request.path_params["id"]
    base = services(request).settings.base_url

    def work(session: Session, body: Any) -> dict[str, Any]:
        return _public(widgets.update(session, widgets.get(session, public_id), body), base)

    result = await write(request, work)
    cached(request).forget(public_id)
    return JSONResponse(result)


async def widget_stats(request: Request) -> Response:
    public_id = request.path_params["id"]

    def work(session: Session) -> dict[str, Any]:
        query = widget_events.parse_query(request.query_params)
        widget = widgets.get(session, public_id)
        return {
            "group_by": query.group_by,
            "rows": widget_events.counts(session, widget.id, query),
        }

    return JSONResponse(await read(request, work))


# Before the short-link routes in web/app.py: /w/{id}.js has one segment after /w/.
routes = [
    Route("/w/{widget_id}.js", script, methods=["GET", "HEAD"]),
    Route("/w/{widget_id}/qr/{code}.svg", qr_image, methods=["GET", "HEAD"]),
]
# Mounted under /api/v1 by web/app.py.
api_routes = [
    Route("/widgets", list_widgets, methods=["GET"]),
    Route("/widgets", create_widget, methods=["POST"]),
    Route("/widgets/{id}", get_widget, methods=["GET"]),
    Route("/widgets/{id}", update_widget, methods=["PATCH"]),
    Route("/widgets/{id}/stats", widget_stats, methods=["GET"]),
]
