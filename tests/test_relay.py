"""The relay against a real local HTTP listener: down for a while, then up; refusals; two
senders at once. Nothing is mocked: the listener is http.server in a thread."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from starlette.testclient import TestClient

from acquisition import relay
from acquisition.db import Database
from acquisition.models import Channel, RelayItem, utcnow
from tests import deliveries as d
from tests.factories import make_channel
from tests.live_server import free_port

# The listener is a bot backend on this host: its network must be allowed explicitly.
LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"),)
FAST = relay.Policy(
    base_delay=0.05, max_delay=0.2, lease=5, timeout=2, idle_poll=0.05, private=LOOPBACK
)
NOW = relay.Policy(base_delay=0, max_delay=0, private=LOOPBACK)


class Listener:
    """A bot backend: records every POST it accepts; answers `status` (200 by default)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.received: list[tuple[str, dict[str, str], bytes]] = []
        self.status = 200
        self.server: ThreadingHTTPServer | None = None
        listener = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                if listener.status == 200:
                    headers = {k.lower(): v for k, v in self.headers.items()}
                    listener.received.append((self.path, headers, body))
                self.send_response(listener.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.handler = Handler

    def up(self) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self.handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def down(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"


@pytest.fixture
def listener() -> Iterator[Listener]:
    backend = Listener(free_port())  # not listening yet: the bot backend is down
    yield backend
    backend.down()


def bot(db: Database, handle: str, url: str) -> Channel:
    return make_channel(db, "telegram", handle, relay_url=url)


def enqueue(db: Database, channel: Channel, body: bytes) -> bool:
    with db.writer.begin() as s:
        return relay.enqueue(
            s,
            s.get(Channel, channel.id),
            body,
            {"content-type": "application/json", "x-other": "no"},
        )


def items(db: Database) -> list[RelayItem]:
    with db.reader() as s:
        return list(s.scalars(select(RelayItem).order_by(RelayItem.id)))


def until(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.02)


def test_updates_queued_while_the_bot_is_down_all_arrive_once_and_in_order_when_it_is_up(
    db: Database, listener: Listener
) -> None:
    a = bot(db, "a_bot", listener.url("/a"))
    b = bot(db, "b_bot", listener.url("/b"))
    sent = {
        "/a": [b'{"update_id": %d}' % n for n in range(6)],
        "/b": [b'{"update_id": %d}' % (100 + n) for n in range(4)],
    }
    for n in range(6):  # interleaved, as two bots' updates would be
        enqueue(db, a, sent["/a"][n])
        if n < 4:
            enqueue(db, b, sent["/b"][n])

    async def scenario() -> None:
        # Two senders at once, as with two workers: the claim keeps each row to one of them.
        loops = [relay.RelayLoop(db, FAST), relay.RelayLoop(db, FAST)]
        for loop in loops:
            loop.start()
        await asyncio.sleep(0.8)
        assert listener.received == []
        listener.up()
        deadline = time.monotonic() + 15
        while len(listener.received) < 10 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for loop in loops:
            await loop.stop()

    asyncio.run(scenario())
    for path, bodies in sent.items():
        assert [body for p, _h, body in listener.received if p == path] == bodies
    assert len(listener.received) == 10
    stored = items(db)
    assert all(item.delivered_at is not None and item.body is None for item in stored)
    assert stored[0].attempts > 1  # it really was refused while the backend was down
    assert all(h["content-type"] == "application/json" for _p, h, _b in listener.received)
    assert all("x-other" not in h for _p, h, _b in listener.received)


def test_a_failing_head_holds_back_its_own_channel_but_not_the_others(
    db: Database, listener: Listener
) -> None:
    down = bot(db, "down_bot", "http://127.0.0.1:9/never")  # port 9: nobody listens
    up = bot(db, "up_bot", listener.url("/up"))
    listener.up()
    enqueue(db, down, b"1")
    enqueue(db, down, b"2")
    enqueue(db, up, b"3")
    for _ in range(3):
        relay.run_once(db, FAST)
        time.sleep(0.06)
    assert [body for _p, _h, body in listener.received] == [b"3"]
    first, second, _third = items(db)
    assert first.attempts >= 2 and first.last_error and second.attempts == 0
    assert first.next_attempt_at > first.created_at


def test_a_bot_that_keeps_refusing_an_update_gets_it_parked_and_the_next_one_flows(
    db: Database, listener: Listener
) -> None:
    channel = bot(db, "picky_bot", listener.url("/p"))
    listener.up()
    listener.status = 400
    enqueue(db, channel, b"poison")
    enqueue(db, channel, b"fine")
    for _ in range(relay.PERMANENT_AFTER):
        relay.run_once(db, NOW)
    listener.status = 200
    relay.run_once(db, FAST)
    poison, fine = items(db)
    assert poison.failed_at is not None and poison.last_error == "HTTP 400"
    assert poison.body == b"poison"  # kept for inspection
    assert fine.delivered_at is not None
    assert [body for _p, _h, body in listener.received] == [b"fine"]


def test_a_busy_bot_is_retried_forever_rather_than_parked(db: Database, listener: Listener) -> None:
    channel = bot(db, "busy_bot", listener.url("/busy"))
    listener.up()
    listener.status = 503
    enqueue(db, channel, b"later")
    for _ in range(relay.PERMANENT_AFTER + 2):
        relay.run_once(db, NOW)
    [item] = items(db)
    assert item.failed_at is None and item.attempts == relay.PERMANENT_AFTER + 2


def test_a_row_can_be_claimed_by_one_sender_only(db: Database, listener: Listener) -> None:
    channel = bot(db, "one_bot", listener.url("/one"))
    enqueue(db, channel, b"x")
    [item] = items(db)
    now = utcnow()
    with db.writer.begin() as s:
        assert relay.claim(s, item.id, now, 30) is not None
    with db.writer.begin() as s:
        assert relay.claim(s, item.id, now, 30) is None
    with db.reader() as s:
        assert relay.due(s, now) == []


def test_the_same_body_is_queued_once_and_a_channel_without_relay_queues_nothing(
    db: Database, listener: Listener
) -> None:
    channel = bot(db, "twice_bot", listener.url("/t"))
    assert enqueue(db, channel, b"same") is True
    assert enqueue(db, channel, b"same") is False
    plain = make_channel(db, "telegram", "plain_bot")
    assert enqueue(db, plain, b"other") is False
    assert len(items(db)) == 1


def test_a_redirecting_bot_is_a_failure_not_a_silent_get(db: Database) -> None:
    class Redirect(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.send_response(302)
            self.send_header("location", "http://127.0.0.1:9/elsewhere")
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Redirect)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        status, error = relay.send(f"http://127.0.0.1:{server.server_port}/", b"x", {}, 2, LOOPBACK)
    finally:
        server.shutdown()
        server.server_close()
    assert (status, error) == (302, "HTTP 302")


def test_a_webhook_reaches_the_bot_backend_byte_for_byte_with_its_secret_header(
    client: TestClient, db: Database, listener: Listener
) -> None:
    listener.up()
    channel = make_channel(
        db,
        "telegram",
        "relay_bot",
        credentials=d.CREDENTIALS["telegram"],
        relay_url=listener.url("/telegram"),
    )
    raw = d.encode(d.start("telegram", None))
    r = d.post(client, "telegram", channel.id, raw)
    assert r.status_code == 200
    until(lambda: len(listener.received) == 1)
    [(path, headers, body)] = listener.received
    assert (path, body) == ("/telegram", raw)
    assert headers["x-telegram-bot-api-secret-token"] == d.CREDENTIALS["telegram"]["secret"]
    assert headers["x-relayed-by"] == "acquisition"


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:{port}/hook",
        "http://localhost:{port}/hook",
        "http://[::ffff:127.0.0.1]:{port}/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://10.0.0.7/hook",
        "http://0.0.0.0:{port}/hook",
    ],
)
def test_a_relay_url_into_the_services_own_network_is_refused_unless_allowed(
    db: Database, listener: Listener, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    """A channel's relay_url is someone's input: by default the service posts only to public
    addresses, so it cannot be turned against its database, metadata endpoint or admin ports."""
    listener.up()
    channel = bot(db, "nosy_bot", url.format(port=listener.port))
    enqueue(db, channel, b"secret update")
    with caplog.at_level(logging.WARNING, logger="acquisition.relay"):
        relay.run_once(db, relay.Policy(base_delay=0, max_delay=0))
    assert "ACQUISITION_RELAY_PRIVATE_NETWORKS" in caplog.text  # the operator is told
    [item] = items(db)
    assert item.delivered_at is None and listener.received == []
    assert "not a public address" in (item.last_error or "")
    assert "ACQUISITION_RELAY_PRIVATE_NETWORKS" in (item.last_error or "")
    if "{port}" in url and "0.0.0.0" not in url:  # the operator allows the loopback: it flows
        relay.run_once(db, NOW)
        [item] = items(db)
        assert item.delivered_at is not None and len(listener.received) == 1


def test_the_relay_connects_to_the_address_it_checked_not_to_a_later_answer(
    db: Database, listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: a name that passes the check and then resolves elsewhere. The resolver
    here answers 127.0.0.1 first and then an address nobody listens on; the update still
    reaches the checked address."""
    listener.up()
    lookups: list[str] = []
    real = socket.getaddrinfo

    def rebinding(host: str, port: int, *args: Any, **kwargs: Any) -> Any:
        if host != "bot.rebind.test":
            return real(host, port, *args, **kwargs)
        answer = "127.0.0.1" if not lookups else "127.0.0.2"
        lookups.append(answer)
        return real(answer, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    status, error = relay.send(
        f"http://bot.rebind.test:{listener.port}/hook", b"update", {}, 2, LOOPBACK
    )
    assert (status, error) == (200, "")
    assert lookups == ["127.0.0.1"]  # looked up once: the connection used that very answer
    assert [body for _p, _h, body in listener.received] == [b"update"]
    assert listener.received[0][1]["host"] == f"bot.rebind.test:{listener.port}"
