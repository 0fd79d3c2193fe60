"""spool_progress: how far each request spool segment is committed to the store

The request path on SQLite appends an answer's rows to a spool file and a mover commits them;
this table, written in the same transaction as the rows, says where a process that commits what
a dead one left must start.

Revision ID: 0030
Revises: 0029
Create Date: 2026-12-08 09:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0030'
down_revision: str | None = '0029'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'spool_progress',
        sa.Column('segment', sa.String(length=200), nullable=False),
        sa.Column('applied', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('segment', name=op.f('pk_spool_progress')),
    )


def downgrade() -> None:
    op.drop_table('spool_progress')
