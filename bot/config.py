"""Typed configuration: a YAML file, then ``BATON_`` environment overrides, then secrets.

Order of precedence (highest first): ``BATON_*`` environment variables (``__`` between
levels, e.g. ``BATON_DATABASE__URL``), the YAML file, the defaults below. The DingTalk
secrets come only from the environment (``DINGTALK_CLIENT_ID``, ``DINGTALK_CLIENT_SECRET``);
``DINGTALK_OPENAPI_ENDPOINT`` (the SDK's own variable) moves the new-API host.
"""

from __future__ import annotations

import os
import re
from datetime import UTC, datetime, time, timedelta
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from apscheduler.triggers.cron import CronTrigger
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from bot.core.domain import feed

DEFAULT_OPENAPI = "https://api.dingtalk.com"
DEFAULT_OAPI = "https://oapi.dingtalk.com"

_DURATION = re.compile(r"^\s*(\d+)\s*(s|sec|m|min|h|d|w|秒|分钟|分|小时|时|天|日|周)\s*$", re.I)
_UNIT_SECONDS = {
    "s": 1, "sec": 1, "秒": 1,
    "m": 60, "min": 60, "分钟": 60, "分": 60,
    "h": 3600, "小时": 3600, "时": 3600,
    "d": 86400, "天": 86400, "日": 86400,
    "w": 604800, "周": 604800,
}


