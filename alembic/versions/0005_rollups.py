"""rollups: daily_stats and weekly_stats (the dashboard's counters per day or week and key),
rollup_days (what to recompute)

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-27 03:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | Sequence[str] | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('daily_stats',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('placement_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('medium', sa.String(length=100), nullable=False),
    sa.Column('campaign', sa.String(length=100), nullable=False),
    sa.Column('content', sa.String(length=100), nullable=False),
    sa.Column('previous_day', sa.Date(), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('previews', sa.Integer(), nullable=False),
    sa.Column('bots', sa.Integer(), nullable=False),
    sa.Column('starts', sa.Integer(), nullable=False),
    sa.Column('optins_first', sa.Integer(), nullable=False),
    sa.Column('optins_last', sa.Integer(), nullable=False),
    sa.Column('optouts_first', sa.Integer(), nullable=False),
    sa.Column('optouts_last', sa.Integer(), nullable=False),
    sa.Column('matured_7d_first', sa.Integer(), nullable=False),
    sa.Column('matured_7d_last', sa.Integer(), nullable=False),
    sa.Column('retained_7d_first', sa.Integer(), nullable=False),
    sa.Column('retained_7d_last', sa.Integer(), nullable=False),
    sa.Column('matured_30d_first', sa.Integer(), nullable=False),
    sa.Column('matured_30d_last', sa.Integer(), nullable=False),
    sa.Column('retained_30d_first', sa.Integer(), nullable=False),
    sa.Column('retained_30d_last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'link_id', 'placement_id', 'channel_id', 'source', 'medium', 'campaign', 'content', 'previous_day', name=op.f('pk_daily_stats'))
    )
    op.create_table('weekly_stats',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('link_id', sa.Integer(), nullable=False),
    sa.Column('placement_id', sa.Integer(), nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('medium', sa.String(length=100), nullable=False),
    sa.Column('campaign', sa.String(length=100), nullable=False),
    sa.Column('content', sa.String(length=100), nullable=False),
    sa.Column('previous_day', sa.Date(), nullable=False),
    sa.Column('impressions', sa.Integer(), nullable=False),
    sa.Column('clicks', sa.Integer(), nullable=False),
    sa.Column('previews', sa.Integer(), nullable=False),
    sa.Column('bots', sa.Integer(), nullable=False),
    sa.Column('starts', sa.Integer(), nullable=False),
    sa.Column('optins_first', sa.Integer(), nullable=False),
    sa.Column('optins_last', sa.Integer(), nullable=False),
    sa.Column('optouts_first', sa.Integer(), nullable=False),
    sa.Column('optouts_last', sa.Integer(), nullable=False),
    sa.Column('matured_7d_first', sa.Integer(), nullable=False),
    sa.Column('matured_7d_last', sa.Integer(), nullable=False),
    sa.Column('retained_7d_first', sa.Integer(), nullable=False),
    sa.Column('retained_7d_last', sa.Integer(), nullable=False),
    sa.Column('matured_30d_first', sa.Integer(), nullable=False),
    sa.Column('matured_30d_last', sa.Integer(), nullable=False),
    sa.Column('retained_30d_first', sa.Integer(), nullable=False),
    sa.Column('retained_30d_last', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('day', 'link_id', 'placement_id', 'channel_id', 'source', 'medium', 'campaign', 'content', 'previous_day', name=op.f('pk_weekly_stats'))
    )
    op.create_table('rollup_days',
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('marked', sa.Integer(), nullable=False),
    sa.Column('done', sa.Integer(), nullable=False),
    sa.Column('refreshed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('settled', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('day', name=op.f('pk_rollup_days'))
    )
    # Derived data: the app's refresher fills it on its first run (rollups.Refresher), or
    # `acquisition rollups rebuild` does.


def downgrade() -> None:
    op.drop_table('rollup_days')
    op.drop_table('weekly_stats')
    op.drop_table('daily_stats')
