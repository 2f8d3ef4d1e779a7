"""The one error the parser raises, carrying everything needed to answer the user."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ..escape import Md
from ..lang import Lang
from .usage import render_error

#: Every code ``ParseError.code`` takes.
ERROR_CODES: frozenset[str] = frozenset(
    {
        "empty",
        "too_long",
        "unknown_command",
        "missing_argument",
        "too_many_arguments",
        "bad_mention",
        "mention_unresolved",
        "bad_target",
        "no_target",
        "bad_duration",
        "bad_number",
        "bad_page",
        "bad_request_id",
        "bad_format",
        "bad_name",
        "bad_list",
    }
)


class ParseError(Exception):
    """A message that is not a well-formed command.

    ``code`` says what was wrong, ``lang`` the language the user wrote in (None when the
    text shows no language, e.g. only emoji: answer in the configured default), ``usage_of``
    the command (or command group, e.g. ``"template"``) whose usage to show,
    ``suggestion`` the closest command word in the user's language (unknown commands),
    and ``params`` the details (``got``: the offending text, ``what``: which argument).
    """

    code: str
    lang: Lang | None
    usage_of: str | None
    suggestion: str | None
    params: Mapping[str, str]

    def __init__(
        self,
        code: str,
        lang: Lang | None,
        *,
        usage_of: str | None = None,
        suggestion: str | None = None,
        params: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.lang = lang
        self.usage_of = usage_of
        self.suggestion = suggestion
        self.params = MappingProxyType(dict(params or {}))

    def render(self, lang: Lang | None = None) -> Md:
        """A polite reply in ``lang`` (default: the user's, else Chinese) showing how to
        write it."""
        return render_error(
            self.code, self.params, self.usage_of, self.suggestion, lang or self.lang or "zh"
        )

    def __str__(self) -> str:
        return f"{self.code} (usage_of={self.usage_of!r}, params={dict(self.params)!r})"

    def __repr__(self) -> str:
        return f"ParseError({self.code!r}, {self.lang!r}, usage_of={self.usage_of!r})"
