"""permissions: one grant row per user and name, lookup indexes for whoami and who-has

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_user')
        batch_op.create_index('uq_grants_user_name', ['corp_id', 'user_id', 'name'], unique=True)
        batch_op.create_index('ix_grants_name', ['corp_id', 'name'], unique=False)
        batch_op.create_index('ix_grants_expires', ['expires_at'], unique=False)
    with op.batch_alter_table('template_assignments', schema=None) as batch_op:
        batch_op.create_index('ix_template_assignments_user', ['user_id'], unique=False)
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_role', ['corp_id', 'role'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index('ix_members_role')
    with op.batch_alter_table('template_assignments', schema=None) as batch_op:
        batch_op.drop_index('ix_template_assignments_user')
    with op.batch_alter_table('grants', schema=None) as batch_op:
        batch_op.drop_index('ix_grants_expires')
        batch_op.drop_index('ix_grants_name')
        batch_op.drop_index('uq_grants_user_name')
        batch_op.create_index('ix_grants_user', ['corp_id', 'user_id'], unique=False)
