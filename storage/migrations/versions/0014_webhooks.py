"""Webhook subscribers: each one's cursor in the change feed, state and lease

Revision ID: 0014
Revises: 0010
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0014'
down_revision: str | None = '0010'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'webhook_subscribers',
        sa.Column('name', sa.String(length=64), nullable=False),
        sa.Column('cursor', sa.BigInteger(), nullable=False),
        sa.Column('state', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('claimed_until', sa.DateTime(timezone=True), nullable=True),
        sa.Column('claim_token', sa.String(length=32), nullable=True),
        sa.Column('last_error', sa.Text(), nullable=True),
        sa.Column('last_delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('paused_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('active', 'paused')",
                           name=op.f('ck_webhook_subscribers_state')),
        sa.CheckConstraint('cursor >= 0', name=op.f('ck_webhook_subscribers_cursor')),
        sa.PrimaryKeyConstraint('name', name=op.f('pk_webhook_subscribers')),
    )


def downgrade() -> None:
    op.drop_table('webhook_subscribers')
