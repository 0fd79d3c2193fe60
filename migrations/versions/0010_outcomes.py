"""outcome metrics: definitions per experiment, outcomes, per-unit combined values, and the
outcome requests' idempotency ledger

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 06:40:00.000000

- experiment_metrics: a metric's kind, direction, combine rule, ratio parts, guardrail and
  whether it is primary (ux_experiment_metrics_primary: at most one primary per experiment).
- outcomes: every outcome the worker stored; counted_at is null while it waits for its
  prediction or unit.
- outcome_unit_values: per experiment, arm, metric and unit: count, sum, max and first value.
- outcome_requests: accepted POST /v1/outcomes requests by idempotency key.
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_IS_PRIMARY = sa.text('is_primary')


def upgrade() -> None:
    op.create_table(
        'experiment_metrics',
        sa.Column('experiment_id', sa.BigInteger(), nullable=False),
        sa.Column('name', sa.String(length=50), nullable=False),
        sa.Column('kind', sa.String(length=16), nullable=False),
        sa.Column('direction', sa.String(length=8), nullable=False),
        sa.Column('combine', sa.String(length=8), nullable=False),
        sa.Column('numerator', sa.String(length=50), nullable=True),
        sa.Column('denominator', sa.String(length=50), nullable=True),
        sa.Column('guardrail', sa.Float(), nullable=True),
        sa.Column('is_primary', sa.Boolean(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('experiment_id', 'name', name=op.f('pk_experiment_metrics')),
    )
    op.create_index('ux_experiment_metrics_primary', 'experiment_metrics', ['experiment_id'],
                    unique=True, sqlite_where=_IS_PRIMARY, postgresql_where=_IS_PRIMARY)
    op.create_table(
        'outcomes',
        sa.Column('outcome_id', sa.String(length=64), nullable=False),
        sa.Column('event_id', sa.String(length=64), nullable=False),
        sa.Column('experiment_id', sa.BigInteger(), nullable=False),
        sa.Column('metric', sa.String(length=50), nullable=False),
        sa.Column('value', sa.Float(), nullable=False),
        sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('prediction_id', sa.String(length=64), nullable=True),
        sa.Column('unit_id', sa.String(length=200), nullable=True),
        sa.Column('arm', sa.String(length=100), nullable=True),
        sa.Column('counted_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('outcome_id', name=op.f('pk_outcomes')),
        sa.UniqueConstraint('event_id', name=op.f('uq_outcomes_event_id')),
    )
    op.create_index(op.f('ix_outcomes_prediction_id'), 'outcomes', ['prediction_id'])
    op.create_index(op.f('ix_outcomes_experiment_id'), 'outcomes', ['experiment_id', 'unit_id'])
    op.create_index(op.f('ix_outcomes_counted_at'), 'outcomes', ['counted_at'])
    op.create_table(
        'outcome_unit_values',
        sa.Column('experiment_id', sa.BigInteger(), nullable=False),
        sa.Column('arm', sa.String(length=100), nullable=False),
        sa.Column('metric', sa.String(length=50), nullable=False),
        sa.Column('unit_id', sa.String(length=200), nullable=False),
        sa.Column('n', sa.BigInteger(), nullable=False),
        sa.Column('total', sa.Float(), nullable=False),
        sa.Column('maximum', sa.Float(), nullable=False),
        sa.Column('first_value', sa.Float(), nullable=False),
        sa.Column('first_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('first_id', sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint('experiment_id', 'arm', 'metric', 'unit_id',
                                name=op.f('pk_outcome_unit_values')),
    )
    op.create_table(
        'outcome_requests',
        sa.Column('idempotency_key', sa.String(length=128), nullable=False),
        sa.Column('outcome_id', sa.String(length=64), nullable=False),
        sa.Column('request_hash', sa.String(length=64), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('idempotency_key', name=op.f('pk_outcome_requests')),
        sa.UniqueConstraint('outcome_id', name=op.f('uq_outcome_requests_outcome_id')),
    )


def downgrade() -> None:
    op.drop_table('outcome_requests')
    op.drop_table('outcome_unit_values')
    op.drop_index(op.f('ix_outcomes_counted_at'), table_name='outcomes')
    op.drop_index(op.f('ix_outcomes_experiment_id'), table_name='outcomes')
    op.drop_index(op.f('ix_outcomes_prediction_id'), table_name='outcomes')
    op.drop_table('outcomes')
    op.drop_index('ux_experiment_metrics_primary', table_name='experiment_metrics',
                  sqlite_where=_IS_PRIMARY, postgresql_where=_IS_PRIMARY)
    op.drop_table('experiment_metrics')
