"""served_predictions.excluded: why a request served within an experiment is kept out of it

The ledger recorded where an excluded request went (experiment and arm) but not why, so the
prediction inspector could only list the possible reasons: an admin's forced-arm request, or one
served while the experiment was paused or killed. Rows from before this revision keep it null.

Revision ID: 0027
Revises: 0026
Create Date: 2026-12-05 13:05:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0027'
down_revision: str | None = '0026'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.add_column(sa.Column('excluded', sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.drop_column('excluded')