def config_duration(value: Any) -> timedelta:
    """Parse a configuration duration: ``10s``, ``30m``, ``12h``, ``7d``, ``2w``, ``3天`` or seconds."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return timedelta(seconds=float(value))
    if isinstance(value, str):
        m = _DURATION.match(value)
        if m:
            return timedelta(seconds=int(m.group(1)) * _UNIT_SECONDS[m.group(2).lower()])
    raise ValueError(
        f"{value!r} is not a duration; write a number and a unit, e.g. 10s, 30m, 12h, 7d, 2w"
    )


def optional_duration(value: Any) -> timedelta | None:
    """:func:`config_duration`, or None (no limit) as written or as a dump of the settings
    has it."""
    return None if value is None else config_duration(value)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid")


class StreamSettings(_Section):
    connect_timeout: float = 10.0
    """Seconds allowed for the gateway call and the websocket handshake."""
    watchdog: float = 90.0
    """Reconnect when nothing at all arrived on the socket for this many seconds."""
    reconnect_max: float = 30.0
    """Upper bound of the jittered reconnect backoff after failures."""
    max_frame_bytes: int = Field(default=256 * 1024, ge=4096)
    """Frames larger than this are acked and dropped (the socket stays up)."""


class DingTalkSettings(_Section):
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    robot_code: str = ""
    """Defaults to client_id (an internal app's robot code is its AppKey)."""
    openapi_endpoint: str = DEFAULT_OPENAPI
    oapi_endpoint: str = DEFAULT_OAPI
    card_template_id: str = "baton-approval.schema"
    exclusive_accounts: bool = False
    request_timeout: float = 5.0
    max_retries: int = 4
    monthly_call_budget: int = Field(default=10_000, ge=1)
    """Metered OpenAPI calls the corp may make a month (a standard corp: 10,000, for all its
    internal apps together). At 80% and at 100% of it, one warning a month goes to
    ``org.alert_conversation``."""
    stream: StreamSettings = StreamSettings()

    @property
    def effective_robot_code(self) -> str:
        return self.robot_code or self.client_id

    @property
    def has_credentials(self) -> bool:
        return bool(self.client_id and self.client_secret.get_secret_value())


class DatabaseSettings(_Section):
    url: str = "sqlite+aiosqlite:///baton.db"
    busy_timeout_ms: int = 5000
    pool_size: int = 5
    echo: bool = False


class OrgSettings(_Section):
    corp_id: str = "default"
    owner: str | None = None
    admins: list[str] = Field(default_factory=list)
    admin_conversations: list[str] = Field(default_factory=list)
    alert_conversation: str | None = None
    bootstrap_from_dingtalk: bool = True


class LocaleSettings(_Section):
    default: Literal["zh-CN", "en"] = "zh-CN"
    follow_user: bool = True
    """Answer a command in the language its command word was written in."""

    @property
    def lang(self) -> Literal["zh", "en"]:
        return "zh" if self.default == "zh-CN" else "en"


APPROVER_WORDS = ("owner", "admins", "manager", "dept_leader")


class UsersApprover(_Section):
    users: list[str] = Field(min_length=1)


class RoleApprover(_Section):
    role: str


Approver = Literal["owner", "admins", "manager", "dept_leader"] | UsersApprover | RoleApprover
_DEFAULT_APPROVERS: list[Approver] = ["owner", "admins"]
_APPROVER_HELP = "owner, admins, manager, dept_leader, {users: [userId, ...]} or {role: <role>}"


def approver_list(v: Any) -> Any:
    """One clear message for an approver that is none of the accepted forms."""
    if v is None:
        return v
    if not isinstance(v, list) or not v:
        raise ValueError(f"must be a non-empty list of {_APPROVER_HELP}")
    for item in v:
        ok = (isinstance(item, str) and item in APPROVER_WORDS) or isinstance(
            item, UsersApprover | RoleApprover) or (
            isinstance(item, dict) and len(item) == 1 and set(item) <= {"users", "role"})
        if not ok:
            raise ValueError(f"{item!r} is not an approver; use {_APPROVER_HELP}")
    return v


class AutoApprove(_Section):
    """Apply a member's request at once when every condition given holds."""

    departments: list[str] | None = None
    """The requester is in one of these departments (names or ids, from the directory)."""
    max_duration: timedelta | None = None
    """The (capped) duration asked for is at most this."""

    _dur = field_validator("max_duration", mode="before")(optional_duration)

    @model_validator(mode="after")
    def _some(self) -> AutoApprove:
        if self.departments is None and self.max_duration is None:
            raise ValueError("auto_approve needs departments, max_duration or both")
        if self.departments is not None and not self.departments:
            raise ValueError("auto_approve.departments is empty; list departments or remove it")
        return self


class PermissionPolicy(_Section):
    """A permission's own policy for member requests (over the defaults under ``policy``)."""

    approvers: list[Approver] | None = None
    approvals_required: int | None = Field(default=None, ge=1)
    max_duration: timedelta | None = None
    auto_approve: AutoApprove | None = None
    requestable: bool = True

    _dur = field_validator("max_duration", mode="before")(optional_duration)

    _approvers = field_validator("approvers", mode="before")(approver_list)


class LocalizedName(_Section):
    zh: str
    en: str
    policy: PermissionPolicy | None = None


class CatalogSettings(_Section):
    permissions: dict[str, LocalizedName] = Field(default_factory=dict)
    roles: dict[str, list[str]] = Field(default_factory=dict)
    sensitive: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> CatalogSettings:
        problems = []
        for role, perms in self.roles.items():
            if role in ("owner", "admin"):
                problems.append(f"roles.{role}: owner and admin are built in; pick another name")
            for perm in perms:
                if not any(fnmatchcase(p, perm) for p in self.permissions):
                    problems.append(f"roles.{role}: {perm!r} matches no permission in the catalog")
        for name in self.sensitive:
            if name not in self.roles and name not in self.permissions:
                problems.append(f"sensitive: {name!r} is neither a role nor a permission")
        for pid, names in self.permissions.items():
            policy = names.policy
            for a in (policy.approvers or []) if policy else []:
                if isinstance(a, RoleApprover) and a.role not in self.roles:
                    problems.append(f"permissions.{pid}.policy.approvers: role {a.role!r} is "
                                    "not a role of the catalog")
        if problems:
            raise ValueError("; ".join(problems))
        return self


class BreakGlassSettings(_Section):
    """Emergency access: who may take which permissions at once, for how long at most."""

    users: list[str] = Field(default_factory=list)
    permissions: list[str] = Field(default_factory=list)
    max: timedelta = timedelta(hours=1)

    _dur = field_validator("max", mode="before")(config_duration)


class PolicySettings(_Section):
    approvals_required: int = Field(default=1, ge=1)
    owner_candidates: Literal["admins", "members"] = "admins"
    previous_owner: Literal["admin", "member"] = "admin"
    approval_ttl: timedelta = timedelta(hours=24)
    remind_every: timedelta = timedelta(hours=4)
    remind_max: timedelta = timedelta(hours=24)
    escalate_after: timedelta = timedelta(hours=12)
    post_transfer_review: timedelta = timedelta(days=7)
    quiet_hours: str | None = "22:00-08:00"
    timezone: str = "Asia/Shanghai"
    # Member requests (section 13): the defaults a permission's own ``policy`` overrides.
    approvers: list[Approver] = Field(default_factory=_DEFAULT_APPROVERS.copy)
    max_duration: timedelta | None = timedelta(days=7)
    """The longest a member may ask for; longer asks are capped (null: no cap)."""
    expiry_warning: timedelta = timedelta(hours=1)
    """The holder of a time-bound grant is warned once, at 20% of its life left or this
    long before it ends, whichever comes later."""
    calendar: Literal["cn"] | None = None
    break_glass: BreakGlassSettings = Field(default_factory=BreakGlassSettings)

    _dur = field_validator(
        "approval_ttl", "remind_every", "remind_max", "escalate_after", "post_transfer_review",
        "expiry_warning", mode="before",
    )(config_duration)

    @field_validator("max_duration", mode="before")
    @classmethod
    def _max(cls, v: Any) -> timedelta | None:
        return None if v is None else config_duration(v)

    _approvers = field_validator("approvers", mode="before")(approver_list)

    @field_validator("quiet_hours", mode="before")
    @classmethod
    def _quiet(cls, v: object) -> str | None:
        # null (or off, which YAML reads as false); from the environment
        # (BATON_POLICY__QUIET_HOURS) "", "null", "none" or "off".
        if v is None or v is False or (
                isinstance(v, str) and v.strip().lower() in ("", "null", "none", "off")):
            return None
        if not isinstance(v, str):
            raise ValueError(f"{v!r} is not a time range; write it as \"22:00-08:00\", or null")
        try:
            start, end = v.split("-")
            time.fromisoformat(start.strip())
            time.fromisoformat(end.strip())
        except ValueError:
            raise ValueError(f"{v!r} is not a time range; write it as \"22:00-08:00\"") from None
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            ZoneInfo(v)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"{v!r} is not a known time zone, e.g. Asia/Shanghai") from None
        return v


