"""served_predictions.version: the candidate version that answered

A correction's output type and an annotator's classes are those of the version that served the
prediction (an experiment pins one per arm); rows from before it was recorded keep null and are
read by name and time as before.

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 11:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0017'
down_revision: str | None = '0016'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.add_column(sa.Column('version', sa.String(length=50), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('served_predictions') as batch_op:
        batch_op.drop_column('version')
