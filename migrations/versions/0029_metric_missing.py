"""experiment_metrics.missing: what a unit that reported no outcome of a metric counts as

``skip`` (the metric is the mean over the units that reported it, as before) or ``zero`` (every
unit exposed in the arm counts, one without an outcome as 0). Definitions from before this
revision keep it null, read as ``skip``.

Revision ID: 0029
Revises: 0028
Create Date: 2026-12-07 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0029'
down_revision: str | None = '0028'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('experiment_metrics') as batch_op:
        batch_op.add_column(sa.Column('missing', sa.String(length=8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('experiment_metrics') as batch_op:
        batch_op.drop_column('missing')