def _cron_line(v: str) -> str:
    try:
        trigger = CronTrigger.from_crontab(v, timezone=UTC)
    except ValueError as e:
        raise ValueError(f"{v!r} is not a crontab line (minute hour day month weekday, "
                         f"e.g. \"30 2 * * *\"): {e}") from None
    if trigger.get_next_fire_time(None, datetime.now(UTC)) is None:
        raise ValueError(f"{v!r} never fires")
    return v


class ReviewSettings(_Section):
    cron: str = "0 9 1 1,4,7,10 *"
    unreviewed: Literal["keep", "revoke"] = "keep"
    deadline: timedelta = timedelta(days=14)
    _dur = field_validator("deadline", mode="before")(config_duration)

    _cron = field_validator("cron")(_cron_line)


class DriftSettings(_Section):
    """Admin drift and offboarding: DingTalk's contact and admin events are handled as they
    arrive; ``sweep`` (a crontab line in ``policy.timezone``, daily by default) compares
    DingTalk's admin list and directory with the store as a net under missed events."""

    sweep: str = "0 7 * * *"
    enabled: bool = True

    _sweep = field_validator("sweep")(_cron_line)


class SchedulerSettings(_Section):
    poll_interval: timedelta = timedelta(seconds=30)
    lease: timedelta = timedelta(minutes=2)
    """How long a replica holds a due row it claimed. A job still running after this may be
    taken and run again by another replica (or by this one on its next pass); keep it above
    the longest due job, and longer than ``poll_interval``."""

    _dur = field_validator("poll_interval", "lease", mode="before")(config_duration)

    @field_validator("lease")
    @classmethod
    def _lease_over_poll(cls, v: timedelta, info: ValidationInfo) -> timedelta:
        poll = info.data.get("poll_interval")
        if poll is not None and v <= poll:
            raise ValueError(
                f"{_seconds(v)} is not longer than poll_interval ({_seconds(poll)}): a claim "
                f"would lapse before the next look for due work; write e.g. lease: "
                f"{_seconds(max(poll * 4, timedelta(minutes=2)))}")
        return v


