"""parked_events.event_id: the id a parked event's payload names

Retention keeps a processed event id while a copy of its event is parked, so that replaying the
copy later finds the id and cannot apply the event twice. Rows parked before this revision get
their id from their kept payload.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-03 15:30:00
"""
import json
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0020'
down_revision: str | None = '0019'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _event_id(payload: bytes) -> str | None:
    """The id a kept payload names (this revision's own copy of the rule, so that the migration
    does not change when the application's code does)."""
    try:
        value = json.loads(payload)
    except (ValueError, RecursionError):
        return None
    event_id = value.get('event_id') if isinstance(value, dict) else None
    return event_id if isinstance(event_id, str) and 0 < len(event_id) <= 64 else None


def upgrade() -> None:
    with op.batch_alter_table('parked_events') as batch_op:
        batch_op.add_column(sa.Column('event_id', sa.String(length=64), nullable=True))
        batch_op.create_index(batch_op.f('ix_parked_events_group_id'), ['group_id', 'event_id'],
                              unique=False)
    parked = sa.table('parked_events', sa.column('id', sa.BigInteger),
                      sa.column('payload', sa.LargeBinary), sa.column('event_id', sa.String))
    bind = op.get_bind()
    for row_id, payload in bind.execute(sa.select(parked.c.id, parked.c.payload)).all():
        event_id = _event_id(bytes(payload))
        if event_id is not None:
            bind.execute(parked.update().where(parked.c.id == row_id).values(event_id=event_id))


def downgrade() -> None:
    with op.batch_alter_table('parked_events') as batch_op:
        batch_op.drop_index(batch_op.f('ix_parked_events_group_id'))
        batch_op.drop_column('event_id')
