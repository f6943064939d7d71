"""What keeps the admin safe: the signed session cookie, CSRF tokens tied to it, the request
origin check, the sign-in rate limits and the headers every admin answer carries.

The session is a cookie signed with a key derived from ACQUISITION_SECRET_KEY (itsdangerous via
Starlette's SessionMiddleware), limited to /admin, HttpOnly, SameSite=Lax, Secure on https. It
holds the user id, a fingerprint of the password hash (changing the password signs every
session out), the CSRF seed and the sign-in time. Nothing is kept on the server, so any worker
can serve any request.

A CSRF token is the session's seed signed with a timestamp (its own salt): a token from another
session, an old token or a forged one is refused. Defence in depth: a cross-site Sec-Fetch-Site
or a foreign Origin is refused before the token is even looked at.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import math
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from itsdangerous import BadSignature, URLSafeTimedSerializer
from limits import RateLimitItem, parse
from limits.aio.strategies import SlidingWindowCounterRateLimiter
from limits.storage import storage_from_string
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from acquisition import visitors
from acquisition.config import Settings

log = logging.getLogger(__name__)

COOKIE = "acq_admin"
PATH = "/admin"
IDLE_SECONDS = 12 * 3600  # the cookie lives this long after the last request that renewed it
RENEW_SECONDS = 300  # renew at most this often (every renewal is a Set-Cookie)
MAX_SESSION_SECONDS = 7 * 24 * 3600  # sign in again after a week whatever the activity
CSRF_FIELD = "csrf"
CSRF_MAX_AGE = IDLE_SECONDS
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
HEADERS = {
    "content-security-policy": CSP,
    "cache-control": "no-store",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def _derived(settings: Settings, purpose: str) -> str:
    """A key for one purpose, so a signature made for one thing is never valid for another."""
    digest = hmac.new(settings.secret_key.encode(), purpose.encode(), hashlib.sha256)
    return digest.hexdigest()


def session_middleware(settings: Settings) -> Middleware:
    return Middleware(
        SessionMiddleware,
        secret_key=_derived(settings, "admin-session"),
        session_cookie=COOKIE,
        max_age=IDLE_SECONDS,
        path=PATH,
        same_site="lax",
        https_only=settings.base_url.startswith("https://"),
    )


def password_mark(password_hash: str) -> str:
    """What the session keeps of the password hash: enough to notice it changed."""
    return hashlib.sha256(password_hash.encode()).hexdigest()[:16]


def sign_in(request: Request, user_id: int, password_hash: str) -> None:
    """A fresh session for the user: nothing from before signing in is kept (no fixation)."""
    request.session.clear()
    now = int(time.time())
    request.session.update(
        {
            "uid": user_id,
            "pw": password_mark(password_hash),
            "at": now,
            "seen": now,
            CSRF_FIELD: secrets.token_urlsafe(24),
        }
    )


def sign_out(request: Request) -> None:
    request.session.clear()


def session_user(request: Request) -> tuple[int, str] | None:
    """(user id, password mark) of a live session; renews the cookie now and then."""
    session = request.session
    uid, mark, since = session.get("uid"), session.get("pw"), session.get("at")
    if not isinstance(uid, int) or not isinstance(mark, str) or not isinstance(since, int):
        return None
    now = int(time.time())
    if now - since > MAX_SESSION_SECONDS:
        session.clear()
        return None
    if now - int(session.get("seen") or 0) > RENEW_SECONDS:
        session["seen"] = now  # a modified session is sent again: the idle clock restarts
    return uid, mark


def state(request: Request) -> AdminState:
    found: AdminState | None = getattr(request.app.state, "admin", None)
    if found is None:
        found = request.app.state.admin = AdminState.of(request.app.state.services.settings)
    return found


def _serializer(request: Request) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(state(request).csrf_key, salt="admin-csrf")


def csrf_token(request: Request) -> str:
    seed = request.session.get(CSRF_FIELD)
    if not isinstance(seed, str):
        seed = request.session[CSRF_FIELD] = secrets.token_urlsafe(24)
    return str(_serializer(request).dumps(seed))


class CsrfError(Exception):
    """The form did not come from one of our pages in this session (or is too old)."""


def check_origin(request: Request) -> None:
    """Refuse what a browser marks as sent from another site."""
    if request.headers.get("sec-fetch-site") == "cross-site":
        raise CsrfError("cross-site request")
    origin = request.headers.get("origin")
    if origin is None:
        return  # older browsers and same-origin GET-to-POST navigations may send none
    if origin == "null":
        raise CsrfError("opaque origin")
    # The host alone: behind a TLS-terminating proxy the app sees http while the browser
    # sends https; the configured public origin is always fine.
    host = urlsplit(origin).netloc.lower()
    public = request.app.state.services.settings.base_url.lower()
    if host != request.url.netloc.lower() and origin.lower() != public:
        raise CsrfError("foreign origin")


def check_csrf(request: Request, form: Mapping[str, Any]) -> None:
    check_origin(request)
    token = form.get(CSRF_FIELD)
    seed = request.session.get(CSRF_FIELD)
    if not isinstance(token, str) or not isinstance(seed, str) or len(token) > 200:
        raise CsrfError("missing token")
    try:
        signed = _serializer(request).loads(token, max_age=CSRF_MAX_AGE)
    except BadSignature:
        raise CsrfError("bad or expired token") from None
    if not isinstance(signed, str) or not hmac.compare_digest(signed, seed):
        raise CsrfError("token of another session")


def safe_next(value: str | None) -> str:
    """Where to go after signing in: only a path inside the admin (no open redirect)."""
    if not value or len(value) > 500:
        return "/admin/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or not parts.path.startswith("/admin/") or "\\" in value:
        return "/admin/"
    if parts.path.startswith("/admin/login") or parts.path.startswith("/admin/logout"):
        return "/admin/"
    return value


# --- sign-in rate limits ----------------------------------------------------------------------


@dataclass
class Verdict:
    allowed: bool
    retry_after: int = 0


class LoginLimiter:
    """Sign-in attempts per client address (all of them) and per email (the failed ones).

    Keys are HMACs, so no address or email is written to a shared storage. If the storage is
    unreachable the attempt goes through: the argon2 cost still bounds guessing, and an outage
    of Redis must not lock everybody out.
    """

    def __init__(self, settings: Settings) -> None:
        self.item: RateLimitItem = parse(settings.rate_limit_login)
        self.uri = settings.rate_limit_storage
        self.trusted = settings.trusted_proxies
        self.secret = _derived(settings, "admin-login-limit").encode()
        self._limiter: SlidingWindowCounterRateLimiter | None = None

    def _get(self) -> SlidingWindowCounterRateLimiter:
        if self._limiter is None:  # made inside the event loop: async storages bind to it
            uri = self.uri if self.uri.startswith("async+") else "async+" + self.uri
            # redis-py's asyncio client (the `redis` package), as web/ratelimit.py uses.
            options = {"implementation": "redispy"} if uri.startswith("async+redis") else {}
            self._limiter = SlidingWindowCounterRateLimiter(storage_from_string(uri, **options))
        return self._limiter

    def _key(self, kind: str, value: str) -> str:
        return hmac.new(self.secret, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:32]

    def address(self, request: Request) -> str:
        return visitors.scope_ip(request.scope, self.trusted) or "-"

    async def check(self, request: Request, email: str) -> Verdict:
        """Count this attempt against the address; refuse when either budget is spent."""
        try:
            limiter = self._get()
            ip_key = self._key("ip", self.address(request))
            email_key = self._key("email", email.strip().lower()[:254])
            if not await limiter.test(self.item, "admin-login-email", email_key):
                return Verdict(False, await self._retry(limiter, "admin-login-email", email_key))
            if not await limiter.hit(self.item, "admin-login-ip", ip_key):
                return Verdict(False, await self._retry(limiter, "admin-login-ip", ip_key))
        except Exception as error:  # the storage is down: see the class docstring
            log.warning("sign-in rate limit storage unavailable: %s", error.__class__.__name__)
        return Verdict(True)

    async def failed(self, email: str) -> None:
        try:
            key = self._key("email", email.strip().lower()[:254])
            await self._get().hit(self.item, "admin-login-email", key)
        except Exception as error:
            log.warning("sign-in rate limit storage unavailable: %s", error.__class__.__name__)

    async def _retry(self, limiter: SlidingWindowCounterRateLimiter, kind: str, key: str) -> int:
        stats = await limiter.get_window_stats(self.item, kind, key)
        return max(1, math.ceil(stats.reset_time - time.time()))


@dataclass
class AdminState:
    """Per-app admin state: the CSRF key and the sign-in limiter (app.state.admin)."""

    csrf_key: str
    limiter: LoginLimiter

    @classmethod
    def of(cls, settings: Settings) -> AdminState:
        return cls(_derived(settings, "admin-csrf"), LoginLimiter(settings))
