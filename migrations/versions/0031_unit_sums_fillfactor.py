"""unit_sums: pages 70 % full on PostgreSQL, so a unit's updated sums stay on their page

The worker updates a unit's row at every batch its unit is in. On full pages the new row version
goes to another page and every index takes an entry for it; with room on the page the update is
heap-only (HOT). Pages written before this keep their fill until rewritten (VACUUM FULL).

Revision ID: 0031
Revises: 0030
Create Date: 2026-12-06 21:00:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0031'
down_revision: str | None = '0030'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE unit_sums SET (fillfactor = 70)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE unit_sums RESET (fillfactor)")
