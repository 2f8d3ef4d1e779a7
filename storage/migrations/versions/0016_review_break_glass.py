"""Access review items remember a break-glass grant: review_items.break_glass

The id of the break-glass request (kind ``break_glass``) a reviewed grant came from, so a
reviewer's card tags it even after the grant is gone; NULL for any other grant.

Revision ID: 0016
Revises: 0008
Create Date: 2026-12-04
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0016'
down_revision: str | None = '0008'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.add_column(sa.Column('break_glass', sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('review_items', schema=None) as batch_op:
        batch_op.drop_column('break_glass')
