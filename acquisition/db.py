"""Engine and sessions for SQLite (WAL, foreign keys, busy timeout) and PostgreSQL; migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from acquisition import bundled
from acquisition.config import Settings

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

ALEMBIC_DIR = bundled("alembic", "env.py")
# Wait for a busy writer rather than fail; connections are shared across threads by the pool.
SQLITE_CONNECT = {"timeout": 30, "check_same_thread": False}


@dataclass(frozen=True)
class Database:
    """The engine plus two session factories.

    `writer` sessions take SQLite's write lock at BEGIN (BEGIN IMMEDIATE), so a read-then-write
    transaction never fails with "database is locked" half-way; `reader` sessions stay deferred so
    a long dashboard query does not hold up clicks. On PostgreSQL the two are the same.
    """

    engine: Engine
    writer: sessionmaker[Session]
    reader: sessionmaker[Session]

    def dispose(self) -> None:
        self.engine.dispose()


def connect(settings: Settings) -> Database:
    if settings.is_sqlite:
        engine = create_engine(
            settings.database_url,
            connect_args=SQLITE_CONNECT,
            pool_size=settings.pool_size,
            max_overflow=settings.pool_size,
            pool_timeout=settings.pool_timeout,
        )
        _tune_sqlite(engine)
        reader_engine = engine.execution_options(sqlite_deferred=True)
        return Database(
            engine,
            sessionmaker(engine, expire_on_commit=False),
            sessionmaker(reader_engine, expire_on_commit=False),
        )
    engine = create_engine(
        settings.database_url,
        pool_size=settings.pool_size,
        max_overflow=settings.pool_size,
        pool_timeout=settings.pool_timeout,
        pool_pre_ping=True,
    )
    factory = sessionmaker(engine, expire_on_commit=False)
    return Database(engine, factory, factory)


def uncached(engine: Engine) -> Engine | None:
    """A second engine on the same SQLite file whose connections keep no prepared statements.

    For statements that each run once: the click drain's multi-row inserts compile to megabytes,
    and a connection's statement cache would keep the last 128 of them. None where there is no
    such file (an in-memory database) and for PostgreSQL.
    """
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        return None
    bulk = create_engine(
        engine.url,
        connect_args={**SQLITE_CONNECT, "cached_statements": 0},
        pool_size=1,
        max_overflow=2,
    )
    _tune_sqlite(bulk)
    return bulk


def _tune_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN below is ours.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=FULL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Any) -> None:
        if connection.get_execution_options().get("sqlite_deferred"):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")


def migrate(engine: Engine) -> None:
    """Apply every pending Alembic revision (the only way the schema changes)."""
    from alembic import command

    with schema_change(engine) as connection:
        command.upgrade(alembic_config(connection), "heads")


def alembic_config(connection: Connection | None = None) -> AlembicConfig:
    """Alembic's configuration for the bundled revisions; `env.py` runs them on `connection`."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


@contextmanager
def schema_change(engine: Engine) -> Iterator[Connection]:
    """A transaction to change the schema in; on SQLite, with foreign keys checked at its end.

    SQLite changes a table the migrations alter by building a new one and dropping the old
    (batch mode), and with foreign keys enforced it refuses to drop a table other rows point
    at (starts point at clicks). Its own recipe is followed: enforcement off outside the
    transaction, `PRAGMA foreign_key_check` before the commit, enforcement back on after it.
    """
    with engine.connect() as connection:
        raw = connection.connection.driver_connection if engine.dialect.name == "sqlite" else None
        if raw is not None:
            raw.execute("PRAGMA foreign_keys=OFF")  # outside a transaction, or it does nothing
        try:
            with connection.begin():
                yield connection
                if raw is not None:
                    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").all()
                    if broken:
                        raise RuntimeError(f"the schema change breaks foreign keys: {broken[:5]}")
        finally:
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=ON")
