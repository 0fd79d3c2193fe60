"""predictions.failed: whether the candidate failed to answer

A failed prediction was marked only in the served ledger's rows that the guardrails watch
(experiment traffic; not shadows, nor forced requests), so per-unit sums rebuilt or recounted
from the stored predictions could not count the others' failures. Predictions stored before this
revision keep it null (unknown: the ledger is read for them, as before).

Revision ID: 0023
Revises: 0022
Create Date: 2026-12-04 05:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0023'
down_revision: str | None = '0022'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('predictions') as batch_op:
        batch_op.add_column(sa.Column('failed', sa.Boolean(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('predictions') as batch_op:
        batch_op.drop_column('failed')
