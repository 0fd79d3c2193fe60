"""outbox: a partial index of the rows still to send, in place of (sent_at, id) over every row

Marking a row sent then takes it out of a small index instead of moving it within a large one;
on PostgreSQL that update no longer adds an entry to an index of every row.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02 06:20:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0015'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PENDING = sa.text('sent_at IS NULL')


def upgrade() -> None:
    op.drop_index('ix_outbox_sent_at', table_name='outbox')
    op.create_index('ix_outbox_pending', 'outbox', ['id'], unique=False,
                    sqlite_where=PENDING, postgresql_where=PENDING)


def downgrade() -> None:
    op.drop_index('ix_outbox_pending', table_name='outbox')
    op.create_index('ix_outbox_sent_at', 'outbox', ['sent_at', 'id'], unique=False)
