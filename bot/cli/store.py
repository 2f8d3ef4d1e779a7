"""Which corp an operator's command acts on, when it reads the store without DingTalk.

``baton export``, ``import``, ``audit verify``/``export`` and ``backup`` read the store only.
With nothing but ``BATON_DATABASE__URL`` set, ``org.corp_id`` is its default, ``default``,
which the store may hold nothing of: the command would then verify, export or list nothing and
exit 0 as if all were well. This picks the corp, or says why it cannot.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import AsyncIterator

from bot.app import prepare_database
from bot.config import Settings
from bot.texts.catalog import t
from storage import bulk as store
from storage.db import Database, open_database


@contextlib.asynccontextmanager
async def operator_store(settings: Settings) -> AsyncIterator[Database]:
    """The store an operator's command works on, its schema made or checked as ``baton run``
    does, closed when the command is done."""
    db = open_database(settings.database.url)
    try:
        await prepare_database(db)
        yield db
    finally:
        await db.dispose()


async def store_corp(db: Database, settings: Settings) -> str | None:
    """``org.corp_id`` when the store holds it; when ``org.corp_id`` is not configured, the one
    corp the store holds (said on stderr). Else None, having said why on stderr."""
    lang, corp = settings.locale.lang, settings.org.corp_id
    async with db.uow() as uow:
        held = await store.corps(uow)
    if corp in held:
        return corp
    if not held:
        print("baton: " + t("cli_store_empty", lang), file=sys.stderr)
        return None
    if "corp_id" not in settings.org.model_fields_set and len(held) == 1:
        print("baton: " + t("cli_only_corp", lang, corp=held[0]), file=sys.stderr)
        return held[0]
    print("baton: " + t("cli_unknown_corp", lang, corp=corp, corps=", ".join(held)),
          file=sys.stderr)
    return None


def with_corp(settings: Settings, corp: str) -> Settings:
    """``settings`` acting on ``corp``."""
    if corp == settings.org.corp_id:
        return settings
    return settings.model_copy(update={"org": settings.org.model_copy(update={"corp_id": corp})})
