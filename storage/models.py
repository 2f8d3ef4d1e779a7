"""The schema: SQLAlchemy 2 declarative models. Invariants live here as constraints too."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from bot.core.domain import members as _levels
from bot.core.domain import outbox as _outbox

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend (SQLite stores naive text)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware UTC datetime")

        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None

        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UTCDateTime(), dict[str, Any]: JSON()}


# Admin levels of a member inside Baton (not DingTalk's own flag): bot.core's; also here for
# the code that still reads them from the schema.
OWNER, ADMIN, MEMBER = _levels.OWNER, _levels.ADMIN, _levels.MEMBER


class Member(Base):
    """A person of the corp, keyed by DingTalk userId. ``level`` is owner / admin / member."""

    __tablename__ = "members"
    __table_args__ = (
        UniqueConstraint("corp_id", "user_id"),
        Index("ix_members_role", "corp_id", "role"),
        # Exactly one owner per corp: a partial unique index.
        Index(
            "uq_members_one_owner",
            "corp_id",
            unique=True,
            sqlite_where=text("level = 'owner'"),
            postgresql_where=text("level = 'owner'"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128), default="")
    level: Mapped[str] = mapped_column(String(16), default=MEMBER)
    role: Mapped[str | None] = mapped_column(String(64), default=None)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    # ``import replace`` arms the member's next file for replace mode (until it expires).
    import_mode: Mapped[str | None] = mapped_column(String(16), default=None)
    import_mode_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Grant(Base):
    """A role or permission held by a user through a direct grant, optionally time-bound."""

    __tablename__ = "grants"
    __table_args__ = (
        # One row per user and name: overlapping grants merge into it (longest expiry wins).
        Index("uq_grants_user_name", "corp_id", "user_id", "name", unique=True),
        Index("ix_grants_name", "corp_id", "name"),
        Index("ix_grants_expires", "expires_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    granted_by: Mapped[str] = mapped_column(String(64))
    request_id: Mapped[int | None] = mapped_column(ForeignKey("requests.id"), default=None)
    batch_id: Mapped[str | None] = mapped_column(String(64), default=None)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime | None] = mapped_column(default=None)


class Template(Base):
    """A named permission set; assignments reference it live."""

    __tablename__ = "templates"
    __table_args__ = (UniqueConstraint("corp_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    permissions: Mapped[list[str]] = mapped_column(JSON)
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class TemplateAssignment(Base):
    __tablename__ = "template_assignments"
    __table_args__ = (
        UniqueConstraint("template_id", "user_id"),
        Index("ix_template_assignments_user", "user_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    template_id: Mapped[int] = mapped_column(ForeignKey("templates.id", ondelete="CASCADE"))
    user_id: Mapped[str] = mapped_column(String(64))
    via_dept: Mapped[str | None] = mapped_column(String(64), default=None)
    assigned_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]


class Request(Base):
    """A change that needs approval (owner transfer, sensitive grant, admin change, import)."""

    __tablename__ = "requests"
    __table_args__ = (
        Index("ix_requests_state", "corp_id", "state"),
        # At most one open owner transfer per corp.
        Index(
            "uq_requests_one_open_transfer",
            "corp_id",
            unique=True,
            sqlite_where=text("kind = 'owner_transfer' AND state IN ('pending', 'approved')"),
            postgresql_where=text("kind = 'owner_transfer' AND state IN ('pending', 'approved')"),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    state: Mapped[str] = mapped_column(String(16))
    requester_id: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64), default=None)
    conversation_id: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str] = mapped_column(Text, default="")
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    card_out_track_id: Mapped[str | None] = mapped_column(String(128), default=None)
    source_message_id: Mapped[str | None] = mapped_column(String(128), default=None)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    version: Mapped[int] = mapped_column(Integer, default=1)

    @property
    def public_id(self) -> str:
        return f"R-{self.id}"


class Vote(Base):
    """One decision by one person on one request."""

    __tablename__ = "votes"
    __table_args__ = (UniqueConstraint("request_id", "voter_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"))
    voter_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime]


class ReviewCard(Base):
    """One reviewer's card of an access review (a request of kind ``review``): ``n`` is the
    card's place, and its card reference's reviewer index."""

    __tablename__ = "review_cards"
    __table_args__ = (UniqueConstraint("request_id", "admin_id"),)

    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"),
                                            primary_key=True)
    n: Mapped[int] = mapped_column(Integer, primary_key=True)
    admin_id: Mapped[str] = mapped_column(String(64))


class ReviewItem(Base):
    """One grant under an access review, the admin who decides it, and the decision."""

    __tablename__ = "review_items"
    __table_args__ = (
        CheckConstraint("decision IS NULL OR decision IN ('keep', 'remove', 'unreviewed_keep', "
                        "'unreviewed_revoke')", name="decision"),
    )

    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"),
                                            primary_key=True)
    i: Mapped[int] = mapped_column(Integer, primary_key=True)
    grant_id: Mapped[int] = mapped_column(Integer)     # no foreign key: a removed grant stays named
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(128))
    granted_by: Mapped[str] = mapped_column(String(64))
    expires_at: Mapped[datetime | None] = mapped_column(default=None)
    admin_id: Mapped[str] = mapped_column(String(64))
    decision: Mapped[str | None] = mapped_column(String(32), default=None)
    decided_by: Mapped[str | None] = mapped_column(String(64), default=None)
    decided_at: Mapped[datetime | None] = mapped_column(default=None)
    # The break-glass request the grant came from (its card tags the item); else NULL.
    break_glass: Mapped[int | None] = mapped_column(Integer, default=None)


class UnionId(Base):
    """A member's DingTalk unionId (the to-do API names people by it), looked up once."""

    __tablename__ = "union_ids"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    union_id: Mapped[str] = mapped_column(String(128))


