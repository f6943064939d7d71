"""A link's QR code for print: `GET /{code}.svg|.png|.pdf` (public, cacheable), the same with an
uploaded logo (`POST /api/v1/links/{code}/qr`), and a ZIP of codes for a whole campaign
(`POST /api/v1/qr/batch`), streamed as it is drawn.

Codes encode `links.qr_url`: the short URL upper-cased (alphanumeric mode, a smaller symbol) on
the `/Q/` path, which the redirect records as `via="qr"`. A disabled or expired link still gets
its image: the print shop may be reprinting, and the redirect itself tells visitors the link is
over; the answer says so in `X-Link-State`.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable
from typing import Any

import anyio
import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from acquisition import links, qr, qrbatch, qrzip
from acquisition.errors import Invalid, Malformed, NotFound
from acquisition.models import utcnow
from acquisition.web.api import parse_json, read
from acquisition.web.redirect import services

PUBLIC_CACHE = "public, max-age=86400"
# The SVG is ours (caption escaped), but it is served from our origin: let it run nothing.
SVG_CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
RENDERS = os.cpu_count() or 2  # renders at once per worker process
MAX_FORM_FIELDS = 16
FORM_KEYS = {"format", *qrbatch.OPTION_KEYS}
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


def _file_headers(code: str, fmt: str, options: qr.QrOptions, tag: str) -> dict[str, str]:
    headers = {
        "etag": tag,
        "content-disposition": f'inline; filename="{code}-{options.size_mm:g}mm.{fmt}"',
    }
    if fmt == "svg":
        headers["content-security-policy"] = SVG_CSP
    return headers


def _matches(if_none_match: str | None, tag: str) -> bool:
    """RFC 9110 If-None-Match: `*` or any listed tag, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == tag:
            return True
    return False


async def image(request: Request, fmt: qr.Format) -> Response:
    """The link's code in the format its extension names, drawn as the query asks."""
    options = qr.parse_options(request.query_params)  # before any lookup: 422 names the param
    svc = services(request)
    target = await svc.links.get(request.path_params["code"])
    if target is None:
        raise NotFound(f"no link with code {request.path_params['code'][:40]!r}", field="code")
    data = links.qr_url(svc.settings.base_url, target.code)
    tag = qr.etag(data, fmt, options)
    headers = {"cache-control": PUBLIC_CACHE, **_file_headers(target.code, fmt, options, tag)}
    state = target.state(utcnow())
    if state != "active":
        headers["x-link-state"] = state
    if _matches(request.headers.get("if-none-match"), tag):
        return Response(status_code=304, headers=headers)
    body = await _render(request, qr.render_cached, data, fmt, options)
    return Response(body, media_type=qr.MEDIA_TYPES[fmt], headers=headers)


async def _render(
    request: Request,
    renderer: Callable[[str, qr.Format, qr.QrOptions], bytes],
    data: str,
    fmt: qr.Format,
    options: qr.QrOptions,
) -> bytes:
    """Render in a worker thread (the mask choice and big PNGs are CPU work), at most one per
    core at a time: a 12000 px PNG holds ~150 MB while drawn, and requests waiting here hold no
    slot of the threadpool the redirect's lookups use."""
    limiter = getattr(request.app.state, "qr_renders", None)
    if limiter is None:
        limiter = request.app.state.qr_renders = anyio.CapacityLimiter(RENDERS)
    return await anyio.to_thread.run_sync(renderer, data, fmt, options, limiter=limiter)


# --------------------------------------------------------------------------- API: logo, batch


def _content_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


async def _form(request: Request) -> tuple[dict[str, str], bytes | None]:
    """Text fields and the uploaded `logo` of a multipart body (the only file accepted)."""
    try:
        form = await request.form(max_files=1, max_fields=MAX_FORM_FIELDS)
    except HTTPException as error:
        raise Malformed(
            f"the multipart body could not be read: {error.detail}", field="body"
        ) from None
    try:
        params: dict[str, str] = {}
        logo = None
        for key, value in form.multi_items():
            if isinstance(value, UploadFile):
                if key != "logo":
                    raise Invalid("only the logo may be a file", field=key)
                logo = await value.read(qr.LOGO_MAX_BYTES + 1)  # qr refuses anything longer
            elif key == "logo":
                raise Invalid(
                    "logo must be an uploaded image file (PNG, JPEG or WebP), never a URL",
                    field="logo",
                )
            else:
                params[key] = value
    finally:
        await form.close()
    return params, logo


