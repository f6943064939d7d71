"""One error shape for the whole API: RFC 9457 problem details naming the bad fields."""

from __future__ import annotations

import json
import logging

from sqlalchemy.exc import OperationalError, TimeoutError
from starlette.requests import Request
from starlette.responses import Response

from acquisition.errors import AcquisitionError

log = logging.getLogger(__name__)

RETRY_AFTER = "5"


def problem(
    status: int,
    title: str,
    detail: str,
    code: str,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body = {"type": f"/problems/{code}", "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return Response(
        json.dumps(body, ensure_ascii=False),
        status_code=status,
        media_type="application/problem+json",
        headers=headers,
    )


def from_error(error: AcquisitionError) -> Response:
    headers = {"Retry-After": RETRY_AFTER} if error.status == 503 else None
    if error.status == 401:
        headers = {"WWW-Authenticate": 'Bearer realm="api"'}
    return problem(
        error.status,
        error.title,
        error.message,
        error.code,
        [{"field": e.field, "message": e.message} for e in error.errors],
        headers,
    )


async def domain_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AcquisitionError)
    return from_error(exc)


async def store_unavailable(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, OperationalError | TimeoutError)
    return store_unavailable_response(exc)


def store_unavailable_response(exc: Exception) -> Response:
    """The database is down or the pool is exhausted: ask the caller to retry, quickly."""
    log.warning("store unavailable: %s", exc.__class__.__name__)
    return problem(
        503,
        "Service unavailable",
        "the database is not reachable right now; retry shortly",
        "unavailable",
        headers={"Retry-After": RETRY_AFTER},
    )


async def unexpected(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return problem(500, "Internal error", "something went wrong on our side", "internal")
