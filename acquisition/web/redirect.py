"""GET/HEAD /{code}: the hot path. Look the link up (cached), classify the visitor, store the
click durably, then 302 to the deep link built from the channel's template."""

from __future__ import annotations

import base64
import time
from functools import lru_cache
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from sqlalchemy.exc import OperationalError
from starlette.concurrency import run_in_threadpool
from starlette.convertors import Convertor, register_url_convertor
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from acquisition import codes, links, messengers, qr, refs, visitors
from acquisition.db import Database
from acquisition.errors import Unavailable
from acquisition.models import utcnow

if TYPE_CHECKING:
    from acquisition.web.app import Services

NO_STORE = "no-store"
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

    Another worker's edit shows up within `ttl` seconds; this worker's own edits call `forget`.
    """

    def __init__(self, db: Database, ttl: float) -> None:
        self.db = db
        self.ttl = ttl
        self._entries: dict[str, tuple[float, links.Target | None]] = {}

    async def get(self, code: str) -> links.Target | None:
        key = code.upper()
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is not None and entry[0] > now:
            return entry[1]
        target = await run_in_threadpool(self._load, code)
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key] = (now + self.ttl, target)
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
    return request.app.state.services  # type: ignore[no-any-return]


async def follow(request: Request) -> Response:
    """Record the click, then send the visitor to the messenger chat."""
    svc = services(request)
    code: str = request.path_params["code"]
    target = await svc.links.get(code)
    if target is None:
        return page(request, "notfound.html", 404, code=code)
    now = utcnow()
    state = target.state(now)
    if state != "active":
        status = 404 if state == "not-yet" else 410
        return page(request, "gone.html", status, state=state, target=target)
    headers = request.headers
    visitor = visitors.classify(headers.get("user-agent", "")[:400], request.method)
    via = "qr" if request.scope["path"][:3] in ("/q/", "/Q/") else "link"
    if visitor.kind != "human":
        await svc.clicks.record(_row(request, svc, target, None, visitor, via, now))
        return page(
            request, "preview.html", 200, target=target, headers={"cache-control": NO_STORE}
        )
    channel = _chosen(target, request.query_params.get("c"))
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
    channel_id, messenger, handle, _name = channel
    adapter = messengers.get(messenger)
    if adapter.PHONE_ONLY and visitor.device == "desktop" and "open" not in request.query_params:
        # This messenger opens only on a phone: show a code to scan instead. The scan is the
        # click (counted then, with the same source details); this desktop view is not.
        return await handoff(request, svc, target, channel, adapter.LABEL)
    try:
        ref = await svc.clicks.record(_row(request, svc, target, channel_id, visitor, via, now))
    except Unavailable:
        # The spool's disk failed: the person still reaches the chat, but nothing was recorded,
        # so no ref travels (an unrecorded ref could never be attributed anyway).
        ref = None
    location = adapter.deep_link(handle, ref or "direct", target.text)
    response = Response(status_code=302, headers={"location": location, "cache-control": NO_STORE})
    if ref is None:
        response.headers["x-click-recorded"] = "0"
    return response


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
    request: Request,
    svc: Services,
    target: links.Target,
    channel_id: int | None,
    visitor: visitors.Visitor,
    via: str,
    now: Any,
) -> dict[str, Any]:
    """The click row. Every visit gets a ref, bots too: it is what makes a spool replay
    idempotent (only a person's ever travels to a messenger)."""
    # Most clicks carry no query string: don't parse one then.
    query: dict[str, str] = dict(request.query_params) if request.scope["query_string"] else {}
    utm = dict(target.utm)
    if query:
        for param, column in UTM_PARAMS.items():
            value = query.get(param)
            if value:
                utm[column] = _printable(value, 100)
    click_id = next((f"{name}:{query[name]}" for name in CLICK_IDS if query.get(name)), None)
    peer = request.client.host if request.client else None
    forwarded = request.headers.get("x-forwarded-for")
    ip = visitors.client_ip(peer, forwarded, svc.settings.trusted_proxies)
    return {
        "link_id": target.id,
        "channel_id": channel_id,
        "ref": refs.make(),
        "at": now,
        "visitor": visitor.kind,
        "device": visitor.device,
        "via": "widget" if query.get("w") else via,
        "link_version": target.version,
        "ip": visitors.anonymize(ip),
        "user_agent": _agent(request.headers.get("user-agent", "")),
        "referrer": _printable(query.get("ref_url") or request.headers.get("referer", ""), 400),
        "page": _printable(query.get("page", ""), 400),
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

# The hot path: tried first (see CodeConvertor).
routes = [
    Route("/{code:code}", follow, methods=["GET", "HEAD"]),
    Route("/q/{code}", follow, methods=["GET", "HEAD"]),
    Route("/Q/{code}", follow, methods=["GET", "HEAD"]),
]
# Anything else of one segment (a mistyped code with a dot, say) still gets the friendly 404.
fallback = [Route("/{code}", follow, methods=["GET", "HEAD"])]