def _seconds(td: timedelta) -> str:
    return f"{td.total_seconds():g}s"


class OutboxSettings(_Section):
    per_conversation_per_minute: int = Field(default=20, ge=1)
    max_attempts: int = Field(default=8, ge=1)
    base_backoff: float = 1.0
    max_backoff: float = 300.0
    lease: timedelta = timedelta(seconds=60)
    """How long a claimed row is reserved for the sender that claimed it. A replica that dies
    mid-send leaves its rows to the others (or to itself after a restart) once this passes;
    keep it well above the HTTP timeout, or a slow send may be sent twice. Sends are marked
    by the sender's next transaction, or by the conversation itself once a third of the lease
    has passed since its cycle began."""

    _lease = field_validator("lease", mode="before")(config_duration)


class LimitsSettings(_Section):
    """Abuse limits, per replica (each process counts what it receives)."""

    user_per_minute: int = Field(default=20, ge=1)
    """Commands one member may send per minute before being asked to slow down."""
    conversation_per_minute: int = Field(default=60, ge=1)
    """Commands one conversation may carry per minute."""
    group_share: float = Field(default=0.5, gt=0, le=1)
    """The part of a group's outbound budget (outbox.per_conversation_per_minute) one member's
    commands may use per minute, their slow-down notice included; the rest stays for the
    others. With the defaults (20 and 0.5): 9 commands a member a minute in one group."""
    alert_window: timedelta = timedelta(seconds=30)
    """Alerts to org.alert_conversation that fall within this window go out as one message."""

    _dur = field_validator("alert_window", mode="before")(config_duration)


class BulkSettings(_Section):
    """Bulk import and export (``export``, a file sent to Baton, ``baton export/import``).

    Both bound what an import accepts; an export that would exceed them still writes its
    file but says which key to raise before the file can be imported again."""

    max_rows: int = Field(default=200_000, ge=1, le=5_000_000)
    """Data rows an import file may hold (and an export may write and still re-import).
    The inflated size a workbook may stream to is derived from it (1 KiB a row)."""
    max_file_mb: float = Field(default=20, gt=0, le=1024)
    """The file's size as sent or downloaded, in MB (MiB)."""

    @property
    def max_bytes(self) -> int:
        return int(self.max_file_mb * 1024 * 1024)


AUDIT_MIN_RETENTION = timedelta(days=180)


class AuditSettings(_Section):
    retention: timedelta = AUDIT_MIN_RETENTION
    """Audit entries older than this are removed daily (the chain stays verifiable)."""

    @field_validator("retention", mode="before")
    @classmethod
    def _at_least(cls, v: Any) -> timedelta:
        d = config_duration(v)
        if d < AUDIT_MIN_RETENTION:
            raise ValueError(f"{v!r} is too short: the audit trail is kept at least 180 days "
                             "(write 180d or more, e.g. 26w or 365d)")
        return d


