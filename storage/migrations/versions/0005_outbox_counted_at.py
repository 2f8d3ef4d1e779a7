"""outbox.counted_at: the per-conversation budget counts only messages the conversation sees

Card updates and alerts merged into another alert are sent (``sent_at``) but take no slot
of ``outbox.per_conversation_per_minute``. Rows sent before this revision keep counting (as
they did), which matters for one minute at most.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.add_column(sa.Column('counted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.drop_index('ix_outbox_conv_sent')
        batch_op.create_index('ix_outbox_conv_counted', ['conversation_key', 'counted_at'],
                              unique=False)
    op.execute("UPDATE outbox SET counted_at = sent_at WHERE sent_at IS NOT NULL")


def downgrade() -> None:
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_outbox_conv_counted')
        batch_op.create_index('ix_outbox_conv_sent', ['conversation_key', 'sent_at'],
                              unique=False)
        batch_op.drop_column('counted_at')
