"""DingTalk's admin list as Baton last saw it: the table dingtalk_admins (admin drift)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'dingtalk_admins',
        sa.Column('corp_id', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.String(length=64), nullable=False),
        sa.Column('sys_level', sa.Integer(), nullable=False),
        sa.Column('seen_at', sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint('sys_level IN (1, 2)', name=op.f('ck_dingtalk_admins_sys_level')),
        sa.PrimaryKeyConstraint('corp_id', 'user_id', name=op.f('pk_dingtalk_admins')),
    )


def downgrade() -> None:
    op.drop_table('dingtalk_admins')
