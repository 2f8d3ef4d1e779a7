"""Error shapes of the two DingTalk API families."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """A new-API (``/v1.0``) error: HTTP ``status`` with ``{code, message, requestid}``."""

    def __init__(
        self, status: int, code: str, message: str, extra: dict[str, Any] | None = None
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.extra = extra or {}


class LegacyError(Exception):
    """A legacy (``oapi``) error: HTTP 200 with ``{errcode, errmsg, ...}``."""

    def __init__(self, errcode: int, errmsg: str, *, request_id: bool = True, **extra: Any) -> None:
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg
        self.request_id = request_id  # the robot webhook answers without one
        self.extra = extra


DEFAULT_CODES = {
    400: "invalidParameter",
    401: "InvalidAuthentication",
    403: "Forbidden.AccessDenied.QpsLimitForAppkeyAndApi",
    404: "NotFound",
    429: "Throttling",
    500: "unknownError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


def default_code(status: int) -> str:
    return DEFAULT_CODES.get(status, "unknownError" if status >= 500 else "invalidParameter")
