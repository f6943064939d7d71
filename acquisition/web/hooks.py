"""POST/GET /hooks/{messenger}/{channel_id}: messenger webhooks.

Order matters and each step refuses before anything is written: find the channel (404, the
same answer for every kind of miss), require its credentials (403: the webhook stays closed
until they are set), answer a handshake, verify over the raw bytes (401), parse (422). Only
then one write transaction stores the events, the ledger changes and the relay row, commits,
and the platform gets its 200.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from acquisition import messengers, optins, relay
from acquisition.messengers.base import Messenger
from acquisition.models import Channel, utcnow
from acquisition.web.problems import problem
from acquisition.web.redirect import services


@dataclass(frozen=True)
class Hook:
    channel: Channel
    adapter: Messenger
    missing: tuple[str, ...]


def _find(request: Request) -> Hook | None:
    name = request.path_params["messenger"]
    raw_id = request.path_params["channel_id"]
    adapter = messengers.REGISTRY.get(name)
    if adapter is None or not (raw_id.isascii() and raw_id.isdigit()) or len(raw_id) > 9:
        return None
    with services(request).db.reader() as session:
        channel = session.get(Channel, int(raw_id))
    if channel is None or channel.messenger != name:
        return None
    missing = tuple(key for key in adapter.CREDENTIALS if not channel.credentials.get(key))
    return Hook(channel, adapter, missing)


def _not_found() -> Response:
    return problem(404, "Not found", "no webhook here", "not-found")


def _closed(hook: Hook) -> Response:
    optins.count("hooks.closed")
    return problem(
        403,
        "Forbidden",
        "this channel's webhook is closed until its credentials are set: "
        f"missing {', '.join(hook.missing)}",
        "forbidden",
        [{"field": f"credentials.{key}", "message": "is not set"} for key in hook.missing],
    )


async def handshake(request: Request) -> Response:
    """GET: Meta's hub.challenge verification (VK confirms with a POST, below)."""
    hook = await run_in_threadpool(_find, request)
    if hook is None:
        return _not_found()
    if hook.missing:
        return _closed(hook)
    answer = hook.adapter.handshake(hook.channel.credentials, dict(request.query_params), None)
    if answer is None:
        optins.count("hooks.unauthorized")
        return problem(403, "Forbidden", "verification failed", "forbidden")
    return PlainTextResponse(answer)


async def receive(request: Request) -> Response:
    raw = await request.body()  # bounded by the BodyLimit middleware
    received_at = utcnow()
    hook = await run_in_threadpool(_find, request)
    if hook is None:
        return _not_found()
    if hook.missing:
        return _closed(hook)
    channel, adapter = hook.channel, hook.adapter
    headers = {name.lower(): value for name, value in request.headers.items()}
    # VK's server confirmation is a POST; the adapter checks its secret itself.
    answer = adapter.handshake(channel.credentials, dict(request.query_params), raw)
    if answer is not None:
        return PlainTextResponse(answer)
    if not adapter.verify(channel.credentials, headers, raw):
        optins.count("hooks.unauthorized")
        return problem(
            401, "Unauthorized", "the request is not signed by the platform", "unauthorized"
        )
    evidence = optins.Evidence(raw, received_at)
    outcome, queued = await run_in_threadpool(_store, request, hook, evidence, headers)
    if queued:
        loop = getattr(request.app.state, "relay", None)
        if loop is not None:
            loop.wake()
    return _answer(channel.messenger, outcome)


def _store(
    request: Request, hook: Hook, evidence: optins.Evidence, headers: Mapping[str, str]
) -> tuple[optins.Outcome, bool]:
    # Parsed off the event loop (a body may be megabytes), and before the transaction opens:
    # Invalid becomes 422 with nothing stored.
    events = hook.adapter.parse(evidence.body, evidence.received_at)
    with services(request).db.writer.begin() as session:
        channel = session.get(Channel, hook.channel.id) or hook.channel
        outcome = optins.record(session, channel, events, evidence)
        queued = relay.enqueue(session, channel, evidence.body, headers)
    # Committed on leaving the block: only now may the platform hear "200".
    return outcome, queued


def _answer(messenger: str, outcome: optins.Outcome) -> Response:
    if messenger == "vk":
        return PlainTextResponse("ok")  # VK pauses delivery unless it reads exactly "ok"
    if outcome.reply is not None:
        return JSONResponse(outcome.reply)
    return JSONResponse({})


routes = [
    Route("/hooks/{messenger}/{channel_id}", receive, methods=["POST"]),
    Route("/hooks/{messenger}/{channel_id}", handshake, methods=["GET"]),
]
