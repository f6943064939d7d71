from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory

from acquisition.db import ALEMBIC_DIR, Database
from acquisition.models import Base


def test_migrations_build_exactly_the_models(database: Database) -> None:
    with database.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        diff = compare_metadata(context, Base.metadata)
    assert diff == []


def test_database_is_at_every_head(database: Database) -> None:
    config = Config()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    heads = set(ScriptDirectory.from_config(config).get_heads())
    with database.engine.connect() as conn:
        current = set(MigrationContext.configure(conn).get_current_heads())
    assert current == heads


def test_migrating_twice_changes_nothing(database: Database) -> None:
    from acquisition.db import migrate

    migrate(database.engine)
    with database.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []
