"""Batcher (bot.dispatch.batching): group commit. Items submitted while a batch runs form the next batch
(up to ``limit``), a lone item goes at once; ``submit`` says True once its batch's run has
returned, False when that run failed (the caller handles the item alone), raises an unknown
COMMIT outcome to every item of the batch, and a cancellation reaches every waiting item.

The run is a coroutine the test holds: each batch waits on its own gate until the test
releases it (or makes it fail), so every scenario is exact and nothing waits on a timer."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.dispatch.batching import Batcher
from storage.db import CommitOutcomeUnknown


class GatedRun:
    """A ``run`` for Batcher: records each batch, tells when it starts, then waits for the
    test to release it (return), fail it (raise) or cancel it."""

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self._gates: dict[int, asyncio.Future[None]] = {}

    def _gate(self, i: int) -> asyncio.Future[None]:
        if i not in self._gates:
            self._gates[i] = asyncio.get_running_loop().create_future()
        return self._gates[i]

    async def __call__(self, items: list[int]) -> None:
        i = len(self.batches)
        self.batches.append(list(items))
        await self._gate(i)

    async def entered(self, i: int) -> list[int]:
        """Wait until batch ``i`` has started; its items."""
        await within_turns(lambda: len(self.batches) > i, f"batch {i} starting")
        return self.batches[i]

    def release(self, i: int) -> None:
        self._gate(i).set_result(None)

    def fail(self, i: int, exc: BaseException) -> None:
        self._gate(i).set_exception(exc)

    def cancel(self, i: int) -> None:
        self._gate(i).cancel()


async def turn() -> None:
    """Let every task already scheduled take its next step (no time passes)."""
    await asyncio.sleep(0)


async def within_turns(cond: Callable[[], bool], what: str, turns: int = 100) -> None:
    """Wait for ``cond`` a bounded number of loop turns: everything here is in memory and
    settles in a few, so a behaviour that broke fails at once instead of hanging."""
    for _ in range(turns):
        if cond():
            return
        await turn()
    raise AssertionError(f"{what}: not within {turns} loop turns")


async def settled(*tasks: asyncio.Task[bool]) -> list[bool]:
    """The answers of submit tasks, once all are done (each must answer, not raise)."""
    await within_turns(lambda: all(t.done() for t in tasks), "every submit answering")
    return [t.result() for t in tasks]


async def raised(task: asyncio.Task[bool], exc: type[BaseException]) -> BaseException:
    """What a submit task raised (it must raise ``exc``)."""
    await within_turns(task.done, "the submit answering")
    with pytest.raises(exc) as info:
        task.result()
    return info.value


async def spawn(batcher: Batcher[int], items: Iterable[int]) -> list[asyncio.Task[bool]]:
    """Submit each item from its own task; on return each has been queued."""
    tasks = [asyncio.create_task(batcher.submit(x)) for x in items]
    await turn()
    return tasks


async def test_a_lone_item_goes_at_once_as_a_batch_of_one() -> None:
    run = GatedRun()
    b = Batcher(run, limit=8)
    task = asyncio.create_task(b.submit(7))
    assert await run.entered(0) == [7]
    for _ in range(5):
        await turn()
    assert not task.done(), "submit answered before its batch's run returned"
    assert b.batches == 0
    run.release(0)
    assert await settled(task) == [True]
    assert run.batches == [[7]]
    assert b.batches == 1


async def test_items_submitted_while_a_batch_runs_form_the_next_batch() -> None:
    run = GatedRun()
    b = Batcher(run, limit=8)
    first = await spawn(b, [0])
    assert await run.entered(0) == [0]
    waiting = await spawn(b, [1, 2, 3])
    for _ in range(3):
        await turn()
    assert len(run.batches) == 1, "a second batch started while the first was running"
    run.release(0)
    assert await settled(*first) == [True]
    assert await run.entered(1) == [1, 2, 3]
    assert not any(t.done() for t in waiting)
    run.release(1)
    assert await settled(*waiting) == [True, True, True]
    assert run.batches == [[0], [1, 2, 3]]
    assert b.batches == 2


async def test_limit_splits_a_backlog_in_submission_order() -> None:
    run = GatedRun()
    b = Batcher(run, limit=3)
    tasks = await spawn(b, [0])
    await run.entered(0)
    tasks += await spawn(b, range(1, 11))
    for i in range(5):
        await run.entered(i)
        assert len(run.batches) == i + 1, "the next batch started before this one returned"
        run.release(i)
    assert await settled(*tasks) == [True] * 11
    assert run.batches == [[0], [1, 2, 3], [4, 5, 6], [7, 8, 9], [10]]
    assert b.batches == 5


async def test_items_queued_before_the_first_batch_starts_share_it_up_to_limit() -> None:
    run = GatedRun()
    b = Batcher(run, limit=2)
    tasks = [asyncio.create_task(b.submit(x)) for x in range(5)]
    for i in range(3):
        await run.entered(i)
        run.release(i)
    assert await settled(*tasks) == [True] * 5
    assert run.batches == [[0, 1], [2, 3], [4]]


async def test_a_limit_below_one_means_one_item_a_batch() -> None:
    run = GatedRun()
    b = Batcher(run, limit=0)
    tasks = await spawn(b, [0, 1, 2])
    for i in range(3):
        await run.entered(i)
        run.release(i)
    assert await settled(*tasks) == [True] * 3
    assert run.batches == [[0], [1], [2]]


async def test_each_item_is_run_exactly_once_across_many_batches() -> None:
    seen: list[int] = []
    sizes: list[int] = []

    async def run(items: list[int]) -> None:
        sizes.append(len(items))
        await turn()
        seen.extend(items)

    b = Batcher(run, limit=4)
    tasks: list[asyncio.Task[bool]] = []
    for start in range(0, 30, 6):
        tasks += await spawn(b, range(start, start + 6))
    assert await settled(*tasks) == [True] * 30
    assert seen == list(range(30))
    assert max(sizes) <= 4
    assert b.batches == len(sizes)


async def test_a_failing_batch_answers_false_to_its_items_and_the_next_batch_still_commits() -> None:
    run = GatedRun()
    b = Batcher(run, limit=8)
    first = await spawn(b, [0])
    await run.entered(0)
    second = await spawn(b, [1, 2])
    run.release(0)
    assert await run.entered(1) == [1, 2]
    third = await spawn(b, [3, 4])
    run.fail(1, RuntimeError("constraint failed before COMMIT"))
    assert await settled(*second) == [False, False]
    assert await run.entered(2) == [3, 4]
    run.release(2)
    assert await settled(*first, *third) == [True, True, True]
    assert b.batches == 3


async def test_an_unknown_commit_outcome_reaches_every_item_of_that_batch_only() -> None:
    run = GatedRun()
    b = Batcher(run, limit=8)
    first = await spawn(b, [0])
    await run.entered(0)
    second = await spawn(b, [1, 2, 3])
    run.release(0)
    await run.entered(1)
    third = await spawn(b, [4])
    boom = CommitOutcomeUnknown("commit failed: connection reset")
    run.fail(1, boom)
    for t in second:
        assert await raised(t, CommitOutcomeUnknown) is boom
    await run.entered(2)
    run.release(2)
    assert await settled(*first, *third) == [True, True]
    assert b.batches == 3


async def test_a_cancelled_run_cancels_its_items_and_those_waiting() -> None:
    run = GatedRun()
    b = Batcher(run, limit=2)
    running = await spawn(b, [0, 1])
    assert await run.entered(0) == [0, 1]
    waiting = await spawn(b, [2, 3, 4])
    run.cancel(0)
    for t in running + waiting:
        await raised(t, asyncio.CancelledError)
    assert run.batches == [[0, 1]], "items waiting behind a cancelled batch were still run"
    # The batcher is usable again afterwards: a new item starts a new batch.
    again = asyncio.create_task(b.submit(5))
    assert await run.entered(1) == [5]
    run.release(1)
    assert await settled(again) == [True]


async def test_a_submitter_that_gives_up_does_not_disturb_the_others() -> None:
    run = GatedRun()
    b = Batcher(run, limit=8)
    first = await spawn(b, [0])
    await run.entered(0)
    second = await spawn(b, [1, 2, 3])
    second[1].cancel()
    await turn()
    run.release(0)
    await run.entered(1)
    run.release(1)
    assert await settled(*first, second[0], second[2]) == [True, True, True]
    assert second[1].cancelled()


async def test_an_ordinary_failure_of_a_lone_item_is_false_not_raised() -> None:
    async def run(items: list[int]) -> None:
        raise ValueError(items)

    b = Batcher(run, limit=4)
    assert await b.submit(1) is False
    assert await b.submit(2) is False
    assert b.batches == 2


# ---- property ------------------------------------------------------------------------------

async def _scenario(groups: list[int], limit: int, turns: list[int]) -> None:
    """Submit the groups one after another; between groups let some turns pass and release
    the batch that is running (if any); then release everything left."""
    queued = 0          # items whose submit has queued them (counted in the same step)
    done_items = 0      # items in batches started so far
    batches: list[list[int]] = []
    not_greedy: list[tuple[int, int]] = []
    gates: list[asyncio.Future[None]] = []

    async def run(items: list[int]) -> None:
        nonlocal done_items
        # Greedy: a batch takes everything queued and not yet taken, up to the limit.
        if len(items) != min(limit, queued - done_items):
            not_greedy.append((len(items), queued - done_items))
        done_items += len(items)
        batches.append(list(items))
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        gates.append(gate)
        await gate

    b = Batcher(run, limit=limit)

    async def submit(x: int) -> bool:
        nonlocal queued
        queued += 1
        return await b.submit(x)

    tasks: list[asyncio.Task[bool]] = []
    n = 0
    for size, k in zip(groups, turns, strict=True):
        tasks += [asyncio.create_task(submit(x)) for x in range(n, n + size)]
        n += size
        for _ in range(k):
            await turn()
        for g in gates:
            if not g.done():
                g.set_result(None)
                break
    for _ in range(10 * (n + 1)):
        if all(t.done() for t in tasks):
            break
        for g in gates:
            if not g.done():
                g.set_result(None)
        await turn()
    results = await settled(*tasks)

    assert results == [True] * n
    assert [x for batch in batches for x in batch] == list(range(n)), batches
    assert all(1 <= len(batch) <= limit for batch in batches), batches
    assert not_greedy == [], "a batch left queued items behind though it had room"
    assert b.batches == len(batches)


@settings(max_examples=150)
@given(st.data(), st.lists(st.integers(0, 9), min_size=1, max_size=12), st.integers(1, 5))
def test_every_item_runs_once_in_order_and_no_batch_exceeds_limit(
        data: st.DataObject, groups: list[int], limit: int) -> None:
    turns = data.draw(st.lists(st.integers(0, 3), min_size=len(groups), max_size=len(groups)))
    asyncio.run(_scenario(groups, limit, turns))


async def test_with_alone_a_failed_batch_is_handled_item_by_item_in_order_first() -> None:
    """With ``alone``: a batch that failed before COMMIT has its items handled one by one,
    in submission order, before the next batch starts; each submitter gets True, or what
    ``alone`` raised for its own item."""
    run = GatedRun()
    handled: list[int] = []
    gate = asyncio.get_running_loop().create_future()

    async def alone(item: int) -> None:
        if item == 1:
            await gate            # the first item's lone run is slow
        handled.append(item)
        if item == 2:
            raise ValueError("store down for this one")

    b = Batcher(run, limit=8, alone=alone)
    first = await spawn(b, [0])
    await run.entered(0)
    failing = await spawn(b, [1, 2, 3])
    run.release(0)
    await run.entered(1)
    later = await spawn(b, [4])
    run.fail(1, RuntimeError("batch failed before COMMIT"))
    for _ in range(5):
        await turn()
    assert handled == [] and len(run.batches) == 2, "the next batch did not wait for them"
    gate.set_result(None)
    await within_turns(lambda: handled == [1, 2, 3], "the failed batch handled one by one")
    assert await settled(failing[0]) == [True]
    assert isinstance(await raised(failing[1], ValueError), ValueError)
    assert await settled(failing[2]) == [True]
    await run.entered(2)
    assert run.batches[2] == [4]
    run.release(2)
    assert await settled(*first, *later) == [True, True]
