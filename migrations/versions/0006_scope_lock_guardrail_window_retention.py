"""one active experiment per scope; guardrail window in served_predictions; pruning index

Revision ID: 0006
Revises: 0004
Create Date: 2026-11-30 04:10:00

- ux_experiments_active_scope: a partial unique index, so at most one experiment per scope is
  running, paused or killed (concurrent starts cannot both win).
- served_predictions.arm, latency_ms, error (+ index): the guardrails' rolling window, shared
  by every serving process.
- processed_events.processed_at index: `abvoc db prune` deletes old ids by age.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_OWNS_SCOPE = sa.text("status IN ('running', 'paused', 'killed')")


def upgrade() -> None:
    op.create_index('ux_experiments_active_scope', 'experiments', ['scope'], unique=True,
                    sqlite_where=_OWNS_SCOPE, postgresql_where=_OWNS_SCOPE)
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.add_column(sa.Column('arm', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('latency_ms', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('error', sa.Boolean(), nullable=True))
        batch_op.create_index(
            batch_op.f('ix_served_predictions_experiment_id'),
            ['experiment_id', 'arm', 'created_at'], unique=False)
    op.create_index(op.f('ix_processed_events_processed_at'), 'processed_events',
                    ['processed_at'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_processed_events_processed_at'), table_name='processed_events')
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.drop_index(batch_op.f('ix_served_predictions_experiment_id'))
        batch_op.drop_column('error')
        batch_op.drop_column('latency_ms')
        batch_op.drop_column('arm')
    op.drop_index('ux_experiments_active_scope', table_name='experiments',
                  sqlite_where=_OWNS_SCOPE, postgresql_where=_OWNS_SCOPE)
