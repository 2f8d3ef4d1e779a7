"""paged_answers: the last long answer per member and conversation, for ``next``

Revision ID: 0013
Revises: 0014
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0013'
down_revision: str | None = '0014'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('paged_answers',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.Column('conversation_key', sa.String(length=200), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('args', sa.JSON(), nullable=False),
    sa.Column('page', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('page >= 1', name=op.f('ck_paged_answers_page_positive')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_paged_answers')),
    sa.UniqueConstraint('corp_id', 'conversation_key', 'user_id',
                        name=op.f('uq_paged_answers_corp_id'))
    )


def downgrade() -> None:
    op.drop_table('paged_answers')
