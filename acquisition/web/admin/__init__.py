"""The marketer's web UI at /admin: server-rendered pages (Jinja2 templates in
templates/admin/, vendored static files in static/admin/), English and Russian, a signed session
cookie, CSRF tokens on every form and a strict CSP. See security.py for the protections."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route

from acquisition.config import Settings
from acquisition.models.accounts import User
from acquisition.web.admin import (
    auth,
    channel_pages,
    link_pages,
    overview,
    pages,
    qr_pages,
    security,
    subscriber_pages,
    widget_pages,
)


async def _bare(request: Request) -> Response:
    return RedirectResponse("/admin/", status_code=308)


@pages.page
async def _missing(request: Request, user: User) -> Response:
    return pages.render(request, "admin/error.html", status=404, message="No such page.")


ROUTES = [
    Route("/", overview.show, methods=["GET"]),
    Route("/live", overview.live, methods=["GET"]),
    Route("/export.csv", overview.export, methods=["GET"]),
    Route("/login", auth.login_form, methods=["GET"]),
    Route("/login", auth.login, methods=["POST"]),
    Route("/logout", auth.logout, methods=["POST"]),
    Route("/lang/{lang}", auth.language, methods=["GET"]),
    Route("/channels", channel_pages.index, methods=["GET"]),
    Route("/channels/new", channel_pages.new, methods=["GET"]),
    Route("/channels/new", channel_pages.create, methods=["POST"]),
    Route("/channels/{id}", channel_pages.detail, methods=["GET"]),
    Route("/channels/{id}", channel_pages.update, methods=["POST"]),
    Route("/links", link_pages.index, methods=["GET"]),
    Route("/links.csv", link_pages.export, methods=["GET"]),
    Route("/links/new", link_pages.new, methods=["GET"]),
    Route("/links/new", link_pages.create, methods=["POST"]),
    Route("/links/bulk", link_pages.bulk_form, methods=["GET"]),
    Route("/links/bulk", link_pages.bulk_create, methods=["POST"]),
    Route("/links/{code}", qr_pages.detail, methods=["GET"]),
    Route("/links/{code}/qr", qr_pages.qr_file, methods=["POST"]),
    Route("/widgets", widget_pages.index, methods=["GET"]),
    Route("/widgets/new", widget_pages.new, methods=["GET"]),
    Route("/widgets/new", widget_pages.create, methods=["POST"]),
    Route("/widgets/preview.js", widget_pages.preview_script, methods=["GET"]),
    Route("/widgets/preview", widget_pages.preview_target, methods=["GET"]),
    Route("/widgets/sample-qr.svg", widget_pages.sample_qr, methods=["GET"]),
    Route("/widgets/{id}", widget_pages.detail, methods=["GET"]),
    Route("/widgets/{id}", widget_pages.update, methods=["POST"]),
    Route("/subscribers", subscriber_pages.index, methods=["GET"]),
    Route("/subscribers.csv", subscriber_pages.export, methods=["GET"]),
    Route("/consent.csv", subscriber_pages.ledger, methods=["GET"]),
    Route("/subscribers/{id}", subscriber_pages.detail, methods=["GET"]),
    Route("/subscribers/{id}/erase", subscriber_pages.erase_form, methods=["GET"]),
    Route("/subscribers/{id}/erase", subscriber_pages.erase, methods=["POST"]),
    Route("/{path:path}", _missing, methods=["GET"]),
]


def routes(settings: Settings) -> list[Route | Mount]:
    """`/admin` (to `/admin/`) and the mounted pages, with the session cookie on them only.
    Goes before the short-link routes: `/admin` is one segment, like a code."""
    return [
        Route("/admin", _bare, methods=["GET", "HEAD"]),
        Mount("/admin", routes=ROUTES, middleware=[security.session_middleware(settings)]),
    ]
