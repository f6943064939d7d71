"""/api/v1: JSON in, JSON out. Parse at the edge, call the domain, commit, answer."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from acquisition import apikeys, channels, fields, links, optins, placements, stats
from acquisition.errors import Invalid, Malformed, Unauthorized
from acquisition.web.openapi import document
from acquisition.web.redirect import services

T = TypeVar("T")
MAX_DEPTH = 32


def parse_json(request: Request, raw: bytes) -> Any:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != "application/json":
        raise Malformed(
            "the request body must be JSON sent with Content-Type: application/json",
            field="content-type",
        )
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except (ValueError, RecursionError) as error:
        raise Malformed(f"the request body is not valid JSON: {error}", field="body") from None
    if _depth(data) > MAX_DEPTH:
        raise Malformed("the JSON body is nested too deeply", field="body")
    return data


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_DEPTH:
        return level
    if isinstance(value, dict):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _authenticate(session: Session, request: Request) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise Unauthorized("send the API key as 'Authorization: Bearer acq_…'")
    apikeys.touch(session, apikeys.verify(session, token.strip()))


async def write(request: Request, work: Callable[[Session, Any], T]) -> T:
    """Check the API key, parse the JSON body, run `work` in one transaction, commit, answer.

    The key is checked before the body is looked at, so a caller without one learns nothing
    about what the API would accept.
    """
    db = services(request).db
    raw = await request.body()

    def run() -> T:
        with db.writer.begin() as session:
            _authenticate(session, request)
            return work(session, parse_json(request, raw))

    return await run_in_threadpool(run)


async def read(request: Request, work: Callable[[Session], T]) -> T:
    db = services(request).db

    def run() -> T:
        with db.writer.begin() as session:
            _authenticate(session, request)
        with db.reader() as session:
            return work(session)

    return await run_in_threadpool(run)


def _limit(request: Request, default: int = 50, high: int = 500) -> int:
    raw = request.query_params.get("limit", str(default))
    if not (raw.isascii() and raw.isdigit()):  # not "¹": isdigit() takes what int() refuses
        raise Invalid(f"must be a whole number from 1 to {high}", field="limit")
    return fields.integer(int(raw), "limit", low=1, high=high)


def _cursor(request: Request) -> int | None:
    raw = request.query_params.get("before")
    if raw is None:
        return None
    if not (raw.isascii() and raw.isdigit()):
        raise Invalid("must be a cursor taken from next_before", field="before")
    return int(raw)


# channels ---------------------------------------------------------------------------------------


async def create_channel(request: Request) -> Response:
    base = services(request).settings.base_url
    networks = services(request).settings.relay_private_networks

    def work(session: Session, body: Any) -> dict[str, Any]:
        channel = channels.create(session, channels.parse(body, relay_networks=networks))
        return channels.public(channel, base, reveal=True)

    result = await write(request, work)
    return JSONResponse(
        result, status_code=201, headers={"location": f"/api/v1/channels/{result['id']}"}
    )


async def list_channels(request: Request) -> Response:
    base = services(request).settings.base_url
    result = await read(request, lambda s: [channels.public(c, base) for c in channels.list_all(s)])
    return JSONResponse({"channels": result})


async def get_channel(request: Request) -> Response:
    channel_id = _path_id(request)
    base = services(request).settings.base_url
    return JSONResponse(
        await read(request, lambda s: channels.public(channels.get(s, channel_id), base))
    )


async def update_channel(request: Request) -> Response:
    channel_id = _path_id(request)
    base = services(request).settings.base_url
    networks = services(request).settings.relay_private_networks

    def work(session: Session, body: Any) -> dict[str, Any]:
        channel = channels.update(session, channels.get(session, channel_id), body, networks)
        return channels.public(channel, base)

    return JSONResponse(await write(request, work))


def _path_id(request: Request) -> int:
    raw = request.path_params["id"]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise Invalid("must be a numeric id", field="id")
    return int(raw)


# links ------------------------------------------------------------------------------------------


async def create_link(request: Request) -> Response:
    base = services(request).settings.base_url
    result = await write(
        request, lambda s, body: links.public(links.create(s, links.parse(body)), base)
    )
    return JSONResponse(
        result, status_code=201, headers={"location": f"/api/v1/links/{result['code']}"}
    )


async def create_links(request: Request) -> Response:
    base = services(request).settings.base_url

    def work(session: Session, body: Any) -> list[dict[str, Any]]:
        specs, errors = links.parse_batch(body)
        return [links.public(ln, base) for ln in links.create_many(session, specs, errors)]

    result = await write(request, work)
    return JSONResponse({"links": result}, status_code=201)


async def list_links(request: Request) -> Response:
    base = services(request).settings.base_url

    def work(session: Session) -> dict[str, Any]:
        limit = _limit(request)
        before = _cursor(request)
        campaign = fields.text(dict(request.query_params), "campaign", max_length=100)
        rows = links.page(session, limit, before, campaign)
        return {
            "links": [links.public(ln, base) for ln in rows],
            "next_before": rows[-1].id if len(rows) == limit else None,
        }

    return JSONResponse(await read(request, work))


async def get_link(request: Request) -> Response:
    code = request.path_params["code"]
    base = services(request).settings.base_url
    return JSONResponse(await read(request, lambda s: links.public(links.get(s, code), base)))


async def update_link(request: Request) -> Response:
    code = request.path_params["code"]
    svc = services(request)

    def work(session: Session, body: Any) -> dict[str, Any]:
        return links.public(
            links.update(session, links.get(session, code), body), svc.settings.base_url
        )

    result = await write(request, work)
    svc.links.forget(result["code"])
    return JSONResponse(result)


async def link_history(request: Request) -> Response:
    code = request.path_params["code"]

    def work(session: Session) -> list[dict[str, Any]]:
        return [
            {"version": r.version, "changed_at": r.changed_at.isoformat(), "link": r.snapshot}
            for r in links.revisions(session, links.get(session, code))
        ]

    return JSONResponse({"revisions": await read(request, work)})


# placements and stats ---------------------------------------------------------------------------


async def list_placements(request: Request) -> Response:
    def work(session: Session) -> list[dict[str, Any]]:
        campaign = fields.text(dict(request.query_params), "campaign", max_length=100)
        return [placements.public(p) for p in placements.list_all(session, campaign)]

    result = await read(request, work)
    return JSONResponse({"placements": result})


async def settle_late_clicks(request: Request) -> None:
    """Attribute starts whose click reached the database after them (the click spool lags by
    milliseconds), so numbers are right even before the drainer's own call. Writes only when
    there is something to attribute."""
    db = services(request).db

    def run() -> None:
        with db.reader() as session:
            waiting = optins.resolvable(session)
        if waiting:
            with db.writer.begin() as session:
                optins.resolve_pending(session, waiting)

    await run_in_threadpool(run)


async def get_stats(request: Request) -> Response:
    def work(session: Session) -> dict[str, Any]:
        query = stats.parse(request.query_params)
        return {
            "group_by": query.group_by,
            "attribution": query.attribution,
            "rows": stats.funnel(session, query),
        }

    await settle_late_clicks(request)  # idempotent and cheap; safe before authentication
    return JSONResponse(await read(request, work))


async def openapi(request: Request) -> Response:
    return JSONResponse(document(services(request).settings.base_url))


routes = [
    Route("/openapi.json", openapi, methods=["GET"]),
    Route("/channels", list_channels, methods=["GET"]),
    Route("/channels", create_channel, methods=["POST"]),
    Route("/channels/{id}", get_channel, methods=["GET"]),
    Route("/channels/{id}", update_channel, methods=["PATCH"]),
    Route("/links", list_links, methods=["GET"]),
    Route("/links", create_link, methods=["POST"]),
    Route("/links/batch", create_links, methods=["POST"]),
    Route("/links/{code}", get_link, methods=["GET"]),
    Route("/links/{code}", update_link, methods=["PATCH"]),
    Route("/links/{code}/revisions", link_history, methods=["GET"]),
    Route("/placements", list_placements, methods=["GET"]),
    Route("/stats", get_stats, methods=["GET"]),
]
