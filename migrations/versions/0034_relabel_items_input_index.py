"""relabel_items: an index by input hash

The Inspector shows a prediction's verified label: the agreed label of its input's done items,
in every queue. Items were indexed by input within a queue only, so reading one input's items
scanned them all (11 ms at 50k items on SQLite, growing with the queues; grouping every label
before it, 0.2 s).

Revision ID: 0034
Revises: 0033
Create Date: 2026-12-07 10:20:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0034'
down_revision: str | None = '0033'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_relabel_items_input_hash', 'relabel_items', ['input_hash'])


def downgrade() -> None:
    op.drop_index('ix_relabel_items_input_hash', table_name='relabel_items')
