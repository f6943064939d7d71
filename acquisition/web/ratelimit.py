"""Rate limits (the `limits` library): per API key and per IP on /api/v1, per channel on webhooks,
and a budget of misses (404s) per IP on the public lookups. The admin sign-in has its own
limiter, per address and per email, with a page a person can read (web/admin/security.py).

The short links are never limited by volume: a whole office behind one NAT may scan the same
poster. What is limited there is guessing: an address that collects more than `misses` 404s is
answered 429 on every public lookup until its budget refills, hits included, so enumeration
learns nothing and slows to a crawl. The check costs the hot path a dict lookup: only a 404
touches the storage, and each worker remembers the addresses it found over budget.

Storage is in-process (`memory://`) by default; with several workers or hosts set
ACQUISITION_RATE_LIMIT_STORAGE=redis://... so they share one count. If the storage is
unreachable the request goes through (logged): a limiter outage must not become an API outage.
Addresses are keyed by an HMAC, so no IP address is ever written to the shared storage.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import math
import time
from collections.abc import Iterator, Sequence

from limits import RateLimitItem, parse
from limits.aio.storage import Storage
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from acquisition import metrics, visitors
from acquisition.config import Settings

log = logging.getLogger(__name__)

# 404s one address may collect on the public lookups: a few mistyped codes, never a scan.
MISSES = "60/minute"
# Paths with their own protection (keys, signatures, sessions) or nothing to guess.
NOT_LOOKUPS = ("/api/", "/hooks/", "/admin", "/static/", "/healthz", "/metrics")
_BLOCKED_MAX = 100_000


class Blocklist:
    """Addresses over their miss budget, each with the epoch second its budget refills.

    The rate limiter fills it; the short-link front asks it too, so that it steps aside (and
    the limiter refuses) for a blocked guesser only, never for everybody else.
    """

    def __init__(self, settings: Settings) -> None:
        self.trusted = settings.trusted_proxies
        self.secret = hashlib.sha256(b"rate-limit:" + settings.secret_key.encode()).digest()
        self._until: dict[str, float] = {}  # address key -> refill time

    def __bool__(self) -> bool:
        return bool(self._until)  # empty in normal operation: lookups pay nothing more

    def __iter__(self) -> Iterator[str]:
        return iter(self._until)

    def address(self, scope: Scope) -> str:
        """A keyed hash of the client's address (behind trusted proxies: the forwarded one)."""
        ip = visitors.scope_ip(scope, self.trusted) or "-"
        return hmac.new(self.secret, ip.encode(), hashlib.sha256).hexdigest()[:32]

    def until(self, address: str) -> float | None:
        """When the address's budget refills, if it is over budget now."""
        until = self._until.get(address)
        if until is not None and until <= time.time():
            del self._until[address]
            return None
        return until

    def holds(self, scope: Scope) -> bool:
        return bool(self._until) and self.until(self.address(scope)) is not None

    def block(self, address: str, until: float) -> None:
        if len(self._until) > _BLOCKED_MAX:
            self._until.clear()
        self._until[address] = until


