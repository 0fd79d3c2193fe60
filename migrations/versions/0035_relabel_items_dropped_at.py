"""relabel_items.dropped_at: when an item was displaced from its full queue

A queue at its quota drops its weakest open items for stronger contenders (status `dropped`).
Nothing said when, and a dropped item keeps no label, so the weekly report counted it as open
at every later week's end. Items dropped before this revision keep it null: they count as
dropped at an unknown time (not open at any week's end).

Revision ID: 0035
Revises: 0034
Create Date: 2026-12-07 14:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0035'
down_revision: str | None = '0034'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('relabel_items') as batch_op:
        batch_op.add_column(sa.Column('dropped_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('relabel_items') as batch_op:
        batch_op.drop_column('dropped_at')
