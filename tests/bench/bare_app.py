"""The baseline for the redirect benchmark: a bare Starlette app answering a fixed 302."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def fixed(_request: Request) -> Response:
    return Response(
        status_code=302,
        headers={
            "location": "https://t.me/shop_bot?start=K7Q2XP9M3TZB",
            "cache-control": "no-store",
        },
    )


app = Starlette(routes=[Route("/{code}", fixed, methods=["GET", "HEAD"])])
