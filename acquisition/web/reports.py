"""/api/v1 for opt-ins: starts and opt-outs reported by bots that keep their own webhook,
subscribers and their consent history, the ledger as CSV, and erasure."""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from acquisition import fields, messengers, optins, subscribers
from acquisition.errors import Invalid
from acquisition.messengers import whatsapp
from acquisition.messengers.base import INBOUND_REF, Event
from acquisition.models import Channel, utcnow
from acquisition.web.api import read, settle_late_clicks, write
from acquisition.web.redirect import services

REPORT_KEYS = {
    "messenger",
    "channel",
    "user_id",
    "ref",
    "text",
    "event_id",
    "time",
    "user_name",
    "language",
    "subscribed",
}
_START = re.compile(r"/start(?:@[A-Za-z0-9_]{1,64})?\s+(\S+)\s*", re.DOTALL)


def _identifier(body: dict[str, Any], name: str, max_length: int) -> str:
    """A provider id: a non-empty string or a whole number (Telegram ids are numbers)."""
    value = body.get(name)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        value = str(value)
    if not isinstance(value, str):
        raise Invalid("is required: a string or a whole number", field=name)
    return fields.text({name: value}, name, max_length=max_length, required=True) or ""


def _ref(body: dict[str, Any]) -> str | None:
    ref = fields.text(body, "ref", max_length=64)
    if ref is not None:
        if not INBOUND_REF.fullmatch(ref):
            raise Invalid("must be 1-64 characters of A-Z, a-z, 0-9, _ or -", field="ref")
        return ref
    text = fields.text(body, "text", max_length=4096, multiline=True)
    if text is None:
        return None
    start = _START.fullmatch(text.strip())
    if start and INBOUND_REF.fullmatch(start.group(1)):
        return start.group(1)
    return whatsapp.find_ref(text)  # a prefilled code the person may have edited


def parse_report(data: object, kind: str) -> tuple[int, str, Event]:
    """A bot's report as (channel id, messenger, the Event a webhook would have produced)."""
    body = dict(fields.obj(data))
    problems = fields.Problems()
    allowed = REPORT_KEYS if kind == "start" else REPORT_KEYS - {"ref", "text", "subscribed"}
    fields.unknown_keys(body, allowed, "", problems)
    messenger = problems.take(fields.choice, body, "messenger", messengers.NAMES)
    if messenger is None and "messenger" not in body:
        problems.add("messenger", "is required")
    channel = problems.take(fields.integer, body.get("channel"), "channel")
    user_id = problems.take(_identifier, body, "user_id", 128)
    event_id = problems.take(_identifier, body, "event_id", 190)
    at = problems.take(fields.timestamp, body, "time")
    ref = problems.take(_ref, body) if kind == "start" else None
    subscribed = problems.take(fields.flag, body, "subscribed", default=True)
    name = problems.take(fields.text, body, "user_name", max_length=200)
    language = problems.take(fields.text, body, "language", max_length=16)
    problems.check()
    assert messenger and channel and user_id and event_id
    event = Event(
        kind="start" if kind == "start" else "optout",
        event_id=f"api:{event_id}",
        user_id=user_id,
        at=at or utcnow(),
        event_type="bot_report",
        ref=ref,
        language=language,
        user_name=name,
        subscribes=kind == "start" and bool(subscribed),
    )
    return channel, messenger, event


async def _report(request: Request, kind: str) -> Response:
    received_at = utcnow()
    raw = await request.body()

    def work(session: Session, body: Any) -> tuple[int, dict[str, Any]]:
        channel_id, messenger, event = parse_report(body, kind)
        channel = session.get(Channel, channel_id)
        if channel is None:
            raise Invalid(f"no channel with id {channel_id}", field="channel")
        if channel.messenger != messenger:
            raise Invalid(
                f"channel {channel_id} is a {channel.messenger} channel", field="messenger"
            )
        evidence = optins.Evidence(raw, received_at, via="api")
        outcome = optins.record(session, channel, [event], evidence)
        known = outcome.subscribers[:1]  # none: a re-sent report about an erased person
        answer: dict[str, Any] = {
            "duplicate": outcome.duplicates > 0,
            "subscriber": subscribers.one(session, known[0].id) if known else None,
        }
        if outcome.starts:
            answer["start"] = subscribers.touches(session, {outcome.starts[0].id}).get(
                outcome.starts[0].id
            )
        return (200 if outcome.duplicates else 201), answer

    status, answer = await write(request, work)
    return JSONResponse(answer, status_code=status)


