"""The command value objects: what a chat message means once it has been parsed.

Every command is a frozen dataclass carrying a ``command_name`` class variable, its
canonical English form (used by help, metrics and audit). Users are always resolved
DingTalk ``userId``s, never display names.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import ClassVar, Literal, TypeAlias

from ..lang import Lang


@dataclass(frozen=True, slots=True)
class UserRef:
    """A member, by their resolved DingTalk ``userId``."""

    user_id: str


@dataclass(frozen=True, slots=True)
class DeptRef:
    """A department as written after ``dept:`` (a name or an id; resolved later)."""

    key: str


@dataclass(frozen=True, slots=True)
class Help:
    command_name: ClassVar[str] = "help"
    topic: str | None = None


@dataclass(frozen=True, slots=True)
class WhoAmI:
    command_name: ClassVar[str] = "whoami"
    page: int = 1


@dataclass(frozen=True, slots=True)
class Admins:
    command_name: ClassVar[str] = "admins"


@dataclass(frozen=True, slots=True)
class WhoHas:
    command_name: ClassVar[str] = "who-has"
    name: str
    page: int = 1


@dataclass(frozen=True, slots=True)
class TransferOwner:
    command_name: ClassVar[str] = "transfer-owner"
    target: UserRef
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AdminAdd:
    command_name: ClassVar[str] = "admin add"
    target: UserRef


@dataclass(frozen=True, slots=True)
class AdminRemove:
    command_name: ClassVar[str] = "admin remove"
    target: UserRef


@dataclass(frozen=True, slots=True)
class RoleSet:
    command_name: ClassVar[str] = "role set"
    target: UserRef
    role: str


@dataclass(frozen=True, slots=True)
class RoleClear:
    command_name: ClassVar[str] = "role clear"
    target: UserRef


@dataclass(frozen=True, slots=True)
class Roles:
    command_name: ClassVar[str] = "roles"


@dataclass(frozen=True, slots=True)
class Grant:
    command_name: ClassVar[str] = "grant"
    target: UserRef
    name: str
    duration: timedelta | None = None


@dataclass(frozen=True, slots=True)
class Revoke:
    command_name: ClassVar[str] = "revoke"
    target: UserRef
    name: str


@dataclass(frozen=True, slots=True)
class TemplateCreate:
    command_name: ClassVar[str] = "template create"
    name: str
    perms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TemplateSet:
    command_name: ClassVar[str] = "template set"
    name: str
    perms: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class TemplateShow:
    command_name: ClassVar[str] = "template show"
    name: str
    page: int = 1


@dataclass(frozen=True, slots=True)
class TemplateList:
    command_name: ClassVar[str] = "template list"


@dataclass(frozen=True, slots=True)
class TemplateDelete:
    command_name: ClassVar[str] = "template delete"
    name: str


@dataclass(frozen=True, slots=True)
class TemplateApply:
    command_name: ClassVar[str] = "template apply"
    name: str
    users: tuple[UserRef, ...] = ()
    depts: tuple[DeptRef, ...] = ()


@dataclass(frozen=True, slots=True)
class Pending:
    command_name: ClassVar[str] = "pending"
    page: int = 1


@dataclass(frozen=True, slots=True)
class Cancel:
    command_name: ClassVar[str] = "cancel"
    request_id: str


@dataclass(frozen=True, slots=True)
class Export:
    command_name: ClassVar[str] = "export"
    fmt: Literal["xlsx", "csv"] = "xlsx"


@dataclass(frozen=True, slots=True)
class ExportTemplate:
    command_name: ClassVar[str] = "export template"


@dataclass(frozen=True, slots=True)
class ImportMode:
    command_name: ClassVar[str] = "import"
    mode: Literal["add", "replace"]


@dataclass(frozen=True, slots=True)
class ImportUndo:
    command_name: ClassVar[str] = "import undo"
    batch: str


@dataclass(frozen=True, slots=True)
class Audit:
    command_name: ClassVar[str] = "audit"
    target: UserRef | None = None
    n: int = 10
    page: int = 1


@dataclass(frozen=True, slots=True)
class NextPage:
    """``next`` / ``下一页``: the next page of the sender's last paged answer here."""

    command_name: ClassVar[str] = "next"


@dataclass(frozen=True, slots=True)
class ReviewStart:
    command_name: ClassVar[str] = "review start"


@dataclass(frozen=True, slots=True)
class ReviewStatus:
    command_name: ClassVar[str] = "review status"


@dataclass(frozen=True, slots=True)
class AccessRequest:
    """A member asks for a permission or role for themselves (section 13)."""

    command_name: ClassVar[str] = "request"
    name: str
    duration: timedelta | None
    reason: str


@dataclass(frozen=True, slots=True)
class MyRequests:
    command_name: ClassVar[str] = "requests"


@dataclass(frozen=True, slots=True)
class Release:
    command_name: ClassVar[str] = "release"
    name: str


@dataclass(frozen=True, slots=True)
class Extend:
    command_name: ClassVar[str] = "extend"
    name: str
    duration: timedelta | None
    reason: str


@dataclass(frozen=True, slots=True)
class PolicyShow:
    command_name: ClassVar[str] = "policy show"
    name: str


@dataclass(frozen=True, slots=True)
class BreakGlass:
    command_name: ClassVar[str] = "break-glass"
    name: str
    reason: str


@dataclass(frozen=True, slots=True)
class FileRef:
    """A file sent to Baton: DingTalk's download code for it, and its name."""

    download_code: str
    file_name: str


@dataclass(frozen=True, slots=True)
class ImportFile:
    """Not typed by anyone: a file message sent to Baton one-to-one, routed like a command."""

    command_name: ClassVar[str] = "import file"
    file: FileRef
    # DingTalk delivers files to a bot one-to-one only: a file from a group is forged (or
    # the protocol changed), and is refused without being downloaded.
    in_group: bool = False


Command: TypeAlias = (
    Help
    | WhoAmI
    | Admins
    | WhoHas
    | TransferOwner
    | AdminAdd
    | AdminRemove
    | RoleSet
    | RoleClear
    | Roles
    | Grant
    | Revoke
    | TemplateCreate
    | TemplateSet
    | TemplateShow
    | TemplateList
    | TemplateDelete
    | TemplateApply
    | Pending
    | Cancel
    | Export
    | ExportTemplate
    | ImportMode
    | ImportUndo
    | Audit
    | NextPage
    | ReviewStart
    | ReviewStatus
    | AccessRequest
    | MyRequests
    | Release
    | Extend
    | PolicyShow
    | BreakGlass
    | ImportFile
)

# What a user can type (ImportFile is a file message, not a command word).
COMMAND_TYPES: tuple[type[Command], ...] = (
    Help,
    WhoAmI,
    Admins,
    WhoHas,
    TransferOwner,
    AdminAdd,
    AdminRemove,
    RoleSet,
    RoleClear,
    Roles,
    Grant,
    Revoke,
    TemplateCreate,
    TemplateSet,
    TemplateShow,
    TemplateList,
    TemplateDelete,
    TemplateApply,
    Pending,
    Cancel,
    Export,
    ExportTemplate,
    ImportMode,
    ImportUndo,
    Audit,
    NextPage,
    ReviewStart,
    ReviewStatus,
    AccessRequest,
    MyRequests,
    Release,
    Extend,
    PolicyShow,
    BreakGlass,
)

COMMAND_NAMES: tuple[str, ...] = tuple(t.command_name for t in COMMAND_TYPES)


@dataclass(frozen=True, slots=True)
class Parsed:
    """A parsed command and the language of the command word the user wrote."""

    command: Command
    lang: Lang
