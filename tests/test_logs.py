"""Structured logs: one JSON object per line, one access line per request with its request id,
and no client address but the anonymised network."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from acquisition import logs
from tests.conftest import BASE_URL


@pytest.fixture
def lines() -> Iterator[io.StringIO]:
    """The acquisition loggers configured as `serve` does, writing JSON into a buffer."""
    buffer = io.StringIO()
    handler = logging.StreamHandler(buffer)
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("acquisition")
    saved = (logger.handlers[:], logger.level, logger.propagate, logs.ACCESS.level)
    logger.handlers[:] = [handler]
    logger.setLevel(logging.INFO)
    logger.propagate = False
    logs.ACCESS.setLevel(logging.INFO)
    yield buffer
    logger.handlers[:], logger.level, logger.propagate, logs.ACCESS.level = saved


def records(buffer: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_every_request_gets_one_access_line_without_the_address(
    client: TestClient, lines: io.StringIO
) -> None:
    visitor = TestClient(client.app, base_url=BASE_URL, client=("203.0.113.77", 5000))
    r = visitor.get("/ZZZZZZZ?gclid=secret-click-id")
    assert r.status_code == 404
    request_id = r.headers["x-request-id"]
    [line] = [x for x in records(lines) if x["logger"] == "acquisition.access"]
    assert line["method"] == "GET" and line["route"] == "/{code}" and line["status"] == 404
    assert line["path"] == "/ZZZZZZZ"
    assert line["request_id"] == request_id
    assert line["client"] == "203.0.113.0"
    assert isinstance(line["duration_ms"], float)
    text = lines.getvalue()
    assert "203.0.113.77" not in text and "secret-click-id" not in text


def test_a_well_formed_request_id_is_kept_and_a_hostile_one_replaced(
    client: TestClient, lines: io.StringIO
) -> None:
    kept = client.get("/healthz", headers={"x-request-id": "lb-1234.abc"})
    assert kept.headers["x-request-id"] == "lb-1234.abc"
    hostile = client.get("/healthz", headers={"x-request-id": 'x" injected\\n{"level":"error"'})
    assert hostile.headers["x-request-id"] != 'x" injected'
    assert all(isinstance(x, dict) for x in records(lines))  # still one JSON object per line


def test_lines_written_while_handling_carry_the_request_id(lines: io.StringIO) -> None:
    token = logs.REQUEST_ID.set("req-42")
    try:
        logging.getLogger("acquisition.something").warning("the database is down", extra={"n": 3})
    finally:
        logs.REQUEST_ID.reset(token)
    [line] = records(lines)
    assert line == {
        "time": line["time"],
        "level": "warning",
        "logger": "acquisition.something",
        "message": "the database is down",
        "request_id": "req-42",
        "n": 3,
    }


def test_an_exception_is_logged_inside_its_json_line(lines: io.StringIO) -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("acquisition.x").exception("unhandled")
    [line] = records(lines)
    assert "ValueError: boom" in str(line["error"])


def test_the_serve_config_is_valid_and_picks_text_for_a_terminal() -> None:
    as_json = logs.config(json_lines=True)
    as_text = logs.config(json_lines=False, access_log=False)
    assert as_json["formatters"]["default"]["()"].endswith("JsonFormatter")
    assert as_text["formatters"]["default"]["()"].endswith("TextFormatter")
    assert as_text["loggers"]["acquisition.access"]["level"] == "WARNING"
    formatted = logs.TextFormatter().format(
        logging.makeLogRecord({"msg": "hello", "levelname": "INFO"})
    )
    assert "hello" in formatted