async def report_start(request: Request) -> Response:
    """A start (and, by default, an opt-in) seen by a bot that keeps its own webhook."""
    return await _report(request, "start")


async def report_optout(request: Request) -> Response:
    """The person blocked or stopped the bot, as the bot saw it."""
    return await _report(request, "optout")


def _path_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 18:
        raise Invalid("must be a numeric id", field="id")
    return int(raw)


async def list_subscribers(request: Request) -> Response:
    await settle_late_clicks(request)

    def work(session: Session) -> dict[str, Any]:
        query = subscribers.parse_query(request.query_params)
        rows = subscribers.page(session, query)
        more = len(rows) == query.limit
        return {"subscribers": rows, "next_before": rows[-1]["id"] if more else None}

    return JSONResponse(await read(request, work))


async def get_subscriber(request: Request) -> Response:
    subscriber_id = _path_id(request)
    await settle_late_clicks(request)
    return JSONResponse(await read(request, lambda s: subscribers.one(s, subscriber_id)))


async def consent_history(request: Request) -> Response:
    subscriber_id = _path_id(request)
    await settle_late_clicks(request)

    def work(session: Session) -> dict[str, Any]:
        return {"subscriber": subscriber_id, "events": subscribers.history(session, subscriber_id)}

    return JSONResponse(await read(request, work))


async def consent_csv(request: Request) -> Response:
    """The whole ledger (or one channel's), streamed page by page: no size limit in memory."""
    raw = request.query_params.get("channel")
    if raw is not None and (not (raw.isascii() and raw.isdigit()) or len(raw) > 9 or int(raw) == 0):
        raise Invalid("must be a channel id", field="channel")
    channel = int(raw) if raw is not None else None
    await settle_late_clicks(request)
    await read(request, lambda session: None)  # authenticate before streaming anything
    db = services(request).db

    def lines() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(subscribers.CSV_COLUMNS)
        after = 0
        while True:
            with db.reader() as session:
                rows = subscribers.ledger_rows(session, channel, after)
            writer.writerows(rows)
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if not rows:
                return
            after = rows[-1][0]

    return StreamingResponse(
        lines(),
        media_type="text/csv; charset=utf-8",
        headers={
            "content-disposition": 'attachment; filename="consent.csv"',
            "cache-control": "no-store",
        },
    )


async def erase_subscriber(request: Request) -> Response:
    """Erase a person's identifiers on request; the consent ledger stays as proof."""
    subscriber_id = _path_id(request)
    svc = services(request)
    await read(request, lambda session: None)  # authenticate (DELETE carries no JSON body)

    def run() -> dict[str, Any]:
        with svc.db.writer.begin() as session:
            subscriber = subscribers.get(session, subscriber_id)
            return subscribers.erase(session, subscriber, svc.settings.secret_key)

    return JSONResponse(await run_in_threadpool(run))


routes = [
    Route("/starts", report_start, methods=["POST"]),
    Route("/optouts", report_optout, methods=["POST"]),
    Route("/subscribers", list_subscribers, methods=["GET"]),
    Route("/subscribers/{id}", get_subscriber, methods=["GET"]),
    Route("/subscribers/{id}", erase_subscriber, methods=["DELETE"]),
    Route("/subscribers/{id}/consent", consent_history, methods=["GET"]),
    Route("/consent.csv", consent_csv, methods=["GET"]),
]
