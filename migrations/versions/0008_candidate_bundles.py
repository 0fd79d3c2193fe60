"""candidate bundles: a retired_at column, so a retired candidate keeps its row

Revision ID: 0008
Revises: 0004
Create Date: 2026-11-30 04:10:00.000000
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('candidates') as batch:
        batch.add_column(sa.Column('retired_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('candidates') as batch:
        batch.drop_column('retired_at')
