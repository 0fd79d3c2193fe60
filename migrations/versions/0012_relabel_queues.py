"""relabel queues: item rules, leases and labels; enqueue rules; kept prediction inputs

Revision ID: 0012
Revises: 0010
Create Date: 2026-11-30 06:45:29.754736
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op


revision: str = '0012'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('prediction_inputs',
    sa.Column('prediction_id', sa.String(length=64), nullable=False),
    sa.Column('input_hash', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('data', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('prediction_id', name=op.f('pk_prediction_inputs'))
    )
    with op.batch_alter_table('prediction_inputs', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_prediction_inputs_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_prediction_inputs_input_hash'), ['input_hash'], unique=False)

    op.create_table('relabel_labels',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('item_id', sa.BigInteger(), nullable=False),
    sa.Column('annotator', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=10), nullable=False),
    sa.Column('label', sa.Text(), nullable=True),
    sa.Column('verdict', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_relabel_labels')),
    sa.UniqueConstraint('item_id', 'annotator', 'action', name=op.f('uq_relabel_labels_item_id_annotator_action'))
    )
    op.create_table('relabel_rules',
    sa.Column('scope', sa.String(length=120), nullable=False),
    sa.Column('rules', sa.JSON(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('scope', name=op.f('pk_relabel_rules'))
    )
    with op.batch_alter_table('relabel_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('input_hash', sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column('experiment_id', sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column('candidate', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('slice', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('reasons', sa.JSON(), nullable=False, server_default='[]'))
        batch_op.add_column(sa.Column('labels_needed', sa.Integer(), nullable=False, server_default='1'))
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('note', sa.Text(), nullable=True))
        batch_op.create_index(batch_op.f('ix_relabel_items_queue'), ['queue', 'status', 'priority'], unique=False)
        batch_op.create_unique_constraint(batch_op.f('uq_relabel_items_queue_input_hash'), ['queue', 'input_hash'])



def downgrade() -> None:
    with op.batch_alter_table('relabel_items', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('uq_relabel_items_queue_input_hash'), type_='unique')
        batch_op.drop_index(batch_op.f('ix_relabel_items_queue'))
        batch_op.drop_column('note')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')
        batch_op.drop_column('labels_needed')
        batch_op.drop_column('reasons')
        batch_op.drop_column('slice')
        batch_op.drop_column('candidate')
        batch_op.drop_column('experiment_id')
        batch_op.drop_column('input_hash')

    op.drop_table('relabel_rules')
    op.drop_table('relabel_labels')
    with op.batch_alter_table('prediction_inputs', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_prediction_inputs_input_hash'))
        batch_op.drop_index(batch_op.f('ix_prediction_inputs_created_at'))

    op.drop_table('prediction_inputs')
