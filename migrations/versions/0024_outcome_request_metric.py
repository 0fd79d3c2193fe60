"""outcome_requests.experiment_id, .metric: the metric an accepted outcome was checked against

A metric's kind may not change once it has outcomes, since each was checked against it. Only
the outcomes the worker had stored were looked at, so a kind changed while accepted outcomes
were still on their way let a mean's 7 into a proportion (its results then failed). Accepted
requests now name their experiment and metric; rows from before this revision keep them null.

Revision ID: 0024
Revises: 0023
Create Date: 2026-12-04 23:50:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0024'
down_revision: str | None = '0023'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outcome_requests') as batch_op:
        batch_op.add_column(sa.Column('experiment_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('metric', sa.String(length=50), nullable=True))
        batch_op.create_index(batch_op.f('ix_outcome_requests_experiment_id'),
                              ['experiment_id', 'metric'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('outcome_requests') as batch_op:
        batch_op.drop_index(batch_op.f('ix_outcome_requests_experiment_id'))
        batch_op.drop_column('metric')
        batch_op.drop_column('experiment_id')
