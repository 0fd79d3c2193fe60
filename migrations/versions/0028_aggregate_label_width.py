"""online_aggregates.label: 250 characters, so a confusion pair of two label classes fits

A label candidate's class may be 100 characters long; the confusion row's label is the JSON pair
``["answer","truth"]`` of two of them, which at 100 characters did not fit once the two names
passed about 48 characters (and on PostgreSQL a class name over 100 characters could not be
stored at all). 250 holds any pair of two 100-character classes with room for JSON's escapes.

Revision ID: 0028
Revises: 0027
Create Date: 2026-12-06 04:10:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0028'
down_revision: str | None = '0027'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('online_aggregates') as batch_op:
        batch_op.alter_column('label', existing_type=sa.String(length=100),
                              type_=sa.String(length=250), existing_nullable=False)


def downgrade() -> None:
    # Rows whose label is longer than 100 characters cannot go back to the narrower column.
    op.execute(sa.text("DELETE FROM online_aggregates WHERE length(label) > 100"))
    with op.batch_alter_table('online_aggregates') as batch_op:
        batch_op.alter_column('label', existing_type=sa.String(length=250),
                              type_=sa.String(length=100), existing_nullable=False)
