"""Logs of `acquisition serve`: one JSON object per line (plain text on a terminal), one access
line per request with method, route, status, duration and request id.

Addresses appear only anonymised (the /24 or /48 network, as stored with clicks); query strings
are never logged (they carry click ids and UTM values). Every line written while a request is
handled carries its request id, taken from a well-formed X-Request-ID header (a load
balancer's) or made here, and sent back in the response's X-Request-ID.
"""

from __future__ import annotations

import contextvars
import itertools
import json
import logging
import os
import re
import sys
import time
from collections.abc import MutableMapping
from datetime import UTC, datetime
from typing import Any

from acquisition import metrics, visitors
from acquisition.config import Network

ACCESS = logging.getLogger("acquisition.access")
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
_GOOD_ID = re.compile(rb"[A-Za-z0-9._:-]{1,64}")
# Attributes every LogRecord has; anything else was passed with `extra=` and is logged as a field.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "color_message"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                line[key] = value
        if record.exc_info:
            line["error"] = self.formatException(record.exc_info)
        return json.dumps(line, ensure_ascii=False, default=str)


class TextFormatter(logging.Formatter):
    """For a person at a terminal: the same facts, one readable line."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = time.strftime("%H:%M:%S", time.localtime(record.created))
        text = f"{stamp} {record.levelname:<7} {record.name}: {record.getMessage()}"
        request_id = REQUEST_ID.get()
        if request_id is not None and record.name != ACCESS.name:
            text += f" [{request_id}]"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def config(
    level: str = "INFO", access_log: bool = True, json_lines: bool | None = None
) -> dict[str, Any]:
    """A logging dictConfig for uvicorn (it applies it in every worker process)."""
    if json_lines is None:
        json_lines = not sys.stderr.isatty()
    formatter = JsonFormatter if json_lines else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {
            "default": {
                "class": "logging.StreamHandler",
                "formatter": "default",
                "stream": "ext://sys.stderr",
            }
        },
        "loggers": {
            "uvicorn": {"handlers": ["default"], "level": level, "propagate": False},
            "uvicorn.error": {"level": level},
            # Ours replaces it: uvicorn's line has the raw client address and the query string.
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "acquisition": {"handlers": ["default"], "level": level, "propagate": False},
            ACCESS.name: {"level": level if access_log else "WARNING"},
        },
        "root": {"handlers": ["default"], "level": "WARNING"},
    }


_PREFIX = os.urandom(3).hex()  # per process: ids stay unique across workers
_COUNTER = itertools.count(1)


def request_id(scope: MutableMapping[str, Any]) -> str:
    """A load balancer's well-formed X-Request-ID, or a new one."""
    given = next((v for n, v in scope["headers"] if n == b"x-request-id"), None)
    if given is not None and _GOOD_ID.fullmatch(given):
        return given.decode()
    return f"{_PREFIX}{next(_COUNTER):x}"


class AccessLog:
    """Pure-ASGI middleware: sets the request id, and logs one line when the answer is sent."""

    def __init__(self, app: Any, trusted: tuple[Network, ...] = ()) -> None:
        self.app = app
        self.trusted = trusted

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = request_id(scope)
        token = REQUEST_ID.set(rid)
        start = time.perf_counter()
        status = 500
        sent = 0

        async def watch(message: dict[str, Any]) -> None:
            nonlocal status, sent
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []), (b"x-request-id", rid.encode())]
            elif message["type"] == "http.response.body":
                sent += len(message.get("body", b""))
            await send(message)

        try:
            await self.app(scope, receive, watch)
        finally:
            access(scope, status, sent, time.perf_counter() - start, self.trusted)
            REQUEST_ID.reset(token)


def access(
    scope: MutableMapping[str, Any],
    status: int,
    sent: int,
    took: float,
    trusted: tuple[Network, ...],
) -> None:
    """The access line of one answer (when access logging is on)."""
    if not ACCESS.isEnabledFor(logging.INFO):
        return
    route = metrics.route_template(scope)
    method = scope["method"] if scope["method"] in metrics.METHODS else "other"
    ACCESS.info(
        "%s %s %d %.1fms",
        method,
        route,
        status,
        took * 1000,
        extra={
            "method": method,
            "route": route,
            "path": scope["path"][:200],
            "status": status,
            "duration_ms": round(took * 1000, 2),
            "bytes": sent,
            "client": visitors.anonymize(visitors.scope_ip(scope, trusted)),
        },
    )
