"""The relay: forward every verified delivery to the channel's own bot backend.

Telegram allows one webhook per bot, so a bot with a backend of its own gets its updates through
us. A delivery is queued in `relay_outbox` in the webhook's own transaction (so nothing the
platform was told "200" about can be lost), and a background loop sends it later: the 200 to
the platform never waits for the bot. Per channel, rows go out strictly oldest first (head of
line); a failing head is retried with exponential backoff and blocks the rows behind it, so the
bot sees updates in the order the platform sent them. Delivery is at least once: a worker that
dies between sending and recording re-sends after its lease ends (bots dedupe by update id).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import http.client
import ipaddress
import logging
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from acquisition.config import Network
from acquisition.db import Database
from acquisition.models import Channel, RelayItem, utcnow
from acquisition.optins import count, insert_ignore

log = logging.getLogger(__name__)

# What the bot needs to trust and read the body as the platform sent it.
RELAY_HEADERS = (
    "content-type",
    "x-telegram-bot-api-secret-token",
    "x-hub-signature-256",
    "x-hub-signature",
    "x-viber-content-signature",
    "x-max-bot-api-secret",
)
KEEP_DELIVERED = timedelta(days=2)  # longer than any platform re-delivers (Telegram: 24 h)
PERMANENT_AFTER = 5


@dataclass(frozen=True)
class Policy:
    base_delay: float = 1.0  # seconds before the first retry; doubles each time
    max_delay: float = 600.0
    lease: float = 60.0  # a claimed row is someone else's for this long
    timeout: float = 10.0  # per HTTP request
    idle_poll: float = 1.0  # how often to look for due rows when nobody woke us
    batch: int = 50
    # Non-public networks a relay_url may reach (ACQUISITION_RELAY_PRIVATE_NETWORKS); any other
    # non-public address is refused, so a channel's URL cannot make the service post into
    # its own network (the database, a cloud metadata endpoint, an admin port on localhost).
    private: tuple[Network, ...] = ()


def enqueue(session: Session, channel: Channel, body: bytes, headers: Mapping[str, str]) -> bool:
    """Queue a verified delivery for the channel's relay URL, once per distinct body (a
    platform's re-delivery of the same body is not relayed twice). True when queued."""
    if not channel.relay_url:
        return False
    kept = {name: headers[name] for name in RELAY_HEADERS if name in headers}
    kept["x-relayed-by"] = "acquisition"
    now = utcnow()
    new = insert_ignore(
        session,
        RelayItem,
        {
            "channel_id": channel.id,
            "url": channel.relay_url,
            "body": body,
            "body_sha256": hashlib.sha256(body).hexdigest(),
            "headers": kept,
            "created_at": now,
            "attempts": 0,
            "next_attempt_at": now,
        },
        ("channel_id", "body_sha256"),
    )
    return new is not None


def due(session: Session, now: datetime, limit: int = 50) -> list[int]:
    """Ids of each channel's oldest pending row, when that row may be tried now."""
    heads = (
        select(func.min(RelayItem.id).label("id"))
        .where(RelayItem.delivered_at.is_(None), RelayItem.failed_at.is_(None))
        .group_by(RelayItem.channel_id)
        .subquery()
    )
    return list(
        session.scalars(
            select(RelayItem.id)
            .join(heads, heads.c.id == RelayItem.id)
            .where(
                RelayItem.next_attempt_at <= now,
                or_(RelayItem.claimed_until.is_(None), RelayItem.claimed_until < now),
            )
            .order_by(RelayItem.id)
            .limit(limit)
        )
    )


