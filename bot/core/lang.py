"""The languages Baton speaks: the one ``Lang`` type of the whole application."""

from __future__ import annotations

from typing import Literal, TypeAlias

Lang: TypeAlias = Literal["zh", "en"]
LANGS: tuple[Lang, ...] = ("zh", "en")
