"""Group commit: read commands that arrive together share one transaction."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Generic, TypeVar

from storage.db import CommitOutcomeUnknown

log = logging.getLogger(__name__)

T = TypeVar("T")


class Batcher(Generic[T]):
    """Group commit: items submitted while a batch is being processed form the next batch
    (up to ``limit``); nothing waits on a timer, a lone item goes at once.

    ``submit`` returns True once the item's batch has committed. When the batch failed
    before COMMIT, each of its items is handled by ``alone``, one at a time and in order,
    before the next batch starts (``submit`` returns True, or raises what ``alone`` raised
    for that item); without ``alone`` it returns False and the caller handles the item
    itself. An unknown COMMIT outcome is raised to every item of the batch.
    """

    def __init__(self, run: Callable[[list[T]], Awaitable[None]], *, limit: int,
                 alone: Callable[[T], Awaitable[None]] | None = None) -> None:
        self._run, self._limit, self._alone = run, max(1, limit), alone
        self._queue: list[tuple[T, asyncio.Future[bool]]] = []
        self._task: asyncio.Task[None] | None = None
        self.batches = 0

    async def submit(self, item: T) -> bool:
        fut: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self._queue.append((item, fut))
        if self._task is None:
            self._task = asyncio.create_task(self._drain())
            self._task.add_done_callback(self._drained)
        return await fut

    def _drained(self, task: asyncio.Task[None]) -> None:
        if self._task is task:
            self._task = None
        if task.cancelled():   # (even before its first step): nobody is left waiting
            for _, fut in self._queue:
                if not fut.done():
                    fut.cancel()
            self._queue.clear()

    async def _one_by_one(self, batch: list[tuple[T, asyncio.Future[bool]]]) -> None:
        assert self._alone is not None
        for n, (item, fut) in enumerate(batch):
            try:
                await self._alone(item)
            except Exception as e:
                if not fut.done():
                    fut.set_exception(e)
            except BaseException as e:   # cancelled: the rest are not acked either
                for _, rest in batch[n:]:
                    if not rest.done():
                        rest.set_exception(e)
                raise
            else:
                if not fut.done():
                    fut.set_result(True)

    async def _drain(self) -> None:
        try:
            while self._queue:
                batch = self._queue[: self._limit]
                del self._queue[: self._limit]
                outcome: bool | BaseException
                try:
                    await self._run([item for item, _ in batch])
                    outcome = True
                except CommitOutcomeUnknown as e:
                    outcome = e
                except Exception:
                    log.warning("a batch of %d failed before COMMIT; each goes alone",
                                len(batch), exc_info=True)
                    outcome = False
                except BaseException as e:   # cancelled: none of them is acked
                    for _, fut in batch + self._queue:
                        if not fut.done():
                            fut.set_exception(e)
                    self._queue.clear()
                    raise
                self.batches += 1
                if outcome is False and self._alone is not None:
                    await self._one_by_one(batch)
                    continue
                for _, fut in batch:
                    if fut.done():
                        continue
                    if isinstance(outcome, BaseException):
                        fut.set_exception(outcome)
                    else:
                        fut.set_result(outcome)
        finally:
            self._task = None   # (also cleared by _drained, should this never have run)