class OpsSettings(_Section):
    """The operations endpoint (/healthz, /metrics). Off unless ``port`` is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)
    max_outbox_age: timedelta = timedelta(minutes=5)
    """Unhealthy when the oldest pending outbound message is older than this."""
    max_schedule_lag: timedelta = timedelta(minutes=5)
    """Unhealthy when due work is this late."""

    _dur = field_validator("max_outbox_age", "max_schedule_lag", mode="before")(config_duration)


class DingTalkRolesSettings(_Section):
    """Catalog roles mirrored as DingTalk role labels (通讯录角色). Off unless ``enabled``."""

    enabled: bool = False
    group: str = Field(default="Baton", min_length=1, max_length=64)
    """The DingTalk role group Baton finds or creates for its roles."""
    map: dict[str, str] = Field(default_factory=dict)
    """catalog role -> DingTalk role name (inside ``group``)."""
    mode: Literal["enforce", "report"] = "enforce"
    """enforce: a reconcile makes DingTalk match Baton; report: it only alerts."""
    reconcile: str = "30 2 * * *"
    """When to compare DingTalk with the store (crontab, in policy.timezone); also after
    every start."""
    clock_slack: timedelta = timedelta(seconds=1)
    """How far replicas' clocks may differ: a role call another replica sent up to this long
    before a reconcile began reading DingTalk counts as in flight, not as drift (0s for one
    process)."""

    _cron = field_validator("reconcile")(_cron_line)
    _slack = field_validator("clock_slack", mode="before")(config_duration)

    @field_validator("map")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        problems = [f"{k}: the DingTalk role name is empty" for k, name in v.items()
                    if not name.strip()]
        names = [n.strip() for n in v.values()]
        problems += [f"{n!r} is mapped from more than one catalog role"
                     for n in sorted({n for n in names if names.count(n) > 1})]
        if problems:
            raise ValueError("; ".join(problems))
        return {k: name.strip() for k, name in v.items()}


_ENV_REF = re.compile(r"^\$\{([A-Za-z_][A-Za-z0-9_]*)\}$")
_WEBHOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")


class WebhookSettings(_Section):
    """One subscriber of the change feed (``integrations.webhooks[]``)."""

    name: str
    """Its name in `baton webhooks list|replay` and in /metrics: lower-case letters, digits,
    ``-``, ``_``, ``.``."""
    url: str
    """Where each event is POSTed (http or https)."""
    secret: SecretStr
    """The HMAC-SHA256 signing key, from the environment only: write ``${ENV_NAME}``."""
    events: tuple[str, ...] = ("*",)
    """Event types to send (see bot/core/domain/feed.py TYPES), or ``*`` for all."""
    max_attempts: int = Field(default=10, ge=1, le=1000)
    """Failed attempts at one event before the subscriber is paused (and an alert goes out)."""
    timeout: float = Field(default=10.0, gt=0, le=120)
    """Seconds allowed for one POST (connect to last byte of the answer)."""

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _WEBHOOK_NAME.match(v):
            raise ValueError(f"{v!r} is not a webhook name: use lower-case letters, digits, "
                             "'-', '_' or '.', at most 64, e.g. crm")
        return v

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        scheme, sep, rest = v.partition("://")
        if not sep or scheme.lower() not in ("http", "https") or not rest.split("/", 1)[0]:
            raise ValueError(f"{v!r} is not an http(s) URL, e.g. https://crm.example.com/baton")
        return v

    @field_validator("secret", mode="before")
    @classmethod
    def _secret(cls, v: Any) -> Any:
        if isinstance(v, SecretStr):
            return v    # settings already loaded, validated again (model_dump, copy)
        ref = _ENV_REF.match(v) if isinstance(v, str) else None
        if ref is None:
            raise ValueError("secrets are read only from the environment: write ${ENV_NAME} "
                             "(e.g. secret: ${CRM_WEBHOOK_SECRET}) and set that variable")
        value = os.environ.get(ref.group(1), "")
        if not value:
            raise ValueError(f"the environment variable {ref.group(1)} is not set or empty")
        return value

    @field_validator("events", mode="before")
    @classmethod
    def _events(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list | tuple) or not v:
            raise ValueError("events must be a list of event types, or [\"*\"] for all")
        unknown = sorted(str(e) for e in v if e != "*" and e not in feed.TYPES)
        if unknown:
            raise ValueError(f"unknown event type(s) {', '.join(unknown)}; known: "
                             f"{', '.join(sorted(feed.TYPES))} (or * for all)")
        return tuple(v)


class WebhookDeliverySettings(_Section):
    """How the webhook sender retries and polls (for every subscriber)."""

    base_backoff: float = Field(default=2.0, gt=0)
    """Seconds before the first retry of a failed POST; doubled each time, jittered."""
    max_backoff: float = Field(default=600.0, gt=0)
    """The longest wait between two attempts."""
    poll_interval: timedelta = timedelta(seconds=2)
    """How often a replica looks for events other replicas committed (its own commits wake
    it at once)."""
    batch: int = Field(default=200, ge=1, le=1000)
    """Events one round takes for a subscriber (sent one after another, in order). The
    cursor is written about once a second and at the round's end, so a crash sends again
    what was acknowledged since (at most this many)."""
    lease: timedelta = timedelta(seconds=60)
    """How long one sender holds a subscriber: another replica (or this one after a
    restart) takes it over when it runs out. A round sends no POST that could end past
    half of it, so keep it above twice every webhook's ``timeout``."""

    _dur = field_validator("poll_interval", "lease", mode="before")(config_duration)


