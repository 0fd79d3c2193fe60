"""experiments.expected_sample_per_arm: the sample its always-valid test is tuned for

The mSPRT's mixture variance is chosen so that its intervals are tightest at this many
observations per arm; it was fixed at 5,000 for every experiment. Experiments created before
this revision keep that (the column is null for them).

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-04 05:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0022'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('experiments') as batch_op:
        batch_op.add_column(sa.Column('expected_sample_per_arm', sa.BigInteger(),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('experiments') as batch_op:
        batch_op.drop_column('expected_sample_per_arm')