class RateLimit:
    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        misses: str | None = None,
        blocklist: Blocklist | None = None,
    ) -> None:
        self.app = app
        self.api = parse(settings.rate_limit_api)
        self.hooks = parse(settings.rate_limit_hooks)
        self.misses = parse(misses or MISSES)
        self.uri = settings.rate_limit_storage
        self._limiter: SlidingWindowCounterRateLimiter | None = None
        self.blocklist = Blocklist(settings) if blocklist is None else blocklist
        self._storage_down_logged = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if path.startswith("/api/"):
            keys = [("api-ip", self.blocklist.address(scope))]
            token = _bearer(scope)
            if token:
                keys.insert(0, ("api-key", hashlib.sha256(token).hexdigest()[:32]))
            await self._limited(scope, receive, send, "api", self.api, keys)
        elif path.startswith("/hooks/"):
            parts = path.split("/")
            # /hooks/{messenger}/{channel_id}: anything else is a 404 and counts as nothing.
            if len(parts) == 4 and parts[3].isdigit() and len(parts[3]) <= 9 and len(parts[2]) < 16:
                keys = [("hook", f"{parts[2]}:{parts[3]}")]
                await self._limited(scope, receive, send, "hooks", self.hooks, keys)
            else:
                await self.app(scope, receive, send)
        elif path.startswith(NOT_LOOKUPS):
            await self.app(scope, receive, send)
        else:
            await self._lookup(scope, receive, send)

    # the public lookups: short links, QR images, widgets -----------------------------------------

    async def _lookup(self, scope: Scope, receive: Receive, send: Send) -> None:
        address = None
        if self.blocklist:
            address = self.blocklist.address(scope)
            until = self.blocklist.until(address)
            if until is not None:
                await self._refuse(scope, send, "misses", self.misses, until, 0)
                return
        status = 0

        async def watch(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, watch)
        if status == 404:
            # Counted after the answer went out: a miss costs the guesser, not the 404's latency.
            address = address or self.blocklist.address(scope)
            limiter = self._get_limiter()
            try:
                if not await limiter.hit(self.misses, "miss", address):
                    reset, _ = await limiter.get_window_stats(self.misses, "miss", address)
                    self.blocklist.block(address, max(reset, time.time() + 1))
            except Exception as error:
                self._storage_failed(error)

    # API, webhooks, login -----------------------------------------------------------------------

    async def _limited(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        item: RateLimitItem,
        keys: Sequence[tuple[str, str]],
    ) -> None:
        limiter = self._get_limiter()
        remaining = item.amount
        reset = time.time() + item.get_expiry()
        try:
            for kind, key in keys:
                allowed = await limiter.hit(item, kind, key)
                stats = await limiter.get_window_stats(item, kind, key)
                if not allowed:
                    await self._refuse(scope, send, name, item, stats.reset_time, 0)
                    return
                if stats.remaining <= remaining:
                    remaining, reset = stats.remaining, stats.reset_time
        except Exception as error:
            self._storage_failed(error)
            await self.app(scope, receive, send)
            return
        headers = _headers(item, remaining, reset)

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, with_headers)

    # helpers ------------------------------------------------------------------------------------

    def _get_limiter(self) -> SlidingWindowCounterRateLimiter:
        # Made on first use, inside the server's event loop (async storages bind to it).
        if self._limiter is None:
            self._limiter = SlidingWindowCounterRateLimiter(_storage(self.uri))
        return self._limiter

    def _storage_failed(self, error: Exception) -> None:
        metrics.RATE_LIMIT_ERRORS.inc()
        now = time.monotonic()
        if now - self._storage_down_logged > 30:  # once in a while, not once per request
            self._storage_down_logged = now
            log.warning(
                "rate-limit storage unavailable, letting requests through: %s",
                error.__class__.__name__,
            )

    async def _refuse(
        self, scope: Scope, send: Send, name: str, item: RateLimitItem, reset: float, left: int
    ) -> None:
        metrics.RATE_LIMITED.labels(name).inc()
        retry = max(1, math.ceil(reset - time.time()))
        detail = f"too many requests; retry in {retry} s"
        if name == "misses":
            detail = f"too many unknown codes from your network; retry in {retry} s"
        accept = next((v for n, v in scope["headers"] if n == b"accept"), b"")
        if name == "misses" and b"text/html" in accept:
            body = (
                "<!doctype html><meta charset=utf-8><title>Too many requests</title>"
                f"<p>Too many unknown codes were tried from your network. "
                f"Please try again in {retry} seconds.</p>"
            ).encode()
            content_type = b"text/html; charset=utf-8"
        else:
            body = json.dumps(
                {
                    "type": "/problems/rate-limited",
                    "title": "Too many requests",
                    "status": 429,
                    "detail": detail,
                }
            ).encode()
            content_type = b"application/problem+json"
        await send(
            {
                "type": "http.response.start",
                "status": 429,
                "headers": [
                    (b"content-type", content_type),
                    (b"content-length", str(len(body)).encode()),
                    (b"retry-after", str(retry).encode()),
                    (b"cache-control", b"no-store"),
                    *_headers(item, left, reset),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


def _storage(uri: str) -> Storage:
    if not uri.startswith("async+"):
        uri = "async+" + uri
    if uri.startswith(("async+redis://", "async+rediss://", "async+redis+")):
        # redis-py's asyncio client (the `redis` package), not coredis.
        storage = storage_from_string(uri, implementation="redispy")
    else:
        storage = storage_from_string(uri)
    assert isinstance(storage, Storage)
    return storage


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            token = token.strip()
            return token if scheme.lower() == b"bearer" and token else None
    return None


def _headers(item: RateLimitItem, remaining: int, reset: float) -> list[tuple[bytes, bytes]]:
    return [
        (b"x-ratelimit-limit", str(item.amount).encode()),
        (b"x-ratelimit-remaining", str(max(0, remaining)).encode()),
        (b"x-ratelimit-reset", str(math.ceil(reset)).encode()),
    ]
