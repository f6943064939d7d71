"""Shared fixtures: every database test runs on SQLite and on PostgreSQL, schema built by the
migrations; rows are deleted after each test so that a real server process sees the same state.

PostgreSQL is required: set ACQUISITION_TEST_DATABASES=sqlite to run on SQLite alone (locally).
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, delete, text
from sqlalchemy.engine import make_url
from starlette.testclient import TestClient

from acquisition import apikeys
from acquisition.config import Settings
from acquisition.db import Database, connect, migrate
from acquisition.models import Base
from acquisition.web.app import create_app

POSTGRES_URL = os.environ.get(
    "ACQUISITION_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
DATABASES = [
    name.strip()
    for name in os.environ.get("ACQUISITION_TEST_DATABASES", "sqlite,postgresql").split(",")
    if name.strip()
]
BASE_URL = "https://go.example.com"
SECRET = "test-secret-key-0123456789"


def _postgres_database() -> Iterator[str]:
    """A fresh database per test session, so parallel runs never see each other's rows."""
    admin = create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    name = f"acq_test_{os.getpid()}_{secrets.token_hex(3)}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as error:
        raise RuntimeError(
            f"PostgreSQL is not reachable at {POSTGRES_URL} ({error.__class__.__name__}); "
            "start it, or set ACQUISITION_TEST_DATABASES=sqlite to test on SQLite alone"
        ) from error
    try:
        yield make_url(POSTGRES_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def inside_a_minute() -> None:
    """Wait for the turn of the clock's minute if it is near. The rate limiter's windows are
    the clock's minutes, and it rounds the previous minute's share of a count down: requests
    that straddle the turn may get one more through. Tests of an exact limit start well inside
    a minute, so that they see the limit itself."""
    if time.time() % 60 > 45:
        time.sleep(60.5 - time.time() % 60)


@pytest.fixture(scope="session", params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    if request.param == "sqlite":
        path: Path = tmp_path_factory.mktemp("db") / "test.db"
        yield f"sqlite:///{path}"
    elif request.param == "postgresql":
        yield from _postgres_database()
    else:
        raise ValueError(f"unknown test database {request.param!r}")


@pytest.fixture(scope="session")
def settings(database_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        base_url=BASE_URL,
        secret_key=SECRET,
        link_cache_seconds=0,
        # The relay tests' bot backend listens on this host.
        relay_private_networks=(ipaddress.ip_network("127.0.0.0/8"),),
    )


@pytest.fixture(scope="session")
def database(settings: Settings) -> Iterator[Database]:
    db = connect(settings)
    migrate(db.engine)
    yield db
    db.dispose()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    yield database
    with database.engine.begin() as conn:
        for table in reversed(Base.metadata.sorted_tables):
            conn.execute(delete(table))


@pytest.fixture
def session(db: Database) -> Iterator[Any]:
    with db.writer() as s:
        yield s
        s.rollback()


@pytest.fixture
def client(settings: Settings, db: Database, tmp_path: Path) -> Iterator[TestClient]:
    app = create_app(replace(settings, spool_dir=str(tmp_path / "spool")), db)
    with TestClient(app, base_url=BASE_URL, follow_redirects=False) as test_client:
        yield test_client


@pytest.fixture
def api_key(db: Database) -> str:
    with db.writer.begin() as s:
        _key, token = apikeys.create(s, "tests")
    return token


@pytest.fixture
def api(client: TestClient, api_key: str) -> TestClient:
    """The test client with an API key in every request."""
    client.headers["authorization"] = f"Bearer {api_key}"
    return client


def drained(client: TestClient) -> None:
    """Wait until every click the app acknowledged has left the spool for the database."""
    assert client.app.state.services.clicks.wait_drained(timeout=10)  # type: ignore[attr-defined]


def count(db: Database, table: Any) -> int:
    from sqlalchemy import func, select

    with db.reader() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)
