"""Members' DingTalk unionIds (kept once looked up) and approvers' to-dos per request

Revision ID: 0011
Revises: 0013
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0011'
down_revision: str | None = '0013'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('union_ids',
    sa.Column('corp_id', sa.String(length=64), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('union_id', sa.String(length=128), nullable=False),
    sa.PrimaryKeyConstraint('corp_id', 'user_id', name=op.f('pk_union_ids'))
    )
    op.create_table('todo_tasks',
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('task_id', sa.String(length=128), nullable=True),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.CheckConstraint("state IN ('open', 'done')", name=op.f('ck_todo_tasks_state')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_todo_tasks_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'user_id', name=op.f('pk_todo_tasks'))
    )


def downgrade() -> None:
    op.drop_table('todo_tasks')
    op.drop_table('union_ids')
