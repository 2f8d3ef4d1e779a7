"""``baton webhooks list`` and ``baton webhooks replay <name> --from <seq>``.

``list`` shows each configured subscriber's place in the change feed (cursor, lag), its
state, failed attempts, next retry and last error. ``replay`` moves a subscriber's cursor so
that delivery resumes with event ``seq`` (a paused subscriber becomes active), audited; a
running Baton picks it up within ``integrations.webhook_delivery.poll_interval``.
"""

from __future__ import annotations

import sys
from datetime import datetime

from bot.cli.store import operator_store, store_corp
from bot.config import Settings
from bot.core.clock import SystemClock


def _when(at: datetime | None) -> str:
    return at.isoformat(timespec="seconds") if at is not None else "-"


async def webhooks_list(settings: Settings) -> int:
    configured = {w.name: w for w in settings.integrations.webhooks}
    async with operator_store(settings) as db, db.uow() as uow:
        head = await uow.feed.head()
        oldest = await uow.feed.oldest()
        subs = {s.name: s for s in await uow.webhooks.all()}
    if not configured and not subs:
        print("no webhooks configured (integrations.webhooks in the configuration file)")
        return 0
    print(f"feed head: seq {head}" + (f" (oldest kept: {oldest})" if oldest else ""))
    for name in sorted(set(configured) | set(subs)):
        sub = subs.get(name)
        cfg = configured.get(name)
        if sub is None:
            print(f"{name}\tnot started yet (Baton registers it at its next start)")
            continue
        state = sub.state.value if cfg is not None else f"{sub.state.value}, not configured"
        gap = (f" (events up to {oldest - 1} are past retention: they are gone)"
               if oldest is not None and sub.cursor < oldest - 1 else "")
        print(f"{name}\t{state}\tcursor {sub.cursor}\tlag {max(0, head - sub.cursor)}"
              f"\tattempts {sub.attempts}"
              + (f"/{cfg.max_attempts}" if cfg is not None else "")
              + f"\tnext {_when(sub.next_attempt_at) if sub.attempts else '-'}"
              + f"\tlast delivered {_when(sub.last_delivered_at)}"
              + (f"\tpaused {_when(sub.paused_at)}" if sub.paused_at else "")
              + (f"\tlast error: {sub.last_error}" if sub.last_error else "") + gap)
    return 0


async def webhooks_replay(settings: Settings, name: str, start: int) -> int:
    if name not in {w.name for w in settings.integrations.webhooks}:
        known = ", ".join(w.name for w in settings.integrations.webhooks) or "none"
        print(f"baton: no webhook {name!r} in the configuration (configured: {known})",
              file=sys.stderr)
        return 1
    if start < 1:
        print("baton: --from takes a sequence number, 1 or more (see `baton webhooks list`)",
              file=sys.stderr)
        return 1
    now = SystemClock().now()
    async with operator_store(settings) as db:
        corp = await store_corp(db, settings)
        if corp is None:
            return 1
        async with db.uow() as uow:
            head = await uow.feed.head()
            if start > head + 1:
                print(f"baton: --from {start} is past the feed's head ({head}); the next event "
                      f"will be {head + 1}", file=sys.stderr)
                return 1
            oldest = await uow.feed.oldest()
            before = await uow.webhooks.get(name)
            if before is None:
                await uow.webhooks.register([name], start - 1, now)
            sub = await uow.webhooks.replay(name, start - 1, now)
            assert sub is not None
            await uow.audit.append(
                corp, now, actor_id="cli", action="webhook.replay",
                result="applied",
                before=None if before is None else {"webhook": name, "cursor": before.cursor,
                                                    "state": before.state.value},
                after={"webhook": name, "cursor": sub.cursor, "state": sub.state.value})
            await uow.commit()
    print(f"webhook {name}: delivery resumes with event {start} "
          f"({max(0, head - start + 1)} event(s) up to the head, {head})")
    if oldest is not None and start < oldest:
        print(f"  note: events before {oldest} are past the audit retention and gone; "
              f"delivery starts at {oldest}")
    return 0
