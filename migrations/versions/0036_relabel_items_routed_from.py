"""relabel_items.routed_from: the item whose verified label made this one (a stage copy)

evaluation.relabel_enqueue.route_label makes the blamed stage's item done from another item's
label; no traffic queued it and no annotator labeled it, yet the weekly report counted it as
queued and as labeled. The column names its source. Items made before this revision are read
from what such a copy looks like: a stage item without label rows of its own, done when it was
made (labeled_at not after created_at), its source the input's done item outside the stage
queues (the lowest id); where none is found it stays null.

Revision ID: 0036
Revises: 0035
Create Date: 2026-12-07 16:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0036'
down_revision: str | None = '0035'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('relabel_items') as batch_op:
        batch_op.add_column(sa.Column('routed_from', sa.BigInteger(), nullable=True))
    op.execute(
        "UPDATE relabel_items SET routed_from = ("
        " SELECT MIN(src.id) FROM relabel_items src WHERE src.input_hash = relabel_items.input_hash"
        " AND src.queue NOT LIKE 'stage:%' AND src.status = 'done')"
        " WHERE queue LIKE 'stage:%' AND labeled_at IS NOT NULL AND labeled_at <= created_at"
        " AND NOT EXISTS (SELECT 1 FROM relabel_labels l WHERE l.item_id = relabel_items.id)")


def downgrade() -> None:
    with op.batch_alter_table('relabel_items') as batch_op:
        batch_op.drop_column('routed_from')
