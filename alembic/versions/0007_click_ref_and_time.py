"""clicks: unique on (ref, at) instead of ref alone

A ref is 60 bits, time-stamped by an 18-hour cycle, so at ten million clicks a day two clicks
months apart share one a few times a year. With the ref alone unique, the drain's conflict
clause skipped the later click: an acknowledged click lost without a word. A click's ref and
time together are unique (equal refs within one sixteenth of a second would need 2^40
clicks in it), and still make a spool replay insert nothing.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-28 00:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clicks") as batch:
        batch.drop_constraint("uq_clicks_ref", type_="unique")
        batch.create_unique_constraint("uq_clicks_ref_at", ["ref", "at"])


def downgrade() -> None:
    with op.batch_alter_table("clicks") as batch:
        batch.drop_constraint("uq_clicks_ref_at", type_="unique")
        batch.create_unique_constraint("uq_clicks_ref", ["ref"])
