"""experiments.status_since: when the experiment's current status and its reason began

A kill or an operator's pause kept no time, so the operations page listed them undated and
nobody could say how long an experiment had served only its control. Rows from before this
revision take the time the store kept where it is the same moment (a stop's `stopped_at`, a
draft's `created_at`); a running, paused or killed one stays null (a run may have been paused
and resumed since its start, which nothing dated).

Revision ID: 0025
Revises: 0024
Create Date: 2026-12-05 02:40:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0025'
down_revision: str | None = '0024'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('experiments') as batch_op:
        batch_op.add_column(sa.Column('status_since', sa.DateTime(timezone=True), nullable=True))
    op.execute("UPDATE experiments SET status_since = CASE "
               "WHEN status = 'stopped' THEN stopped_at "
               "WHEN status = 'draft' THEN created_at END")


def downgrade() -> None:
    with op.batch_alter_table('experiments') as batch_op:
        batch_op.drop_column('status_since')
