"""correction_requests: an index of (prediction_id, request_hash)

A correction sent without an Idempotency-Key is the same request as an earlier one with the
same body (keyed or not); the index finds that one without a scan.

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 11:30:00
"""
from collections.abc import Sequence

from alembic import op

revision: str = '0018'
down_revision: str | None = '0017'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index('ix_correction_requests_prediction_id', 'correction_requests',
                    ['prediction_id', 'request_hash'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_correction_requests_prediction_id', table_name='correction_requests')