class IntegrationsSettings(_Section):
    """What Baton tells other systems."""

    webhooks: tuple[WebhookSettings, ...] = ()
    """Subscribers of the change feed, each POSTed every event in order, signed."""
    webhook_delivery: WebhookDeliverySettings = WebhookDeliverySettings()
    dingtalk_roles: DingTalkRolesSettings = DingTalkRolesSettings()
    """Catalog roles mirrored as DingTalk role labels (通讯录角色)."""
    dingtalk_todo: bool = False
    """Each approver of a member's request also gets a DingTalk to-do (待办), marked done when
    the request ends (the app needs the to-do permission, Todo.Todo.Write)."""

    @field_validator("webhooks")
    @classmethod
    def _unique(cls, v: tuple[WebhookSettings, ...]) -> tuple[WebhookSettings, ...]:
        names = [w.name for w in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"webhook names must be unique; given twice: {', '.join(twice)}")
        return v

    @model_validator(mode="after")
    def _lease(self) -> IntegrationsSettings:
        half = self.webhook_delivery.lease.total_seconds() / 2
        slow = [w.name for w in self.webhooks if w.timeout >= half]
        if slow:
            raise ValueError(f"webhook timeout of {', '.join(slow)} must be under half of "
                             f"integrations.webhook_delivery.lease ({half:g}s)")
        return self
class ApiSettings(_Section):
    """The decision API (/v1/...): answers for in-house systems. Off unless ``port`` is set."""

    host: str = "127.0.0.1"
    port: int | None = Field(default=None, ge=0, le=65535)
    rate_per_second: float = Field(default=200.0, gt=0)
    """Each token's sustained rate (a token bucket per token, in each replica)."""
    burst: int = Field(default=400, ge=1)
    """How many requests a token may make at once before the rate applies."""
    max_wait: timedelta = timedelta(seconds=2)
    """How long a request with ``at_least=<seq>`` waits for the index to reach it."""
    page_size: int = Field(default=100, ge=1, le=1000)
    """Holders and events per page unless the caller asks for fewer (``limit``)."""
    token_cache: timedelta = timedelta(minutes=5)
    """How long a verified token is trusted without the store (a revoke still ends it
    on the next request: the freshness read carries the revoke epoch)."""

    _dur = field_validator("max_wait", "token_cache", mode="before")(config_duration)


class LogSettings(_Section):
    level: str = "INFO"
    json_format: bool = False

    @field_validator("level")
    @classmethod
    def _level(cls, v: str) -> str:
        if v.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
            raise ValueError("is not a log level (DEBUG, INFO, WARNING, ERROR or CRITICAL)")
        return v.upper()


