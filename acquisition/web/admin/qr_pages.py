"""A link's page: its short URL and details, and the QR designer (size, DPI, colours, error
correction, quiet zone, caption, logo upload; a live preview; SVG, PNG and PDF downloads)."""

from __future__ import annotations

import base64
from typing import Any
from urllib.parse import urlencode

from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from acquisition import links, qr
from acquisition.errors import Invalid, NotFound
from acquisition.models.accounts import User
from acquisition.web.admin import pages, security
from acquisition.web.admin.link_pages import link_row

QR_FIELDS = ("size_mm", "dpi", "ec", "fg", "bg", "quiet", "caption")
QR_DEFAULTS = {
    "size_mm": "50",
    "dpi": "300",
    "ec": "M",
    "fg": "#000000",
    "bg": "#FFFFFF",
    "quiet": "4",
    "caption": "",
}


async def _link(request: Request) -> dict[str, Any] | None:
    base = request.app.state.services.settings.base_url
    code = request.path_params["code"]

    def work(session: Session) -> dict[str, Any] | None:
        try:
            return link_row(links.get(session, code), base)
        except NotFound:
            return None

    return await pages.reading(request, work)


def _qr_query(values: dict[str, str]) -> str:
    return urlencode({k: v for k, v in values.items() if v not in ("", None)})


def _detail(
    request: Request,
    link: dict[str, Any],
    qr_form: pages.Form | None = None,
    preview: str | None = None,
    status: int = 200,
) -> Response:
    qr_form = qr_form or pages.Form(values=dict(QR_DEFAULTS))
    values = {k: str(qr_form.get(k, QR_DEFAULTS[k])) for k in QR_FIELDS}
    query = _qr_query({k: v for k, v in values.items() if v != QR_DEFAULTS[k] or k == "size_mm"})
    return pages.render(
        request,
        "admin/link.html",
        status=status,
        link=link,
        qr_form=qr_form,
        qr_query=query,
        preview=preview or f"/{link['code']}.svg?{query}",
        limits={
            "size": (qr.MIN_SIZE_MM, qr.MAX_SIZE_MM),
            "dpi": (qr.MIN_DPI, qr.MAX_DPI),
            "quiet": (qr.MIN_QUIET, qr.MAX_QUIET),
            "caption": qr.MAX_CAPTION,
            "logo": qr.LOGO_MAX_BYTES // (1024 * 1024),
        },
    )


@pages.page
async def detail(request: Request, user: User) -> Response:
    link = await _link(request)
    if link is None:
        return pages.render(request, "admin/error.html", status=404, message="No such link.")
    return _detail(request, link)


async def _logo(form: FormData) -> bytes | None:
    upload = form.get("logo")
    if isinstance(upload, UploadFile):
        data = await upload.read(qr.LOGO_MAX_BYTES + 1)
        return data or None
    return None


@pages.page
async def qr_file(request: Request, user: User) -> Response:
    """The designer's form: preview (the page again, or JSON for the live preview) or a file
    to download in the chosen format, with the uploaded logo if any."""
    link = await _link(request)
    if link is None:
        return pages.render(request, "admin/error.html", status=404, message="No such link.")
    form = await pages.read_form(request)
    values = {k: str(form.get(k) or "").strip() for k in QR_FIELDS}
    params = {k: v for k, v in values.items() if v and k != "caption"}
    if values["caption"]:
        params["caption"] = values["caption"]
    asked = str(form.get("format") or "svg")
    fmt: qr.Format = "png" if asked == "png" else "pdf" if asked == "pdf" else "svg"
    wants_json = "application/json" in request.headers.get("accept", "")
    shown = pages.Form(values=values)
    try:
        logo = await _logo(form)
        if fmt != "png" or form.get("action") == "preview":
            params.pop("dpi", None)  # the dpi only limits PNGs
        options = qr.parse_options(params, logo)
        data = links.qr_url(request.app.state.services.settings.base_url, link["code"])
        action_preview = form.get("action") == "preview"
        body = await run_in_threadpool(qr.render, data, "svg" if action_preview else fmt, options)
    except Invalid as error:
        shown.fail(error)
        if wants_json:
            return JSONResponse({"ok": False, "errors": shown.errors}, headers=security.HEADERS)
        return _detail(request, link, shown, status=422)
    if action_preview:
        src = "data:image/svg+xml;base64," + base64.b64encode(body).decode()
        if wants_json:
            return JSONResponse({"ok": True, "src": src}, headers=security.HEADERS)
        return _detail(request, link, shown, preview=src)
    size = f"{options.size_mm:g}mm"
    return Response(
        body,
        media_type=qr.MEDIA_TYPES[fmt],
        headers={
            **security.HEADERS,
            "content-disposition": f'attachment; filename="{link["code"]}-{size}.{fmt}"',
        },
    )
