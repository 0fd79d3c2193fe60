"""relabel samples: the symbol crops and relation samples of the stage datasets

Revision ID: 0015
Revises: 0013
Create Date: 2026-11-30 09:45:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0015'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('relabel_samples',
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('symbol', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('prediction_id', sa.String(length=64), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=True),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('predicted', sa.Text(), nullable=True),
    sa.Column('image', sa.LargeBinary(), nullable=True),
    sa.Column('sample', sa.JSON(), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('item_id', 'symbol', name=op.f('pk_relabel_samples'))
    )


def downgrade() -> None:
    op.drop_table('relabel_samples')
