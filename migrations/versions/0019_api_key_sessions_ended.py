"""api_keys.sessions_ended_at: when the key's dashboard sessions were last ended (logout)

A dashboard session is a signed cookie; a logout records its time on the key's row so that a
copy of a cookie issued before it is refused (see dashboards/sessions.py).

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 10:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0019'
down_revision: str | None = '0018'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.add_column(sa.Column('sessions_ended_at', sa.DateTime(timezone=True),
                                      nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('api_keys') as batch_op:
        batch_op.drop_column('sessions_ended_at')
