"""prediction_truths.blame and blame_stages: the stage a truth blames, judged once

Stage attribution judged every corrected prediction in Python at each read of the divergence
report (seconds once tens of thousands had a truth). A truth never changes once counted, nor
does its prediction, so the worker now judges it as it joins the two and the report counts the
stored verdicts in SQL. ``blame`` is the stage, ``correct``, or '' when the prediction's stages
blame nobody; ``blame_stages`` the JSON list of the stages the verdict was among, in pipeline
order. Rows from before this revision keep both null: the report judges those as before, and
``abvoc db backfill-blame`` stores their verdicts.

Revision ID: 0032
Revises: 0031
Create Date: 2026-12-07 08:00:00
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0032'
down_revision: str | None = '0031'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('prediction_truths') as batch_op:
        batch_op.add_column(sa.Column('blame', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('blame_stages', sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('prediction_truths') as batch_op:
        batch_op.drop_column('blame_stages')
        batch_op.drop_column('blame')
