"""predictions by input hash: the relabel enqueue's twin lookup (served and shadow answers of one
request) reads them per worker batch, which without an index scans the whole table

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-30 08:10:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0013'
down_revision: str | None = '0012'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_predictions_input_hash'), ['input_hash'],
                              unique=False)


def downgrade() -> None:
    with op.batch_alter_table('predictions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_predictions_input_hash'))
