"""stream hardening: relay claims, group generations, component heartbeats, bounded parking

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 04:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('bus_groups',
    sa.Column('group_id', sa.String(length=200), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('members', sa.String(length=64), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('group_id', name=op.f('pk_bus_groups'))
    )
    op.create_table('component_heartbeats',
    sa.Column('component', sa.String(length=50), nullable=False),
    sa.Column('instance', sa.String(length=200), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('beat_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('failing', sa.Boolean(), nullable=False),
    sa.Column('restarts', sa.Integer(), nullable=False),
    sa.Column('lag_s', sa.Float(), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('last_error_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('component', 'instance', name=op.f('pk_component_heartbeats'))
    )
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('parked_events') as batch_op:
        batch_op.add_column(sa.Column('payload_size', sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('parked_events') as batch_op:
        batch_op.drop_column('payload_size')
    with op.batch_alter_table('outbox') as batch_op:
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('claimed_by')
    op.drop_table('component_heartbeats')
    op.drop_table('bus_groups')
