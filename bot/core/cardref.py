"""A card's reference: which card a click came from, as a typed, versioned value.

Every card Baton sends carries a :class:`CardRef` packed into its ``outTrackId``; a click
brings the ``outTrackId`` back, :meth:`CardRef.unpack` reads it, and the router picks the
handler by the ref's ``kind`` (``router.card_action(kind)``), as it picks a command's
handler by the command's type. The ref names the card only: who clicked comes from the
callback's ``userId`` and what the card may decide from the store, never from the ref.

Layout version 1 (the one every card in the field carries; the sandbox shows it and takes it
in ``/click``)::

    baton-<corp>-R<id>                  the request card itself
    baton-<corp>-R<id>-<copy>           a copy: group (the admin-group twin), dm<letters>
                                        (one-to-one copies), console (an owner transfer's)
    baton-<corp>-R<id>-rv<letters>      an access review's card for its reviewer <letters>

A later layout gets a prefix of its own (never ``baton-``), so cards sent before an upgrade
keep unpacking as version 1.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MAX_LEN = 128       # outTrackId as DingTalk's card API and requests.card_out_track_id take it
VERSION = 1
MAX_CORP = 64       # members.corp_id and requests.corp_id are String(64)
MAX_COPY = 16
MAX_ID = 10**18 - 1

_V1 = re.compile(r"baton-(?P<corp>[A-Za-z0-9_.-]+)-R(?P<id>[0-9]{1,18})(?:-(?P<copy>[a-z]{1,18}))?")
_CORP = re.compile(rf"[A-Za-z0-9_.-]{{1,{MAX_CORP}}}")
_LETTERS = re.compile(rf"[a-z]{{1,{MAX_COPY}}}")
_REVIEW = "rv"


class CardKind(StrEnum):
    REQUEST = "request"     # a request's card (and its copies): the request engine
    REVIEW = "review"       # an access review's card, one per reviewer


class CardRefError(ValueError):
    """Not a card reference Baton made (garbage, a foreign card, or out of bounds)."""


def letters(n: int) -> str:
    """``n`` in base-26 letters: 0 -> a, 25 -> z, 26 -> ba."""
    if n < 0:
        raise CardRefError(f"no letters for {n}")
    digits = ""
    while True:
        n, r = divmod(n, 26)
        digits = chr(ord("a") + r) + digits
        if n == 0:
            return digits


def index_of(s: str) -> int:
    """The inverse of :func:`letters` (``a`` -> 0, ``ba`` -> 26)."""
    if not _LETTERS.fullmatch(s) or (len(s) > 1 and s[0] == "a"):
        raise CardRefError(f"{s!r} is not a card index")
    n = 0
    for ch in s:
        n = n * 26 + ord(ch) - ord("a")
    return n


@dataclass(frozen=True)
class CardRef:
    """``kind`` picks the handler; ``corp`` and ``id`` the request (or campaign) it shows;
    ``copy`` which of its cards: for a request "" (the card itself), "group", "dm<letters>"
    or "console"; for a review the reviewer's index in letters (:meth:`review`)."""

    kind: CardKind
    corp: str
    id: int
    copy: str = ""
    version: int = VERSION

    def __post_init__(self) -> None:
        if self.version != VERSION:
            raise CardRefError(f"card reference version {self.version} is not known")
        if not isinstance(self.kind, CardKind):
            raise CardRefError(f"card kind {self.kind!r} is not known")
        if not _CORP.fullmatch(self.corp):
            raise CardRefError(f"corp {self.corp!r} cannot be packed into a card reference")
        if not 0 <= self.id <= MAX_ID:
            raise CardRefError(f"id {self.id} is out of range")
        if self.copy and not _LETTERS.fullmatch(self.copy):
            raise CardRefError(f"copy {self.copy!r} must be 1..{MAX_COPY} lowercase letters")
        if self.kind is CardKind.REVIEW:
            index_of(self.copy)
        elif self.copy.startswith(_REVIEW):
            raise CardRefError(f"a request card's copy may not start with {_REVIEW!r}")

    @classmethod
    def request(cls, corp: str, id: int, copy: str = "") -> CardRef:
        return cls(CardKind.REQUEST, corp, id, copy)

    @classmethod
    def review(cls, corp: str, id: int, reviewer: int) -> CardRef:
        """The card of the ``reviewer``-th admin (0-based) of access review ``id``."""
        return cls(CardKind.REVIEW, corp, id, letters(reviewer))

    @property
    def reviewer(self) -> int:
        """A review card's reviewer index (0-based)."""
        if self.kind is not CardKind.REVIEW:
            raise CardRefError("only a review card has a reviewer")
        return index_of(self.copy)

    @property
    def base(self) -> CardRef:
        """The request card itself (this card, without its copy)."""
        return CardRef(CardKind.REQUEST, self.corp, self.id)

    def pack(self) -> str:
        suffix = _REVIEW + self.copy if self.kind is CardKind.REVIEW else self.copy
        out = f"baton-{self.corp}-R{self.id}" + (f"-{suffix}" if suffix else "")
        if len(out) > MAX_LEN:      # the bounds in __post_init__ make this unreachable
            raise CardRefError(f"card reference {out!r} exceeds {MAX_LEN} characters")
        return out

    @classmethod
    def unpack(cls, raw: str) -> CardRef:
        """The ref packed into ``raw``; raises :class:`CardRefError` for anything else."""
        if len(raw) > MAX_LEN:
            raise CardRefError(f"card reference of {len(raw)} characters (at most {MAX_LEN})")
        m = _V1.fullmatch(raw)
        if m is None:
            raise CardRefError(f"{raw[:40]!r} is not a Baton card reference")
        copy = m.group("copy") or ""
        try:
            if copy.startswith(_REVIEW):
                return cls(CardKind.REVIEW, m.group("corp"), int(m.group("id")),
                           copy[len(_REVIEW):])
            return cls(CardKind.REQUEST, m.group("corp"), int(m.group("id")), copy)
        except CardRefError as e:
            raise CardRefError(f"{raw[:40]!r} is not a Baton card reference: {e}") from e


def kind_of(raw: str) -> CardKind | None:
    """The kind of the card ``raw`` names; None when it names no card of Baton's."""
    try:
        return CardRef.unpack(raw).kind
    except CardRefError:
        return None