class Settings(BaseSettings):
    """All of Baton's configuration. Build with :func:`load_settings`."""

    model_config = SettingsConfigDict(
        env_prefix="BATON_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    dingtalk: DingTalkSettings = DingTalkSettings()
    database: DatabaseSettings = DatabaseSettings()
    org: OrgSettings = OrgSettings()
    locale: LocaleSettings = LocaleSettings()
    catalog: CatalogSettings = CatalogSettings()
    policy: PolicySettings = PolicySettings()
    review: ReviewSettings = ReviewSettings()
    drift: DriftSettings = DriftSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    outbox: OutboxSettings = OutboxSettings()
    limits: LimitsSettings = LimitsSettings()
    ops: OpsSettings = OpsSettings()
    api: ApiSettings = ApiSettings()
    audit: AuditSettings = AuditSettings()
    integrations: IntegrationsSettings = IntegrationsSettings()
    bulk: BulkSettings = BulkSettings()
    log: LogSettings = LogSettings()

    @model_validator(mode="after")
    def _mapped_roles_exist(self) -> Settings:
        roles = self.integrations.dingtalk_roles
        unknown = sorted(set(roles.map) - set(self.catalog.roles))
        if unknown:
            known = ", ".join(sorted(self.catalog.roles)) or "none"
            raise ValueError(f"integrations.dingtalk_roles.map: {', '.join(unknown)} is not a "
                             f"role of catalog.roles (known: {known})")
        if roles.enabled and not roles.map:
            raise ValueError("integrations.dingtalk_roles: enabled with an empty map; map at "
                             "least one catalog role to a DingTalk role name, or turn it off")
        return self

    @model_validator(mode="after")
    def _policy_names(self) -> Settings:
        """Names in ``policy`` that must be in the catalog."""
        problems = []
        for name in self.policy.break_glass.permissions:
            if name not in self.catalog.permissions:
                problems.append(f"policy.break_glass.permissions: {name!r} is not a permission "
                                "of the catalog")
        for a in self.policy.approvers:
            if isinstance(a, RoleApprover) and a.role not in self.catalog.roles:
                problems.append(f"policy.approvers: role {a.role!r} is not a role of the catalog")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Environment first, then what load_settings passed in (the YAML file).
        return (env_settings, init_settings)


class ConfigError(Exception):
    """The configuration is unusable; ``str(err)`` lists every problem in plain words."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


def _describe(err: ValidationError) -> list[str]:
    out = []
    for e in err.errors():
        where = ".".join(str(p) for p in e["loc"]) or "(top level)"
        msg = e["msg"].removeprefix("Value error, ")
        if e["type"] == "extra_forbidden":
            msg = "is not a known setting (check the spelling against config.example.yaml)"
        out.append(f"{where}: {msg}")
    return out


def load_settings(path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
    """Read ``path`` (YAML) and the environment; raise :class:`ConfigError` on any problem."""
    environ = os.environ if env is None else env
    data: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError([f"{p}: no such file"])
        try:
            loaded = yaml.safe_load(p.read_text(encoding="utf-8"))
        except yaml.YAMLError as e:
            raise ConfigError([f"{p}: not valid YAML: {e}"]) from None
        if loaded is not None and not isinstance(loaded, dict):
            raise ConfigError([f"{p}: the top level must be a mapping of sections"])
        data = loaded or {}
    ding = dict(data.get("dingtalk") or {})
    if "client_secret" in ding or "client_id" in ding:
        raise ConfigError([
            "dingtalk.client_id / client_secret: secrets are read only from the environment "
            "(DINGTALK_CLIENT_ID, DINGTALK_CLIENT_SECRET); remove them from the file"
        ])
    if environ.get("DINGTALK_CLIENT_ID"):
        ding["client_id"] = environ["DINGTALK_CLIENT_ID"]
    if environ.get("DINGTALK_CLIENT_SECRET"):
        ding["client_secret"] = environ["DINGTALK_CLIENT_SECRET"]
    if environ.get("DINGTALK_OPENAPI_ENDPOINT"):
        ding["openapi_endpoint"] = environ["DINGTALK_OPENAPI_ENDPOINT"]
    if ding:
        data["dingtalk"] = ding
    sections = {name.upper() for name in Settings.model_fields}
    stray = sorted(k for k in environ if k.upper().startswith("BATON_") and "__" in k
                   and k.upper()[6:].split("__", 1)[0] not in sections)
    if stray:
        known = ", ".join(sorted(x.lower() for x in sections))
        raise ConfigError([f"{k[6:].split('__', 1)[0].lower()} (from {k}): no such section; "
                           f"known sections: {known}" for k in stray])
    saved = None
    if env is not None:  # let tests pass an explicit environment
        saved = dict(os.environ)
        os.environ.clear()
        os.environ.update(env)
    try:
        return Settings(**data)
    except ValidationError as e:
        raise ConfigError(_describe(e)) from None
    finally:
        if saved is not None:
            os.environ.clear()
            os.environ.update(saved)