class TodoTask(Base):
    """An approver's DingTalk to-do for a request: ``state`` is ``open`` until the request
    ends, then ``done`` (a done row with no ``task_id``: the request ended before the to-do
    was created, so it never is)."""

    __tablename__ = "todo_tasks"
    __table_args__ = (CheckConstraint("state IN ('open', 'done')", name="state"),)

    request_id: Mapped[int] = mapped_column(ForeignKey("requests.id", ondelete="CASCADE"),
                                            primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    task_id: Mapped[str | None] = mapped_column(String(128), default=None)
    state: Mapped[str] = mapped_column(String(16), default="open")


class AuditEntry(Base):
    """Append-only, hash-chained record of every change and every refusal."""

    __tablename__ = "audit_entries"
    __table_args__ = (
        Index("ix_audit_corp_at", "corp_id", "at"),
        UniqueConstraint("corp_id", "seq"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    seq: Mapped[int] = mapped_column(BigInteger)
    at: Mapped[datetime]
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    target_id: Mapped[str | None] = mapped_column(String(64), default=None)
    request_id: Mapped[int | None] = mapped_column(Integer, default=None)
    message_id: Mapped[str | None] = mapped_column(String(128), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    result: Mapped[str] = mapped_column(String(32))
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


class AuditHead(Base):
    """The tip of each corp's audit chain; locked while appending so the chain stays linear.

    ``anchor_seq`` / ``anchor_hash``: the last entry removed by retention (None until the
    first purge); the chain that is kept starts from it.
    """

    __tablename__ = "audit_heads"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    anchor_seq: Mapped[int | None] = mapped_column(BigInteger, default=None)
    anchor_hash: Mapped[str | None] = mapped_column(String(64), default=None)


class ChangeEventRow(Base):
    """The change feed: one row per applied change, written with its audit entry.

    ``seq`` is global and follows commit order (writers lock :class:`FeedHead`); ``event_id``
    is the stable id receivers deduplicate on."""

    __tablename__ = "change_events"
    __table_args__ = (Index("ix_change_events_at", "at"),)

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    event_id: Mapped[str] = mapped_column(String(40), unique=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(40))
    action: Mapped[str] = mapped_column(String(64))
    actor_id: Mapped[str] = mapped_column(String(64))
    subject_kind: Mapped[str | None] = mapped_column(String(16), default=None)
    subject: Mapped[str | None] = mapped_column(String(200), default=None)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    request_id: Mapped[int | None] = mapped_column(Integer, default=None)
    at: Mapped[datetime]


class FeedHead(Base):
    """The feed's last sequence number (one row, id 1). Locked by every writer until its
    commit, so sequence order is commit order and a reader never sees a gap fill in later."""

    __tablename__ = "feed_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(BigInteger)


class WebhookSubscriber(Base):
    """A webhook subscriber's place in the change feed (its URL, secret and filter are
    configuration). The cursor moves only after a 2xx; a lease (``claimed_until`` with the
    holder's ``claim_token``) lets one sender at a time deliver to it, so each subscriber
    gets the feed in order even with several replicas."""

    __tablename__ = "webhook_subscribers"
    __table_args__ = (
        CheckConstraint("state IN ('active', 'paused')", name="state"),
        CheckConstraint("cursor >= 0", name="cursor"),
    )

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    cursor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16), default="active")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    claim_token: Mapped[str | None] = mapped_column(String(32), default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    last_delivered_at: Mapped[datetime | None] = mapped_column(default=None)
    paused_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
class PagedAnswer(Base):
    """The last long answer (more than one page) a member got in a conversation, and the
    page they saw: what ``next`` / ``下一页`` continues. One row per member and conversation;
    each page is read from the store again when it is asked for."""

    __tablename__ = "paged_answers"
    __table_args__ = (
        UniqueConstraint("corp_id", "conversation_key", "user_id"),
        CheckConstraint("page >= 1", name="page_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    conversation_key: Mapped[str] = mapped_column(String(200))
    user_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    page: Mapped[int] = mapped_column(Integer)
    updated_at: Mapped[datetime]
class ApiToken(Base):
    """A bearer token of the decision API, stored only as its SHA-256 (the token itself is
    shown once, at ``baton token create``). Revoked tokens stay, with ``revoked_at``: their
    count is the epoch a replica's token cache checks on every request."""

    __tablename__ = "api_tokens"
    __table_args__ = (UniqueConstraint("token_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(32))
    token_hash: Mapped[str] = mapped_column(String(64))
    created_by: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None] = mapped_column(default=None)


class ProcessedMessage(Base):
    """Inbound ids already handled; the primary key makes a redelivery a no-op."""

    __tablename__ = "processed_messages"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]


class OutboxMessage(Base):
    """Something to send, written in the same transaction as the change it reports."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_due", "status", "next_attempt_at"),
        Index("ix_outbox_conv_counted", "conversation_key", "counted_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    conversation_key: Mapped[str] = mapped_column(String(160))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    session_webhook: Mapped[str | None] = mapped_column(Text, default=None)
    webhook_expires_at: Mapped[datetime | None] = mapped_column(default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime]
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None] = mapped_column(default=None)
    # When it was sent, if it took a slot of its conversation's per-minute budget (a message
    # the conversation sees: not a card update, not an alert merged into another message).
    counted_at: Mapped[datetime | None] = mapped_column(default=None)
    last_error: Mapped[str | None] = mapped_column(Text, default=None)
    source_message_id: Mapped[str | None] = mapped_column(String(128), default=None)



# An outbox row as the sender claims it: bot.core's value; also here for the code that
# still reads it from the schema.
OutboxRow = _outbox.OutboxRow


class DueWork(Base):
    """Scheduled work (reminders, expiries, reviews); the scheduler only wakes us to look."""

    __tablename__ = "due_work"
    __table_args__ = (
        Index("ix_due_work_due", "status", "due_at"),
        UniqueConstraint("dedupe_key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    due_at: Mapped[datetime]
    payload: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    dedupe_key: Mapped[str | None] = mapped_column(String(200), default=None)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    claimed_until: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    done_at: Mapped[datetime | None] = mapped_column(default=None)
    created_at: Mapped[datetime]


class Snapshot(Base):
    """A backup of a corp's permission state taken before a sensitive change."""

    __tablename__ = "snapshots"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    corp_id: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(128))
    request_id: Mapped[int | None] = mapped_column(Integer, default=None)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime]


class DingTalkAdmin(Base):
    """DingTalk's admin list as Baton last saw it (``topapi/user/listadmin``), so a change
    made in DingTalk's console shows as a difference (admin drift)."""

    __tablename__ = "dingtalk_admins"
    __table_args__ = (
        CheckConstraint("sys_level IN (1, 2)", name="sys_level"),
    )

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    sys_level: Mapped[int] = mapped_column(Integer)     # 1 main administrator, 2 sub-admin
    seen_at: Mapped[datetime]
class DingTalkRole(Base):
    """A mapped catalog role's DingTalk role label (通讯录角色): its ids, found or created on
    start, read when a role call is sent."""

    __tablename__ = "dingtalk_roles"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(64), primary_key=True)
    dingtalk_name: Mapped[str] = mapped_column(String(128))
    role_id: Mapped[int] = mapped_column(BigInteger)
    group_id: Mapped[int] = mapped_column(BigInteger)
    updated_at: Mapped[datetime]


class SyncMark(Base):
    """A named mark an integration keeps: a cursor, or that a once-only alert went out
    (e.g. ``budget:2026-12:80``, ``roles.denied``)."""

    __tablename__ = "sync_marks"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120), primary_key=True)
    value: Mapped[str] = mapped_column(String(200), default="")
    updated_at: Mapped[datetime]


class ApiCallMonth(Base):
    """Metered DingTalk OpenAPI calls of a month, summed over every replica."""

    __tablename__ = "api_call_months"

    corp_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    month: Mapped[str] = mapped_column(String(7), primary_key=True)     # 2026-12
    calls: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime]
