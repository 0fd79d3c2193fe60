"""component_heartbeats: what a consumer reads and a note; component_stops: clean stops

A clean stop deleted the instance's heartbeat row, so /readyz could not tell a part that stopped
from one that never started; the stop is now recorded in its own table, `component_stops`. The
heartbeat row is still deleted: older abvoc nodes on the same store (a rolling upgrade, or a
rollback past this revision) read any row whose beat went stale as a dead part, and never read
`component_stops`, so its downgrade just drops it. A worker reading a mistyped topic prefix beat
as healthy: `topic_prefix` and `consumer_group` let /readyz compare them with the API's. `note`
carries what a loop that runs well still wants said (a worker parking most receipts: its secret
key differs from the API's). All nullable: rows of older nodes stay valid.

Revision ID: 0026
Revises: 0025
Create Date: 2026-12-05 04:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0026'
down_revision: str | None = '0025'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('component_heartbeats') as batch_op:
        batch_op.add_column(sa.Column('topic_prefix', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('consumer_group', sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
    op.create_table(
        'component_stops',
        sa.Column('component', sa.String(length=50), nullable=False),
        sa.Column('instance', sa.String(length=200), nullable=False),
        sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('component', 'instance', name=op.f('pk_component_stops')),
    )


def downgrade() -> None:
    op.drop_table('component_stops')
    with op.batch_alter_table('component_heartbeats') as batch_op:
        batch_op.drop_column('note')
        batch_op.drop_column('consumer_group')
        batch_op.drop_column('topic_prefix')
