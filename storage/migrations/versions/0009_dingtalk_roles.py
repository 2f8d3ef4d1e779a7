"""DingTalk role sync and the call budget: dingtalk_roles, sync_marks, api_call_months

Revision ID: 0009
Revises: 0007
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0009'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('dingtalk_roles',
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=64), nullable=False),
    sa.Column('dingtalk_name', sa.String(length=128), nullable=False),
    sa.Column('role_id', sa.BigInteger(), nullable=False),
    sa.Column('group_id', sa.BigInteger(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('corp_id', 'role', name=op.f('pk_dingtalk_roles'))
    )
    op.create_table('sync_marks',
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('value', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('corp_id', 'name', name=op.f('pk_sync_marks'))
    )
    op.create_table('api_call_months',
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.Column('month', sa.String(length=7), nullable=False),
    sa.Column('calls', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('corp_id', 'month', name=op.f('pk_api_call_months'))
    )


def downgrade() -> None:
    op.drop_table('api_call_months')
    op.drop_table('sync_marks')
    op.drop_table('dingtalk_roles')
