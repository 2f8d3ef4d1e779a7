"""Decision API tokens, pure: their form, their hash, their scopes.

A token is ``baton_`` and 32 random bytes (URL-safe base64, 256 bits from the OS's
CSPRNG; made by the CLI, shown once). The store keeps only ``sha256(token)``. A salted,
slow hash (bcrypt, scrypt) exists to protect *low-entropy* secrets, passwords, from a
dictionary attack on a leaked table; a 256-bit random token has no dictionary: finding a
preimage of its SHA-256 costs 2^256 work whether or not it is salted or slow. A fast,
unsalted hash also lets the server find the row by the hash (one indexed lookup, no scan
comparing slow hashes), and compare in constant time what the index returned.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

PREFIX = "baton_"
SCOPES: frozenset[str] = frozenset({"read"})
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def well_formed(token: str) -> bool:
    return token.startswith(PREFIX) and 20 <= len(token) <= 100


@dataclass(frozen=True, slots=True)
class TokenView:
    """A stored token (never the token itself)."""

    id: int
    corp_id: str
    name: str
    scope: str
    created_by: str
    created_at: datetime
    revoked_at: datetime | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None
