"""Access review campaigns get their own tables: review_cards and review_items

Until now a campaign kept its reviewers (``admins``) and its items (``items``, with their
decisions) in its request row's JSON payload. Every campaign, open or closed (``review
status`` shows the last one), is carried over into the tables and those keys leave the
payload; the downgrade puts them back as they were.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-04
"""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_requests = sa.table('requests', sa.column('id', sa.Integer), sa.column('kind', sa.String),
                     sa.column('payload', sa.JSON))
_cards = sa.table('review_cards', sa.column('request_id', sa.Integer),
                  sa.column('n', sa.Integer), sa.column('admin_id', sa.String))
_items = sa.table(
    'review_items', sa.column('request_id', sa.Integer), sa.column('i', sa.Integer),
    sa.column('grant_id', sa.Integer), sa.column('user_id', sa.String),
    sa.column('name', sa.String), sa.column('granted_by', sa.String),
    sa.column('expires_at', sa.DateTime(timezone=True)), sa.column('admin_id', sa.String),
    sa.column('decision', sa.String), sa.column('decided_by', sa.String),
    sa.column('decided_at', sa.DateTime(timezone=True)))


def _when(iso: Any) -> datetime | None:
    return datetime.fromisoformat(iso).astimezone(UTC) if iso else None


def _iso(at: datetime | None) -> str | None:
    if at is None:
        return None
    return (at if at.tzinfo else at.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


def upgrade() -> None:
    op.create_table('review_cards',
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('n', sa.Integer(), nullable=False),
    sa.Column('admin_id', sa.String(length=64), nullable=False),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_review_cards_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'n', name=op.f('pk_review_cards')),
    sa.UniqueConstraint('request_id', 'admin_id', name=op.f('uq_review_cards_request_id'))
    )
    op.create_table('review_items',
    sa.Column('request_id', sa.Integer(), nullable=False),
    sa.Column('i', sa.Integer(), nullable=False),
    sa.Column('grant_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.String(length=64), nullable=False),
    sa.Column('name', sa.String(length=128), nullable=False),
    sa.Column('granted_by', sa.String(length=64), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('admin_id', sa.String(length=64), nullable=False),
    sa.Column('decision', sa.String(length=32), nullable=True),
    sa.Column('decided_by', sa.String(length=64), nullable=True),
    sa.Column('decided_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("decision IS NULL OR decision IN ('keep', 'remove', 'unreviewed_keep', 'unreviewed_revoke')", name=op.f('ck_review_items_decision')),
    sa.ForeignKeyConstraint(['request_id'], ['requests.id'], name=op.f('fk_review_items_request_id_requests'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('request_id', 'i', name=op.f('pk_review_items'))
    )
    bind = op.get_bind()
    rows = bind.execute(sa.select(_requests.c.id, _requests.c.payload)
                        .where(_requests.c.kind == 'review').order_by(_requests.c.id)).all()
    for req_id, old in rows:
        payload = dict(old or {})
        admins = [str(a) for a in payload.pop('admins', [])]
        items = list(payload.pop('items', []))
        if admins:
            bind.execute(sa.insert(_cards), [{'request_id': req_id, 'n': n, 'admin_id': a}
                                             for n, a in enumerate(admins)])
        if items:
            bind.execute(sa.insert(_items), [{
                'request_id': req_id, 'i': int(it['i']), 'grant_id': int(it['grant_id']),
                'user_id': it['user'], 'name': it['name'], 'granted_by': it['granted_by'],
                'expires_at': _when(it.get('expires_at')), 'admin_id': it['admin'],
                'decision': it.get('decision'), 'decided_by': it.get('by'),
                'decided_at': _when(it.get('at'))} for it in items])
        bind.execute(sa.update(_requests).where(_requests.c.id == req_id)
                     .values(payload=payload))


def downgrade() -> None:
    bind = op.get_bind()
    rows = bind.execute(sa.select(_requests.c.id, _requests.c.payload)
                        .where(_requests.c.kind == 'review').order_by(_requests.c.id)).all()
    for req_id, payload in rows:
        admins = [a for (a,) in bind.execute(
            sa.select(_cards.c.admin_id).where(_cards.c.request_id == req_id)
            .order_by(_cards.c.n))]
        items = [{
            'i': r.i, 'grant_id': r.grant_id, 'user': r.user_id, 'name': r.name,
            'granted_by': r.granted_by, 'expires_at': _iso(r.expires_at), 'admin': r.admin_id,
            'decision': r.decision, 'by': r.decided_by, 'at': _iso(r.decided_at),
        } for r in bind.execute(sa.select(_items).where(_items.c.request_id == req_id)
                                .order_by(_items.c.i))]
        bind.execute(sa.update(_requests).where(_requests.c.id == req_id)
                     .values(payload={'items': items, 'admins': admins, **(payload or {})}))
    op.drop_table('review_items')
    op.drop_table('review_cards')