def _unknown(keys: Any, allowed: set[str]) -> None:
    extra = sorted(key for key in keys if key not in allowed)
    if extra:
        raise Invalid("unknown field", field=extra[0])


async def link_qr(request: Request) -> Response:
    """The link's code with an uploaded logo (multipart) or with options sent as JSON."""
    svc = services(request)
    code = await read(request, lambda s: links.get(s, request.path_params["code"]).code)
    if _content_type(request) in FORM_TYPES:
        params, logo = await _form(request)
        _unknown(params, FORM_KEYS)
    else:
        body = parse_json(request, await request.body())
        if not isinstance(body, dict):
            raise Invalid("must be a JSON object", field="body")
        _unknown(body, FORM_KEYS)
        params, logo = qrbatch.option_params(body), None
        if "format" in body:
            params["format"] = body["format"]
    fmt = qrbatch.parse_format(params.pop("format", qrbatch.DEFAULT_FORMAT))
    options = qr.parse_options(params, logo)
    data = links.qr_url(svc.settings.base_url, code)
    # Not render_cached: the cache bounds the files it keeps, not the logos in its keys.
    body_bytes = await _render(request, qr.render, data, fmt, options)
    headers = _file_headers(code, fmt, options, qr.etag(data, fmt, options))
    headers["content-disposition"] = headers["content-disposition"].replace("inline", "attachment")
    headers["cache-control"] = "no-store"
    return Response(body_bytes, media_type=qr.MEDIA_TYPES[fmt], headers=headers)


async def _batch_body(request: Request) -> tuple[Any, bytes | None]:
    if _content_type(request) not in FORM_TYPES:
        return parse_json(request, await request.body()), None
    params, logo = await _form(request)
    _unknown(params, {"batch"})
    if "batch" not in params:
        raise Invalid("is required: the batch as JSON text, next to the logo file", field="batch")
    try:
        return json.loads(params["batch"]), logo
    except (ValueError, RecursionError) as error:
        raise Malformed(f"the batch field is not valid JSON: {error}", field="batch") from None


async def batch(request: Request) -> Response:
    """Create the links a campaign's placements lack, commit, then stream the ZIP of codes."""
    svc = services(request)
    base = svc.settings.base_url
    await read(request, lambda s: None)  # the API key, before the body is looked at
    data, logo = await _batch_body(request)

    def run() -> tuple[qrbatch.BatchSpec, list[qrzip.Item]]:
        with svc.db.writer.begin() as session:
            spec = qrbatch.parse(data, logo)
            return spec, qrbatch.prepare(session, spec, base)

    spec, items = await run_in_threadpool(run)
    # Committed above: the links exist before the first byte of their codes goes out.
    campaign = spec.link.utm["campaign"] if spec.link is not None else None
    name = f"{qrzip.slug(campaign) or 'qr-codes'}-{spec.fmt}.zip"
    return StreamingResponse(
        qrzip.zip_stream(items, spec.fmt, spec.options, base),
        media_type="application/zip",
        headers={
            "content-disposition": f'attachment; filename="{name}"',
            "cache-control": "no-store",
            "x-codes": str(len(items)),
            "x-codes-created": str(sum(item.created for item in items)),
        },
    )


# `/{code}` matches dots too: these go before the redirect's routes. One literal route per
# extension, so that any other dotted path (favicon.ico, robots.txt) falls through untouched.
routes = [
    Route(f"/{{code}}.{fmt}", functools.partial(image, fmt=fmt), methods=["GET", "HEAD"])
    for fmt in qrbatch.FORMATS
]
api_routes = [
    Route("/links/{code}/qr", link_qr, methods=["POST"]),
    Route("/qr/batch", batch, methods=["POST"]),
]
