"""predictions and corrections: their output type, for per-type metrics

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 05:30:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0009'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    for table in ('predictions', 'corrections'):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('output_type', sa.String(length=16), nullable=True))


def downgrade() -> None:
    for table in ('corrections', 'predictions'):
        with op.batch_alter_table(table) as batch:
            batch.drop_column('output_type')
