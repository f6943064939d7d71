"""opt-ins: webhook deliveries and events, subscribers, starts, consent ledger, relay outbox;
per-link welcome text

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 02:52:47.836498
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0002'
down_revision: str | Sequence[str] | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('relay_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('url', sa.String(length=500), nullable=False),
    sa.Column('body', sa.LargeBinary(), nullable=True),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('headers', sa.JSON(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('failed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.String(length=300), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_relay_outbox_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relay_outbox')),
    sa.UniqueConstraint('channel_id', 'body_sha256', name=op.f('uq_relay_outbox_channel_id_body_sha256'))
    )
    with op.batch_alter_table('relay_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_relay_outbox_pending', ['delivered_at', 'failed_at', 'channel_id', 'id'], unique=False)

    op.create_table('subscribers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('messenger_user_id', sa.String(length=128), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=True),
    sa.Column('language', sa.String(length=16), nullable=True),
    sa.Column('first_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_subscribers_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_subscribers')),
    sa.UniqueConstraint('channel_id', 'messenger_user_id', name=op.f('uq_subscribers_channel_id_messenger_user_id'))
    )
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_subscribers_first_seen_at'), ['first_seen_at'], unique=False)

    op.create_table('webhook_deliveries',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('via', sa.String(length=8), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('body', sa.Text(), nullable=True),
    sa.Column('body_sha256', sa.String(length=64), nullable=False),
    sa.Column('erased_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("via IN ('webhook', 'api')", name=op.f('ck_webhook_deliveries_via')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_webhook_deliveries_channel_id_channels')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_deliveries')),
    sa.UniqueConstraint('channel_id', 'body_sha256', name=op.f('uq_webhook_deliveries_channel_id_body_sha256'))
    )
    op.create_table('webhook_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=200), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('delivery_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_webhook_events_channel_id_channels')),
    sa.ForeignKeyConstraint(['delivery_id'], ['webhook_deliveries.id'], name=op.f('fk_webhook_events_delivery_id_webhook_deliveries')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_webhook_events_subscriber_id_subscribers')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_webhook_events')),
    sa.UniqueConstraint('channel_id', 'event_id', name=op.f('uq_webhook_events_channel_id_event_id'))
    )
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_webhook_events_delivery_id'), ['delivery_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_webhook_events_subscriber_id'), ['subscriber_id'], unique=False)

    op.create_table('starts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('webhook_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=True),
    sa.Column('click_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('link_id', sa.Integer(), nullable=True),
    sa.Column('placement_id', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=100), nullable=True),
    sa.Column('medium', sa.String(length=100), nullable=True),
    sa.Column('campaign', sa.String(length=100), nullable=True),
    sa.Column('content', sa.String(length=100), nullable=True),
    sa.Column('term', sa.String(length=100), nullable=True),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_starts_channel_id_channels')),
    sa.ForeignKeyConstraint(['click_id'], ['clicks.id'], name=op.f('fk_starts_click_id_clicks')),
    sa.ForeignKeyConstraint(['link_id'], ['links.id'], name=op.f('fk_starts_link_id_links')),
    sa.ForeignKeyConstraint(['placement_id'], ['placements.id'], name=op.f('fk_starts_placement_id_placements')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_starts_subscriber_id_subscribers')),
    sa.ForeignKeyConstraint(['webhook_event_id'], ['webhook_events.id'], name=op.f('fk_starts_webhook_event_id_webhook_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_starts'))
    )
    with op.batch_alter_table('starts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_starts_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_starts_click_id'), ['click_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_starts_link_id'), ['link_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_starts_ref'), ['ref'], unique=False)
        batch_op.create_index('ix_starts_subscriber_id_at', ['subscriber_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_starts_webhook_event_id'), ['webhook_event_id'], unique=False)

    op.create_table('consent_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('channel_id', sa.Integer(), nullable=False),
    sa.Column('subscriber_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('method', sa.String(length=48), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('webhook_event_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('first_start_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('last_start_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('consent_version', sa.String(length=32), nullable=True),
    sa.CheckConstraint("kind IN ('opt_in', 'opt_out')", name=op.f('ck_consent_events_kind')),
    sa.ForeignKeyConstraint(['channel_id'], ['channels.id'], name=op.f('fk_consent_events_channel_id_channels')),
    sa.ForeignKeyConstraint(['first_start_id'], ['starts.id'], name=op.f('fk_consent_events_first_start_id_starts')),
    sa.ForeignKeyConstraint(['last_start_id'], ['starts.id'], name=op.f('fk_consent_events_last_start_id_starts')),
    sa.ForeignKeyConstraint(['subscriber_id'], ['subscribers.id'], name=op.f('fk_consent_events_subscriber_id_subscribers')),
    sa.ForeignKeyConstraint(['webhook_event_id'], ['webhook_events.id'], name=op.f('fk_consent_events_webhook_event_id_webhook_events')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_consent_events'))
    )
    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_consent_events_at'), ['at'], unique=False)
        batch_op.create_index('ix_consent_events_subscriber_id_at', ['subscriber_id', 'at'], unique=False)
        batch_op.create_index(batch_op.f('ix_consent_events_webhook_event_id'), ['webhook_event_id'], unique=False)

    with op.batch_alter_table('links', schema=None) as batch_op:
        batch_op.add_column(sa.Column('welcome_text', sa.String(length=1000), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('links', schema=None) as batch_op:
        batch_op.drop_column('welcome_text')

    with op.batch_alter_table('consent_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_consent_events_webhook_event_id'))
        batch_op.drop_index('ix_consent_events_subscriber_id_at')
        batch_op.drop_index(batch_op.f('ix_consent_events_at'))

    op.drop_table('consent_events')
    with op.batch_alter_table('starts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_starts_webhook_event_id'))
        batch_op.drop_index('ix_starts_subscriber_id_at')
        batch_op.drop_index(batch_op.f('ix_starts_ref'))
        batch_op.drop_index(batch_op.f('ix_starts_link_id'))
        batch_op.drop_index(batch_op.f('ix_starts_click_id'))
        batch_op.drop_index(batch_op.f('ix_starts_at'))

    op.drop_table('starts')
    with op.batch_alter_table('webhook_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_webhook_events_subscriber_id'))
        batch_op.drop_index(batch_op.f('ix_webhook_events_delivery_id'))

    op.drop_table('webhook_events')
    op.drop_table('webhook_deliveries')
    with op.batch_alter_table('subscribers', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_subscribers_first_seen_at'))

    op.drop_table('subscribers')
    with op.batch_alter_table('relay_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_relay_outbox_pending')

    op.drop_table('relay_outbox')
