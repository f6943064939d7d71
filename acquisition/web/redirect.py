"""GET/HEAD /{code}: the hot path. Look the link up (cached), classify the visitor, store the
click durably, then 302 to the deep link built from the channel's template."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from datetime import datetime
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, urlencode

from sqlalchemy.exc import OperationalError, TimeoutError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from acquisition import codes, links, logs, messengers, metrics, qr, refs, visitors
from acquisition.config import Network
from acquisition.db import Database
from acquisition.errors import Unavailable
from acquisition.models import utcnow
from acquisition.web import problems
from acquisition.web.middleware import REDIRECT_HEADERS
from acquisition.web.ratelimit import Blocklist

if TYPE_CHECKING:
    from acquisition.web.app import Services

log = logging.getLogger(__name__)
NO_STORE = "no-store"
UNRECORDED = (b"x-click-recorded", b"0")
# Query parameters a visit may carry (the widget passes the host page's along); all cropped.
UTM_PARAMS = {
    "utm_source": "source",
    "utm_medium": "medium",
    "utm_campaign": "campaign",
    "utm_content": "content",
    "utm_term": "term",
}
CLICK_IDS = ("gclid", "yclid", "fbclid", "ttclid", "msclkid", "wbraid", "gbraid")


class LinkCache:
    """code -> Target for a few seconds: links change rarely and the lookup is on every click.

    Another worker's edit shows up within about `ttl` seconds; this worker's own edits call
    `forget`. An expired entry is still served while one background load refreshes it: under
    load, an expiry must not send every request in flight to the database at once.
    """

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[str, tuple[float, links.Target | None]] = {}
        self._loading: dict[str, asyncio.Future[links.Target | None]] = {}
        self._refreshing: set[asyncio.Future[links.Target | None]] = set()

    async def get(self, code: str) -> links.Target | None:
        key = code.upper()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > time.monotonic():
            return entry[1]
        return await self._load_once(key, code)

    def peek(self, code: str) -> links.Target | None:
        """The cached link, without waiting (the front's lookup); None sends it the long way."""
        key = code.upper()
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] <= time.monotonic():
            if self.ttl <= 0:
                return None
            if key not in self._loading:
                refresh = asyncio.ensure_future(self._load_once(key, code))
                self._refreshing.add(refresh)
                refresh.add_done_callback(self._refreshed)
        return entry[1]

    def _refreshed(self, task: asyncio.Future[links.Target | None]) -> None:
        self._refreshing.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("link refresh failed: %s", task.exception().__class__.__name__)

    async def _load_once(self, key: str, code: str) -> links.Target | None:
        loading = self._loading.get(key)
        if loading is not None:  # somebody is loading it already: wait for that answer
            return await asyncio.shield(loading)
        future = self._loading[key] = asyncio.get_running_loop().create_future()
        try:
            target = await run_in_threadpool(self._load, code)
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: nobody else may be waiting
            raise
        finally:
            del self._loading[key]
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key] = (time.monotonic() + self.ttl, target)
        future.set_result(target)
        return target

    def _load(self, code: str) -> links.Target | None:
        try:
            with self.db.reader() as session:
                return links.find_target(session, code)
        except OperationalError:
            # The database is down: keep redirecting links this worker knows (clicks are
            # spooled meanwhile); only links it never saw answer 503.
            stale = self._entries.get(code.upper())
            if stale is None:
                raise
            return stale[1]

    def forget(self, code: str) -> None:
        self._entries.pop(code.upper(), None)


def services(request: Request) -> Services:
    return request.app.state.services


