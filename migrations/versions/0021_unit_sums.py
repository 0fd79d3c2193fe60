"""unit_sums: each unit's sums of the built-in metrics per experiment cell

The results test a unit, not a prediction, as the independent observation where units send many
requests (the delta method over these rows, evaluation/unit_moments.py). Predictions stored
before this revision have no rows here: the results of their experiments keep counting
predictions, and say so.

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-03 18:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0021'
down_revision: str | None = '0020'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COUNTS = ('predictions', 'errors', 'corrected', 'truths', 'confidence_n', 'latency_n',
           'number_n')
_SUMS = ('exact_sum', 'edit_sum', 'confidence_sum', 'latency_sum', 'abs_sum', 'sq_sum')


def upgrade() -> None:
    op.create_table(
        'unit_sums',
        sa.Column('experiment_id', sa.BigInteger(), nullable=False),
        sa.Column('arm', sa.String(length=100), nullable=False),
        sa.Column('candidate', sa.String(length=100), nullable=False),
        sa.Column('shadow', sa.Boolean(), nullable=False),
        sa.Column('slice', sa.String(length=100), nullable=False),
        sa.Column('unit_id', sa.String(length=200), nullable=False),
        *(sa.Column(c, sa.BigInteger(), nullable=False) for c in _COUNTS),
        *(sa.Column(c, sa.Float(), nullable=False) for c in _SUMS),
        sa.PrimaryKeyConstraint('experiment_id', 'arm', 'candidate', 'shadow', 'slice',
                                'unit_id', name=op.f('pk_unit_sums')),
        sqlite_with_rowid=False,
    )


def downgrade() -> None:
    op.drop_table('unit_sums')
