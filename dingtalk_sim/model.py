"""Public records of the loopback DingTalk simulator.

``SimUser`` / ``SimGroup`` describe the seeded organisation; everything else is a frozen
record handed out by the ``Simulator`` observation methods. Treat the lists and dicts inside
them as read-only (``cards()`` and ``connections()`` return fresh copies; the other records
are the simulator's own).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Via = Literal["webhook", "group", "oto"]
UpdateSource = Literal["api", "ack"]


@dataclass
class SimUser:
    """A member (or, with ``in_corp=False``, an outsider) of the simulated organisation."""

    user_id: str
    name: str
    active: bool = True
    admin_level: int = 0  # DingTalk sys_level: 0 none, 1 main administrator, 2 sub-administrator
    dept_ids: list[int] = field(default_factory=lambda: [1])
    in_corp: bool = True  # False: an outsider; atUsers entries for them carry no staffId
    manager: str = ""  # the direct supervisor's userId (user/get's manager_userid)
    leads: list[int] = field(default_factory=list)  # departments this member heads


@dataclass
class SimGroup:
    """A group chat the robot is a member of."""

    conversation_id: str  # e.g. "cidGROUP1"
    title: str


@dataclass(frozen=True)
class Delivery:
    """One frame pushed (or queued) by a driving call."""

    message_id: str  # headers.messageId
    msg_id: str  # data.msgId, or "" for frames without one (card clicks)
    frame: dict[str, Any]  # the frame as pushed (``data`` is a JSON string)


@dataclass(frozen=True)
class HttpRecord:
    """One HTTP request received by the simulator (either host, including websocket upgrades)."""

    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    json: Any  # the decoded JSON body, or None (no body, not JSON, multipart)
    at: float  # sim clock, seconds since the epoch

    @property
    def body(self) -> Any:
        """Alias of ``json``."""
        return self.json


@dataclass(frozen=True)
class SentMessage:
    """A message the robot sent, whichever way."""

    via: Via
    conversation_id: str  # group id, or "cidOTO<user>" (one record per oto recipient)
    msgtype: str  # webhook msgtype ("text", "markdown"...) or msgKey ("sampleText"...)
    text: str  # text content or markdown text ("" when the type has neither)
    title: str
    at_user_ids: list[str]
    user_ids: list[str]  # oto: every accepted recipient of the batchSend call
    raw: dict[str, Any]  # the request body
    params: dict[str, Any]  # msgParam decoded (OpenAPI), or the webhook body's type section
    at: float


@dataclass(frozen=True)
class AckRecord:
    """An ack (or any well-formed JSON reply) received on a stream connection."""

    code: int | None
    message_id: str
    data: Any  # decoded JSON of the ack's ``data`` string, or the raw value when not JSON
    connection_id: str
    at: float
    message: str = ""
    topic: str = ""  # topic of the frame it answers, "" when the messageId is unknown


@dataclass(frozen=True)
class BadFrame:
    """A client frame the simulator could not understand (recorded, otherwise ignored)."""

    connection_id: str
    text: str
    reason: str
    at: float


@dataclass(frozen=True)
class CardUpdate:
    """One change applied to a card after creation."""

    source: UpdateSource  # "api" (PUT /v1.0/card/instances) or "ack" (card-click ack)
    params: dict[str, str] | None  # the cardParamMap given in the update, if any
    private: dict[str, dict[str, str]]  # per-user cardParamMaps given (clicker's included)
    by_key: bool  # updateCardDataByKey
    user_id: str | None  # the clicker, for "ack"
    at: float


@dataclass(frozen=True)
class SimCard:
    """An advanced card instance as DingTalk would show it."""

    out_track_id: str
    template_id: str
    params: dict[str, str]  # public cardParamMap
    private: dict[str, dict[str, str]]  # userId -> private cardParamMap
    spaces: list[str]  # openSpaceIds delivered to, e.g. "dtv1.card//IM_GROUP.cid..."
    callback_type: str
    history: list[CardUpdate]
    created_at: float = 0.0


@dataclass(frozen=True)
class ConnInfo:
    """A stream websocket connection, live or closed."""

    connection_id: str
    opened_at: float
    closed_at: float | None
    close_code: int | None
    subscriptions: list[tuple[str, str]]  # (type, topic)
    frames_sent: int
    lost: int  # frames discarded because the socket is a zombie (see set_zombie)
    draining: bool = False  # a disconnect was sent; nothing more is pushed to it
    zombie: bool = False

    @property
    def live(self) -> bool:
        return self.closed_at is None


@dataclass(frozen=True)
class Upload:
    """A file uploaded through the legacy ``/media/upload``."""

    media_id: str
    file_name: str
    content: bytes
    type: str
    at: float = 0.0


@dataclass(frozen=True)
class SimTodo:
    """A DingTalk to-do (待办) as created through ``/v1.0/todo/users/{unionId}/tasks``."""

    task_id: str
    union_id: str  # whose list it is in (the path's unionId)
    subject: str
    description: str
    source_id: str
    executor_ids: tuple[str, ...]
    done: bool
    created_at: float
