"""Alembic environment: the connection is handed in by acquisition.db.migrate (or built from
ACQUISITION_DATABASE_URL for the plain `alembic` command)."""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import Connection

from acquisition.models import Base, UTCDateTime
from alembic import context

config = context.config
target_metadata = Base.metadata


def render_item(type_: str, obj: Any, autogen_context: Any) -> str | Literal[False]:
    """Render our UTC type as its plain impl, so revisions don't import application code."""
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def run(connection: Connection) -> None:
    context.configure(
        render_item=render_item,
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    from acquisition.config import Settings
    from acquisition.db import connect, schema_change

    database = connect(Settings.from_env())
    with schema_change(database.engine) as conn:
        run(conn)
