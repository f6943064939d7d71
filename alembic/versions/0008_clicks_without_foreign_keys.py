"""clicks: no foreign keys to links and channels

Every stored click went through two referential checks, one per foreign key, each a lookup
and a row lock on PostgreSQL: together about half of the database's work per drained click
(tests/bench/drain_bench.py: 14-15 -> 7.5-8.5 us of backend CPU per click), and the drain
shares the machine with the redirects. What they guarded cannot happen: clicks are written
only by the drain, from links the service loaded, and links and channels are never deleted
(a link is disabled; `link_channels` and `link_revisions` still refuse a link's deletion by
hand). The indexes that joins use stay.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28 03:00:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clicks") as batch:
        batch.drop_constraint("fk_clicks_link_id_links", type_="foreignkey")
        batch.drop_constraint("fk_clicks_channel_id_channels", type_="foreignkey")


def downgrade() -> None:
    with op.batch_alter_table("clicks") as batch:
        batch.create_foreign_key("fk_clicks_link_id_links", "links", ["link_id"], ["id"])
        batch.create_foreign_key("fk_clicks_channel_id_channels", "channels", ["channel_id"], ["id"])
