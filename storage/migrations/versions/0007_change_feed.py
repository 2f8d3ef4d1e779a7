"""The change feed: change_events and feed_head

Every applied change becomes an event with a global sequence number, written in the same
transaction as its audit entry. The audit entries still kept that record applied changes
are carried over as the feed's first events, in chain order, so a consumer that starts from
zero sees the history the audit retention kept; the downgrade drops both tables.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The audit actions that recorded applied changes when this revision was written, and their
# event types (a frozen copy of bot.core.domain.feed.EVENT_TYPES: a migration must not change
# meaning when the code moves on).
EVENT_TYPES = {
    'grant.apply': 'grant.added', 'grant.revoke': 'grant.revoked',
    'grant.expired': 'grant.expired', 'review.remove': 'grant.revoked',
    'review.unreviewed_revoke': 'grant.revoked', 'role_set.apply': 'role.changed',
    'role_clear.apply': 'role.changed', 'admin_add.apply': 'admin.added',
    'admin_remove.apply': 'admin.removed', 'owner_transfer.apply': 'owner.changed',
    'template.create': 'template.created', 'template.set': 'template.edited',
    'template.delete': 'template.deleted', 'template.assign': 'template.applied',
    'import.change': 'import.change', 'import.undo_change': 'import.undone',
}


def _subject(target: str | None, before: dict[str, object] | None,
             after: dict[str, object] | None) -> tuple[str, str] | None:
    if target:
        return 'user', target
    for side in (after, before):
        if side and isinstance(side.get('template'), str):
            return 'template', str(side['template'])
    return None


def upgrade() -> None:
    events = op.create_table(
        'change_events',
        sa.Column('seq', sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column('event_id', sa.String(length=40), nullable=False),
        sa.Column('corp_id', sa.String(length=64), nullable=False),
        sa.Column('type', sa.String(length=40), nullable=False),
        sa.Column('action', sa.String(length=64), nullable=False),
        sa.Column('actor_id', sa.String(length=64), nullable=False),
        sa.Column('subject_kind', sa.String(length=16), nullable=True),
        sa.Column('subject', sa.String(length=200), nullable=True),
        sa.Column('before', sa.JSON(), nullable=True),
        sa.Column('after', sa.JSON(), nullable=True),
        sa.Column('request_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('seq', name=op.f('pk_change_events')),
        sa.UniqueConstraint('event_id', name=op.f('uq_change_events_event_id')),
    )
    op.create_index('ix_change_events_at', 'change_events', ['at'], unique=False)
    head = op.create_table(
        'feed_head',
        sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
        sa.Column('seq', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_feed_head')),
    )
    bind = op.get_bind()
    # 'at' is copied as stored: SQLite keeps text, PostgreSQL a timestamptz.
    at_type = sa.String() if bind.dialect.name == 'sqlite' else sa.DateTime(timezone=True)
    audit = sa.table('audit_entries', sa.column('id'), sa.column('corp_id'), sa.column('seq'),
                     sa.column('at', at_type), sa.column('actor_id'), sa.column('action'),
                     sa.column('target_id'), sa.column('request_id'),
                     sa.column('before', sa.JSON()), sa.column('after', sa.JSON()),
                     sa.column('result'))
    rows = bind.execute(
        sa.select(audit).where(audit.c.result == 'applied',
                               audit.c.action.in_(sorted(EVENT_TYPES)))
        .order_by(audit.c.at, audit.c.corp_id, audit.c.seq)
    ).mappings().all()
    seq = 0
    batch = []
    for r in rows:
        seq += 1
        subject = _subject(r['target_id'], r['before'], r['after'])
        batch.append({
            'seq': seq, 'event_id': uuid.uuid4().hex, 'corp_id': r['corp_id'],
            'type': EVENT_TYPES[r['action']], 'action': r['action'], 'actor_id': r['actor_id'],
            'subject_kind': subject[0] if subject else None,
            'subject': subject[1] if subject else None,
            'before': r['before'], 'after': r['after'], 'request_id': r['request_id'],
            'at': r['at'],
        })
    if batch:
        json = sa.JSON(none_as_null=True)
        out = sa.table('change_events', *[
            sa.column(c.name, at_type if c.name == 'at'
                      else json if c.name in ('before', 'after') else c.type)
            for c in events.columns])
        op.bulk_insert(out, batch)
    op.bulk_insert(head, [{'id': 1, 'seq': seq}])


def downgrade() -> None:
    op.drop_table('feed_head')
    op.drop_index('ix_change_events_at', table_name='change_events')
    op.drop_table('change_events')
