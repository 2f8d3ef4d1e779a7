"""The in-memory permission index, kept current from the change feed.

:class:`IndexKeeper` loads :class:`~bot.core.domain.index.PermissionIndex` from the store
and follows the feed: for each event after its ``as_of`` it reloads the members the event
may change (``ChangeEvent.users()``; every owner and admin for a level change) and the
template it edits, from the store. A reload is idempotent, so data read fresher than the
event that prompted it is harmless: the next events reload the same rows again.

Freshness ("every change committed before the request arrived"): :meth:`sync` reads the
committed head (``feed_head``) in a read that *started after the caller arrived*, then
catches the index up to it. Concurrent callers share one read (single flight): a caller
that finds a read in flight that started before it arrived waits for the next one, which
then serves everyone who queued meanwhile. So one round trip serves any number of
concurrent requests, and a change committed on any replica before a request arrived is
in its answer. Sequence numbers are dense and follow commit order (the feed's writers
serialise on ``feed_head``), so a gap in what :meth:`FeedRepo.after` returns means the
audit retention purged events: the keeper then reloads everything.

The same read carries the token epoch (the number of revoked API tokens), so a revoke on
any replica invalidates cached tokens on the next request at no extra cost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from bot.core.domain.feed import TEMPLATE, ChangeEvent
from bot.core.domain.index import CorpIndex, PermissionIndex
from bot.core.domain.permissions import Catalog
from storage.db import Database, UnitOfWork
from storage.tokens import freshness

log = logging.getLogger(__name__)
LEVEL_EVENTS = frozenset({"owner.changed", "admin.added", "admin.removed"})
PAGE = 1000


class IndexKeeper:
    def __init__(self, db: Database, catalog: Catalog) -> None:
        self.db = db
        self.index = PermissionIndex(catalog)
        self.loaded = False
        self.token_epoch = 0
        self.head = 0                      # the newest committed head seen
        self.reads = 0                     # freshness reads made (each one round trip)
        self.reloads = 0                   # full loads (start, or after a retention gap)
        self._lock = asyncio.Lock()        # one catch-up at a time
        self._flight: asyncio.Future[int] | None = None
        self._started = 0                  # freshness reads started so far
        self._flight_no = 0
        self._moved = asyncio.Event()      # set (and replaced) when a commit here is seen
        self._listener: Callable[[int], None] = self._on_commit
        self._reader: AsyncConnection | None = None
        self._warming: asyncio.Future[None] | None = None
        db.feed_listeners.append(self._listener)

    @property
    def catalog(self) -> Catalog:
        return self.index.catalog

    @property
    def as_of(self) -> int:
        return self.index.as_of

    def corp(self, corp_id: str) -> CorpIndex:
        return self.index.corp(corp_id)

    def close(self) -> None:
        with contextlib.suppress(ValueError):
            self.db.feed_listeners.remove(self._listener)
        if self._warming is not None:
            self._warming.cancel()

    def invalidate(self) -> None:
        """Load afresh from the store on the next read: for rows written behind the change
        feed's back (a seeded demo organisation), which no event announces."""
        self.loaded = False

    def _on_commit(self, head: int) -> None:
        self.head = max(self.head, head)
        moved, self._moved = self._moved, asyncio.Event()
        moved.set()

    async def wait_moved(self, timeout: float) -> None:
        """Until a commit in this process wrote events, or ``timeout`` seconds."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._moved.wait(), timeout)

    # ---- freshness -----------------------------------------------------------------------
    async def sync(self) -> int:
        """Catch up with every change committed before this call; returns ``as_of``."""
        ticket = self._started
        while True:
            f = self._flight
            if f is None or f.done():
                self._started += 1
                self._flight_no = self._started
                f = self._flight = asyncio.ensure_future(self._fly())
            if self._flight_no > ticket:
                return await asyncio.shield(f)
            # In flight since before we arrived: it may miss what committed just before us.
            with contextlib.suppress(Exception):
                await asyncio.shield(f)

    async def _fly(self) -> int:
        head, epoch = await self._read()
        self.reads += 1
        self.token_epoch = max(self.token_epoch, epoch)
        self.head = max(self.head, head)
        if self.loaded and head <= self.index.as_of:
            return self.index.as_of          # nothing new: no transaction at all
        async with self.db.uow() as uow, self._lock:
            if not self.loaded:
                await self._load(uow, head)
            await self._catch_up(uow, head)
            return self.index.as_of

    async def _read(self) -> tuple[int, int]:
        """The freshness read on a connection kept for it (one round trip, autocommit)."""
        try:
            if self._reader is None:
                self._reader = await self.db.reader()
            return await freshness(self._reader)
        except BaseException:
            conn, self._reader = self._reader, None
            if conn is not None:
                with contextlib.suppress(Exception):
                    await conn.close()
            raise

    async def aclose(self) -> None:
        self.close()
        if self._warming is not None:
            self._warming.cancel()
            with contextlib.suppress(BaseException):
                await self._warming
        conn, self._reader = self._reader, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()

    async def sync_in(self, uow: UnitOfWork) -> int:
        """Catch up inside ``uow`` (a transaction that has written no change itself: the
        index must never hold what may still roll back)."""
        if uow.feed.written:
            raise RuntimeError("the index cannot read through a transaction that wrote changes")
        head, epoch = await uow.tokens.freshness()
        self.reads += 1
        async with self._lock:
            self.token_epoch = max(self.token_epoch, epoch)
            self.head = max(self.head, head)
            if not self.loaded:
                await self._load(uow, head)
            await self._catch_up(uow, head)
            return self.index.as_of

    async def _load(self, uow: UnitOfWork, head: int) -> None:
        fresh = PermissionIndex(self.index.catalog)
        for corp_id in await uow.perms.index_corps():
            entries, templates = await uow.perms.index_all(corp_id)
            fresh.load(corp_id, entries, templates)
        fresh.as_of = head
        self.index, self.loaded = fresh, True
        self.reloads += 1
        if self._warming is not None:
            self._warming.cancel()
        self._warming = asyncio.ensure_future(self._warm(fresh))
        log.info("permission index loaded at seq %d (%d companies)", head, len(fresh.corps))

    async def warmed(self) -> None:
        """Until the answers of the last load are all resolved (``baton run`` then moves
        what it built out of the collector's sight, as it does at start)."""
        if self._warming is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(self._warming)

    async def _warm(self, index: PermissionIndex, chunk: int = 200) -> None:
        """Resolve every member's answer once after a load, a chunk at a time between
        other work (the loop is never held for more than a chunk)."""
        for c in list(index.corps.values()):
            users = list(c.entries)
            for i in range(0, len(users), chunk):
                await asyncio.sleep(0)
                c.warm(users[i:i + chunk], datetime.now(UTC))

    async def _catch_up(self, uow: UnitOfWork, head: int) -> None:
        while self.index.as_of < head:
            events = await uow.feed.after(self.index.as_of, PAGE, upto=head)
            if not events or events[0].seq != self.index.as_of + 1:
                # Purged by retention before we saw them: start over from the store.
                await self._load(uow, head)
                return
            await self._apply(uow, events)
            self.index.as_of = events[-1].seq

    async def _apply(self, uow: UnitOfWork, events: list[ChangeEvent]) -> None:
        users: dict[str, set[str]] = {}
        templates: dict[str, set[str]] = {}
        levels: set[str] = set()
        for ev in events:
            users.setdefault(ev.corp_id, set()).update(ev.users())
            if ev.subject_kind == TEMPLATE and ev.subject:
                templates.setdefault(ev.corp_id, set()).add(ev.subject)
            for side in (ev.before, ev.after):
                if side and isinstance(side.get("template"), str):
                    templates.setdefault(ev.corp_id, set()).add(side["template"])
            if ev.type in LEVEL_EVENTS:
                levels.add(ev.corp_id)
        for corp_id in levels:
            c = self.index.corp(corp_id)
            users.setdefault(corp_id, set()).update(
                u for u, e in c.entries.items() if e.level != "member")
            users[corp_id].update(await uow.perms.index_level_holders(corp_id))
        for corp_id, names in templates.items():
            c = self.index.corp(corp_id)
            got = await uow.perms.index_templates(corp_id, names)
            for name in names:
                c.put_template(name, got.get(name))
                # Holders recorded with the event may be incomplete (an assignment): the
                # index knows who holds the template by name.
                users.setdefault(corp_id, set()).update(c.by_name.get("template:" + name, ()))
        for corp_id, ids in users.items():
            if not ids:
                continue
            c = self.index.corp(corp_id)
            missing: set[str] = set()
            for uid, entry in (await uow.perms.index_users(corp_id, ids)).items():
                c.put(uid, entry)
                missing.update(t for t in entry.templates if t not in c.templates)
            if missing:
                for name, items in (await uow.perms.index_templates(corp_id, missing)).items():
                    c.put_template(name, items)


def keeper(db: Database, catalog: Catalog) -> IndexKeeper:
    """The index of ``db`` (one per database object in this process), made on first use."""
    got: Any = db.index
    if isinstance(got, IndexKeeper) and got.catalog is catalog:
        return got
    if isinstance(got, IndexKeeper):
        got.close()      # its reader connection, if any, goes with the engine's disposal
    made = IndexKeeper(db, catalog)
    db.index = made
    return made