class ShortLinks:
    """Pure ASGI, in front of the whole app (`app.App`): a person's click on a link this
    worker knows is answered here.

    It adds what the middleware would (request id, security headers, metrics, access line) but
    skips their wrappers, Starlette's own error wrapper and routing, which together cost more
    than the click's own work. Pages, unknown or uncached links, other methods, and an address
    over its miss budget (the rate limiter refuses it) go down the normal stack, where `follow`
    answers.
    """

    def __init__(self, app: ASGIApp, trusted: tuple[Network, ...], blocklist: Blocklist) -> None:
        self.app = app
        self.trusted = trusted
        self.blocklist = blocklist  # the rate limiter's: addresses it answers 429 for now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET" or self.blocklist.holds(scope):
            await self.app(scope, receive, send)
            return
        code = _match(scope)
        svc: Services | None = getattr(scope["app"].state, "services", None)
        target = None if code is None or svc is None else svc.links.peek(code)
        if target is None or svc is None:
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        request_id = logs.request_id(scope)
        token = logs.REQUEST_ID.set(request_id)
        try:
            try:
                headers = await _person(scope, svc, target)
            except Exception as error:
                # No error middleware is around the front: answer as it would (logged, a 500).
                await (await problems.unexpected(Request(scope), error))(scope, receive, send)
                return
            if headers is None:
                await self.app(scope, receive, send)  # a page, not a plain 302
                return
            unrecorded = headers[-1] is UNRECORDED
            headers += REDIRECT_HEADERS  # what the middleware adds to a redirect
            headers.append((b"x-request-id", request_id.encode()))
            await send({"type": "http.response.start", "status": 302, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            took = time.perf_counter() - start
            metrics.redirected(scope, unrecorded, took)
            logs.access(scope, 302, 0, took, self.trusted)
        finally:
            logs.REQUEST_ID.reset(token)


async def _person(
    scope: Scope, svc: Services, target: links.Target
) -> list[tuple[bytes, bytes]] | None:
    """The front's click: the 302's headers, or None when the visit gets a page instead."""
    now = utcnow()
    visit = Visit(scope)
    visitor = visitors.classify(visit.user_agent, "GET")
    direct = _direct(target, visit, visitor, now)
    if direct is None:
        return None
    return await _click(scope, svc, target, visit, visitor, direct, now)


def _match(scope: Scope) -> str | None:
    """The code, if the path is a short link's (with the router's own patterns and labels)."""
    path = scope["path"]
    for route in routes:
        match = route.path_regex.match(path)
        if match is not None:
            scope["route"] = route
            scope["path_params"] = params = match.groupdict()
            return params["code"]
    return None


def _direct(
    target: links.Target, visit: Visit, visitor: visitors.Visitor, now: datetime
) -> tuple[int, str, str, str] | None:
    """The channel a plain 302 goes to, or None when the visit gets a page instead."""
    if visitor.kind != "human" or target.state(now) != "active":
        return None
    channel = _chosen(target, visit.query.get("c"))
    if channel is None:
        return None  # several channels and no choice yet: the chooser
    phone_only = messengers.get(channel[1]).PHONE_ONLY
    if phone_only and visitor.device == "desktop" and "open" not in visit.query:
        return None  # a phone-only messenger on a desktop: the scan page
    return channel


async def _click(
    scope: Scope,
    svc: Services,
    target: links.Target,
    visit: Visit,
    visitor: visitors.Visitor,
    channel: tuple[int, str, str, str],
    now: datetime,
) -> list[tuple[bytes, bytes]]:
    """Record a person's click; the 302's headers (UNRECORDED last if it could not be)."""
    channel_id, messenger, handle, _name = channel
    try:
        ref = await svc.clicks.record(_row(visit, svc, target, channel_id, visitor, now))
    except Unavailable:
        # The spool's disk failed: the person still reaches the chat, but nothing was recorded,
        # so no ref travels (an unrecorded ref could never be attributed anyway): the link
        # opens the chat without one, and the start counts as "direct".
        ref = None
    location = messengers.destination(messenger, handle, target.text)(ref)
    headers = [
        (b"location", location.encode("latin-1")),
        (b"cache-control", b"no-store"),
        (b"content-length", b"0"),
    ]
    if ref is None:
        headers.append(UNRECORDED)
    return headers


async def follow(scope: Scope, receive: Receive, send: Send) -> None:
    """Every visit of a short link the front did not answer: record it, send the visitor to
    the messenger chat or show the page that fits (404, expired, preview, chooser, scan)."""
    svc: Services = scope["app"].state.services
    code: str = scope["path_params"]["code"]
    try:
        target = await svc.links.get(code)
    except (OperationalError, TimeoutError) as error:
        await problems.store_unavailable_response(error)(scope, receive, send)
        return
    if target is None:
        await page(Request(scope, receive), "notfound.html", 404, code=code)(scope, receive, send)
        return
    now = utcnow()
    visit = Visit(scope)
    visitor = visitors.classify(visit.user_agent, scope["method"])
    direct = _direct(target, visit, visitor, now)
    if direct is not None:
        headers = await _click(scope, svc, target, visit, visitor, direct, now)
        await send({"type": "http.response.start", "status": 302, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    response = await _page_for(scope, receive, svc, target, visit, visitor, now)
    await response(scope, receive, send)


async def _page_for(
    scope: Scope,
    receive: Receive,
    svc: Services,
    target: links.Target,
    visit: Visit,
    visitor: visitors.Visitor,
    now: datetime,
) -> Response:
    request = Request(scope, receive)
    state = target.state(now)
    if state != "active":
        status = 404 if state == "not-yet" else 410
        return page(request, "gone.html", status, state=state, target=target)
    if visitor.kind != "human":
        await svc.clicks.record(_row(visit, svc, target, None, visitor, now))
        headers = {"cache-control": NO_STORE}
        return page(request, "preview.html", 200, target=target, headers=headers)
    channel = _chosen(target, visit.query.get("c"))
    if channel is None:
        return page(
            request,
            "chooser.html",
            200,
            target=target,
            query=urlencode(_carried(request, "c")),
            adapters=messengers,
            headers={"cache-control": NO_STORE},
        )
    # This messenger opens only on a phone: show a code to scan instead. The scan is the
    # click (counted then, with the same source details); this desktop view is not.
    return await handoff(request, svc, target, channel, messengers.get(channel[1]).LABEL)


class Visit:
    """The few request facts a click needs, read straight from the ASGI scope in one pass."""

    __slots__ = ("forwarded_for", "peer", "query", "referer", "user_agent", "via")

    def __init__(self, scope: Scope) -> None:
        user_agent = forwarded_for = referer = None
        for name, value in scope["headers"]:
            # The first of repeated headers counts, as with Starlette's Headers.get.
            if name == b"user-agent":
                user_agent = user_agent or value
            elif name == b"x-forwarded-for":
                forwarded_for = forwarded_for or value
            elif name == b"referer":
                referer = referer or value
        self.user_agent = user_agent.decode("latin-1")[:400] if user_agent else ""
        self.forwarded_for = forwarded_for.decode("latin-1") if forwarded_for else None
        self.referer = referer.decode("latin-1") if referer else ""
        # Most clicks carry no query string: don't parse one then. Last value wins, as before.
        raw = scope["query_string"]
        self.query: dict[str, str] = (
            dict(parse_qsl(raw.decode("latin-1"), keep_blank_values=True)) if raw else {}
        )
        client = scope.get("client")
        self.peer: str | None = client[0] if client else None
        # A scan of a printed code comes by /Q/ (the QR URL), a tap by the short URL.
        self.via = "qr" if scope["path"][:3] in ("/q/", "/Q/") else "link"


async def handoff(
    request: Request,
    svc: Services,
    target: links.Target,
    channel: tuple[int, str, str, str],
    label: str,
) -> Response:
    params = _carried(request, "c", "open")
    if len(target.channels) > 1:
        params.insert(0, ("c", str(channel[0])))
    query = urlencode(params)
    scan_url = links.qr_url(svc.settings.base_url, target.code) + (f"?{query}" if query else "")
    svg = await run_in_threadpool(qr.render_cached, scan_url, "svg", qr.QrOptions(size_mm=60))
    image = "data:image/svg+xml;base64," + base64.b64encode(svg).decode()
    here = f"/{target.code}?" + urlencode([*params, ("open", "1")])
    return page(
        request,
        "handoff.html",
        200,
        target=target,
        label=label,
        image=image,
        here=here,
        headers={"cache-control": NO_STORE},
    )


def _chosen(target: links.Target, choice: str | None) -> tuple[int, str, str, str] | None:
    if len(target.channels) == 1:
        return target.channels[0]
    if choice is not None:
        return next((ch for ch in target.channels if str(ch[0]) == choice), None)
    return None


def _carried(request: Request, *drop: str) -> list[tuple[str, str]]:
    """The visit's query parameters (bounded) that a chooser or scan page passes on."""
    return [(k, v[:300]) for k, v in request.query_params.multi_items() if k not in drop][:20]


def _row(
    visit: Visit,
    svc: Services,
    target: links.Target,
    channel_id: int | None,
    visitor: visitors.Visitor,
    now: Any,
) -> dict[str, Any]:
    """The click row. Every visit gets a ref, bots too: it is what makes a spool replay
    idempotent (only a person's ever travels to a messenger)."""
    query = visit.query
    utm = dict(target.utm)
    click_id = None
    if query:  # most clicks carry none: their row is the link's own details and the visit's
        for param, column in UTM_PARAMS.items():
            value = query.get(param)
            if value:
                utm[column] = _printable(value, 100)
        click_id = next((f"{name}:{query[name]}" for name in CLICK_IDS if query.get(name)), None)
    referrer = query.get("ref_url") or visit.referer
    page = query.get("page")
    ip = visitors.client_ip(visit.peer, visit.forwarded_for, svc.settings.trusted_proxies)
    return {
        "link_id": target.id,
        "channel_id": channel_id,
        "ref": refs.make(),
        "at": now,
        "visitor": visitor.kind,
        "device": visitor.device,
        # A scan stays a scan when the code was a widget's (its hand-off on a desktop).
        "via": "widget" if visit.via == "link" and query.get("w") else visit.via,
        "link_version": target.version,
        "ip": visitors.anonymize(ip),
        "user_agent": _agent(visit.user_agent),
        "referrer": _printable(referrer, 400) if referrer else None,
        "page": _printable(page, 400) if page else None,
        **utm,
        "click_id": _printable(click_id, 200) if click_id else None,
        "widget": _printable(query["w"], 32) if "w" in query else None,
        "consent_version": _printable(query["cv"], 32) if "cv" in query else None,
    }


@lru_cache(maxsize=4096)
def _agent(value: str) -> str | None:
    return _printable(value, 400)


def _printable(value: str, limit: int) -> str | None:
    value = value[:limit]
    if not value.isprintable():
        value = "".join(ch for ch in value if ch.isprintable())
    return value.strip() or None


def page(
    request: Request,
    template: str,
    status: int,
    headers: dict[str, str] | None = None,
    **context: Any,
) -> Response:
    svc = services(request)
    return svc.templates.TemplateResponse(
        request,
        template,
        {"base_url": svc.settings.base_url, **context},
        status_code=status,
        headers=headers,
    )


async def health(request: Request) -> Response:
    return PlainTextResponse("ok")


class CodeConvertor(Convertor[str]):
    """A path segment that can be a code: no dot (images), no route word (admin, w, …).

    It lets the short-link routes sit first in the table, so a click is matched at the first
    try instead of after every other route has been tried.
    """

    regex = "(?!(?i:" + "|".join(sorted(word for word in codes.RESERVED if "." not in word)) + ")$)"
    regex += "[A-Za-z0-9_-]{1,32}"

    def convert(self, value: str) -> str:
        return value

    def to_string(self, value: str) -> str:
        return value


register_url_convertor("code", CodeConvertor())


class _Endpoint:
    """`follow` as a route endpoint: a class instance is called as the ASGI app it is."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await follow(scope, receive, send)


# The hot path: matched by ShortLinks in front of the router (see CodeConvertor); in the router
# too, where they answer other methods with 405.
routes = [
    Route("/{code:code}", _Endpoint(), methods=["GET", "HEAD"]),
    Route("/q/{code}", _Endpoint(), methods=["GET", "HEAD"]),
    Route("/Q/{code}", _Endpoint(), methods=["GET", "HEAD"]),
]
# Anything else of one segment (a mistyped code with a dot, say) still gets the friendly 404.
fallback = [Route("/{code}", _Endpoint(), methods=["GET", "HEAD"])]
