from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, select

from acquisition.config import Settings
from acquisition.db import Database, alembic_config, connect, migrate, schema_change
from acquisition.models import Base, Click, Start
from alembic import command
from tests.conftest import DATABASES, SECRET, _postgres_database
from tests.factories import make_channel, make_link
from tests.test_optins import at, make_click, record, start


def test_migrations_build_exactly_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_every_head(database: Database) -> None:
    heads = set(ScriptDirectory.from_config(alembic_config()).get_heads())
    with database.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    assert current == heads


def test_migrating_twice_changes_nothing(database: Database) -> None:
    from acquisition.db import migrate

    migrate(database.engine)
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


@pytest.fixture(params=DATABASES)
def scratch(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """A database of its own: this test moves it to older revisions and back."""
    if request.param == "sqlite":
        urls: Iterator[str] = iter([f"sqlite:///{tmp_path / 'scratch.db'}"])
    else:
        urls = _postgres_database()
    url = next(urls)
    db = connect(Settings(database_url=url, secret_key=SECRET))
    migrate(db.engine)
    try:
        yield db
    finally:
        db.dispose()
        for _ in urls:  # drops the PostgreSQL database
            pass


def _to(db: Database, revision: str) -> None:
    with schema_change(db.engine) as conn:
        move = command.upgrade if revision == "heads" else command.downgrade
        move(alembic_config(conn), revision)


def _clicks_foreign_keys(db: Database) -> set[str]:
    with db.engine.connect() as conn:
        return {fk["referred_table"] for fk in inspect(conn).get_foreign_keys("clicks")}


def test_the_click_migrations_step_back_and_forth_keeping_clicks_and_their_starts(
    scratch: Database,
) -> None:
    """0007 and 0008 rebuild `clicks` on SQLite while starts point at its rows."""
    channel = make_channel(scratch)
    link = make_link(scratch, [channel.id])
    ref = make_click(scratch, link, channel.id, source="flyer")
    record(scratch, channel, start(1, at(1), ref))

    def rows() -> list[tuple[Any, ...]]:
        with scratch.engine.connect() as conn:
            return [
                tuple(row)
                for row in conn.execute(
                    select(Click.id, Click.ref, Click.source, Start.click_id).join(
                        Start, Start.ref == Click.ref
                    )
                )
            ]

    before = rows()
    assert len(before) == 1 and before[0][0] == before[0][3]
    assert _clicks_foreign_keys(scratch) == set()
    _to(scratch, "0006")
    assert _clicks_foreign_keys(scratch) == {"links", "channels"}
    assert rows() == before
    _to(scratch, "heads")
    assert _clicks_foreign_keys(scratch) == set()
    assert rows() == before