def claim(session: Session, item_id: int, now: datetime, lease: float) -> RelayItem | None:
    """Take a row for one send. The conditional UPDATE is the lock: of two workers that both
    saw the row as due, exactly one matches the WHERE clause."""
    result = session.execute(
        update(RelayItem)
        .where(
            RelayItem.id == item_id,
            RelayItem.delivered_at.is_(None),
            RelayItem.failed_at.is_(None),
            or_(RelayItem.claimed_until.is_(None), RelayItem.claimed_until < now),
        )
        .values(claimed_until=now + timedelta(seconds=lease), attempts=RelayItem.attempts + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        return None
    return session.get(RelayItem, item_id, populate_existing=True)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """A redirect would turn the POST into a GET without the body: report it as a failure."""

    def redirect_request(self, *args: object, **kwargs: object) -> None:
        return None


class _PinnedHTTP(urllib.request.HTTPHandler):
    """Connects to the address that was checked, not to whatever the name resolves to next."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_pinned(http.client.HTTPConnection, self.address), req)


class _PinnedHTTPS(urllib.request.HTTPSHandler):
    """As _PinnedHTTP; the certificate is still verified against the URL's host name."""

    def __init__(self, address: str) -> None:
        super().__init__()
        self.address = address

    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(
            _pinned(http.client.HTTPSConnection, self.address),
            req,
            context=self._context,  # type: ignore[attr-defined]
        )


def _pinned(kind: type[http.client.HTTPConnection], address: str) -> Any:
    def connection(host: str, **kwargs: Any) -> http.client.HTTPConnection:
        conn = kind(host, **kwargs)

        def create(where: tuple[str, int], *args: Any) -> socket.socket:
            return socket.create_connection((address, where[1]), *args)

        # http.client opens its socket through this attribute: aim it at the checked address.
        conn._create_connection = create  # type: ignore[attr-defined]
        return conn

    return connection


def send(
    url: str,
    body: bytes,
    headers: Mapping[str, str],
    timeout: float,
    private: tuple[Network, ...] = (),
) -> tuple[int, str]:
    """POST the body; (status, "") on a 2xx, else (status or 0, what went wrong)."""
    address, refusal = vetted_address(url, private)
    if refusal:
        # Nobody but the operator can fix this, and the row only waits: say so where they look.
        log.warning("relay to %s not sent: %s", urlsplit(url).hostname, refusal)
        return 0, refusal
    opener = urllib.request.build_opener(
        urllib.request.ProxyHandler({}),  # straight to the checked address, never via a proxy
        _NoRedirects,
        _PinnedHTTP(address),
        _PinnedHTTPS(address),
    )
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")
    try:
        with opener.open(request, timeout=timeout) as response:
            response.read(65536)
            return response.status, ""
    except urllib.error.HTTPError as error:
        return error.code, f"HTTP {error.code}"
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        return 0, f"{error.__class__.__name__}: {reason}"[:300]


def vetted_address(url: str, private: tuple[Network, ...] = ()) -> tuple[str, str]:
    """The address to post to, or why the URL's host may not be posted to: each address its
    name resolves to must be public, or inside a network the operator allowed.

    Checked before every send, since a name can point elsewhere later (a URL that spells out
    an address is also checked when it is saved), and the connection then goes to the checked
    address, so a name that changes in between (DNS rebinding) cannot smuggle the request into
    the service's own network."""
    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
        found = socket.getaddrinfo(parts.hostname or "", port, type=socket.SOCK_STREAM)
    except (OSError, ValueError, UnicodeError) as error:
        return "", f"relay_url host cannot be resolved: {error}"[:300]
    addresses = []
    for *_, sockaddr in found:
        address = ipaddress.ip_address(str(sockaddr[0]).split("%")[0])
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        if not (address.is_global and not address.is_multicast) and not any(
            address in network for network in private
        ):
            return "", (
                f"relay_url points at {address}, which is not a public address; "
                "allow its network with ACQUISITION_RELAY_PRIVATE_NETWORKS"
            )
        addresses.append(str(address))
    if not addresses:
        return "", "relay_url host has no address"
    return addresses[0], ""


def settle(session: Session, item: RelayItem, status: int, error: str, policy: Policy) -> None:
    now = utcnow()
    item.claimed_until = None
    if not error:
        item.delivered_at, item.body, item.last_error = now, None, None
        count("relay.delivered")
        return
    item.last_error = error[:300]
    count("relay.failed")
    # The bot answered and refused this very request (not "busy" or "down"): after a few
    # tries, park it so the updates behind it flow again.
    refused = 400 <= status < 500 and status not in (408, 425, 429)
    if refused and item.attempts >= PERMANENT_AFTER:
        item.failed_at = now
        count("relay.parked")
        log.warning("relay row %s parked after %s refusals: %s", item.id, item.attempts, error)
        return
    delay = min(policy.max_delay, policy.base_delay * 2 ** max(0, item.attempts - 1))
    item.next_attempt_at = now + timedelta(seconds=delay)


def run_once(db: Database, policy: Policy) -> int:
    """Send what is due now; return how many rows were tried. No database connection is held
    while a request is in flight."""
    with db.reader() as session:
        ids = due(session, utcnow(), policy.batch)
    tried = 0
    for item_id in ids:
        with db.writer.begin() as session:
            item = claim(session, item_id, utcnow(), policy.lease)
            if item is None or item.body is None:
                continue
            url, body, headers = item.url, item.body, dict(item.headers)
        status, error = send(url, body, headers, policy.timeout, policy.private)
        tried += 1
        with db.writer.begin() as session:
            row = session.get(RelayItem, item_id)
            if row is not None:
                settle(session, row, status, error, policy)
    return tried


def prune(db: Database) -> int:
    with db.writer.begin() as session:
        result = session.execute(
            delete(RelayItem).where(RelayItem.delivered_at < utcnow() - KEEP_DELIVERED)
        )
        return int(result.rowcount or 0)  # type: ignore[attr-defined]


class RelayLoop:
    """The background sender, started and stopped by the app's lifespan."""

    def __init__(self, db: Database, policy: Policy | None = None) -> None:
        self.db = db
        self.policy = policy or Policy()
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._pruned = 0.0

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="relay")

    def wake(self) -> None:
        """Called on the event loop after a webhook queued something: send now, not later."""
        self._wake.set()

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await asyncio.wait_for(self._task, timeout=self.policy.timeout + 5)
                except TimeoutError:
                    log.warning("relay loop did not stop in time; queued rows stay queued")

    async def _run(self) -> None:
        while not self._stopping:
            # Cleared before the pass, so a wake() during it is not lost: the wait below
            # returns at once and the new row goes out without waiting for the poll.
            self._wake.clear()
            tried = 0
            try:
                tried = await asyncio.to_thread(run_once, self.db, self.policy)
                if time.monotonic() - self._pruned > 600:
                    self._pruned = time.monotonic()
                    await asyncio.to_thread(prune, self.db)
            except Exception as error:  # the store is down: keep the loop, try again later
                log.warning("relay pass failed: %s", error.__class__.__name__)
            if tried == 0 and not self._stopping:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=self.policy.idle_poll)
