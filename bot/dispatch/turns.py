"""Sender turns: each sender's messages take effect in the order they arrived."""

from __future__ import annotations

import asyncio


class SenderTurns:
    """Each sender's messages take effect in the order they arrived: a change waits for
    everything the sender sent before it, a read waits for the sender's last change (reads
    of one sender may share a batch). Different senders do not wait for each other."""

    def __init__(self) -> None:
        self._last_change: dict[str, asyncio.Future[None]] = {}
        self._reads: dict[str, list[asyncio.Future[None]]] = {}

    def take(self, sender: str, *, read: bool,
             ) -> tuple[list[asyncio.Future[None]], asyncio.Future[None]]:
        """What this message must wait for, and the future to resolve when it is done."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        change = self._last_change.get(sender)
        reads = self._reads.setdefault(sender, [])
        if read:
            before = [change] if change is not None and not change.done() else []
            reads.append(done)
        else:
            before = [f for f in (change, *reads) if f is not None and not f.done()]
            self._last_change[sender] = done
            reads.clear()
        done.add_done_callback(lambda _f: self._forget(sender))
        return before, done

    def _forget(self, sender: str) -> None:
        reads = [f for f in self._reads.get(sender, ()) if not f.done()]
        change = self._last_change.get(sender)
        if reads:
            self._reads[sender] = reads
            return
        self._reads.pop(sender, None)
        if change is None or change.done():
            self._last_change.pop(sender, None)

    def __len__(self) -> int:
        return len(set(self._reads) | set(self._last_change))
