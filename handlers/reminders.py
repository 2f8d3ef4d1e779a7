"""Reminders to the people who still have to decide an open request.

One ``request_remind`` due row per request and reminder number. The handler of one row also
takes the other reminders due now for requests in the same conversation (marking their rows
done in the same transaction) and sends one message listing them all; each request keeps its
own next reminder (doubling up to ``policy.remind_max``, outside ``policy.quiet_hours``).
A request open for ``policy.escalate_after`` also @-mentions the owner.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from bot.approvals.engine import (
    conversation_key,
    held_for_quiet_hours,
    schedule_next_reminder,
    view_of,
)
from bot.core.clock import local
from bot.core.commands.durations import format_duration
from bot.core.domain.due import DueItem
from bot.core.domain.requests import Request, State, waiting_for
from bot.core.escape import Md
from bot.core.sends import Reply
from bot.dispatch.context import Context
from bot.texts.catalog import t

KIND = "request_remind"
MERGE_MAX = 20      # requests listed in one reminder message; the rest go in the next one


def _open(req: Request | None, env: Context) -> bool:
    return req is not None and req.state == State.PENDING.value and req.expires_at > env.now


async def _lock_own(row_id: int, env: Context) -> bool:
    """Still ours to send? (Another handler may have merged this row into its message.)"""
    return await env.uow.due.is_pending(row_id)


async def _merge_rows(row_id: int, req: Request, env: Context) -> list[tuple[DueItem, Request]]:
    """Other pending reminder rows due now for open requests in ``req``'s conversation."""
    rows = await env.uow.due.pending_due(KIND, env.now, besides=row_id)
    ids = {int(r.payload["request_id"]) for r in rows if "request_id" in r.payload}
    if not ids:
        return []
    reqs = await env.uow.requests.by_ids(req.corp_id, ids)
    key = conversation_key(req)
    chosen: list[tuple[DueItem, Request]] = []
    seen = {req.id}
    for r in rows:
        other = reqs.get(int(r.payload.get("request_id", 0)))
        if other is None or not _open(other, env) or conversation_key(other) != key:
            continue
        if other.id in seen:
            continue    # two rows for one request: the next run sends the later one
        seen.add(other.id)
        chosen.append((r, other))
        if len(chosen) >= MERGE_MAX - 1:
            break
    if not chosen:
        return []
    # Take them for real: still pending, and (on PostgreSQL) not held by another replica.
    held = await env.uow.due.take([r.id for r, _ in chosen], env.now)
    return [(r, o) for r, o in chosen if r.id in held]


async def remind_due(row_id: int, payload: dict[str, Any], env: Context) -> None:
    """Run one reminder row (and merge the others due now in the same conversation)."""
    if not await _lock_own(row_id, env):
        return
    req = await env.uow.requests.find(int(payload["request_id"]))
    if req is None or not _open(req, env):
        return
    # (The others due now, merged below otherwise, each come here too.)
    if await held_for_quiet_hours(env, KIND, payload, f"remind:{req.id}:{payload.get('n', 1)}"):
        return
    env = env.for_request(req)
    batch = [(int(payload.get("n", 1)), req)]
    batch += [(int(r.payload.get("n", 1)), other) for r, other in await _merge_rows(row_id, req, env)]
    batch.sort(key=lambda x: x[1].id)
    policy = env.settings.policy
    owner = await env.uow.members.owner_of(env.corp_id)
    owner_id = owner.user_id if owner and owner.active else None
    entries: list[tuple[Request, list[str]]] = []
    escalated: list[Request] = []
    for n, r in batch:
        waiting = list(waiting_for(await view_of(r, env)))
        if waiting:
            entries.append((r, waiting))
            if (owner_id and owner_id not in waiting
                    and env.now - r.created_at >= policy.escalate_after):
                escalated.append(r)
        await schedule_next_reminder(r, env, n)
    if not entries:
        return
    people = {w for _, ws in entries for w in ws} | ({owner_id} if escalated and owner_id else set())
    names = await env.names(*people)
    sep = t("list_sep", env.lang)

    def who(ws: list[str]) -> Md:      # the mentions Baton means to make (``at`` below)
        return Md(sep.join(f"@{names[w]}" for w in ws))

    def expires(r: Request) -> str:
        return local(r.expires_at, policy.timezone)

    def text(entries: list[tuple[Request, list[str]]], escalated: list[Request]) -> str:
        if len(entries) == 1:
            r, ws = entries[0]
            lines = [t("remind_deciders", env.lang, id=r.public_id, who=who(ws),
                       expires=expires(r))]
        else:
            lines = [t("remind_merged_header", env.lang, n=len(entries))]
            lines += [t("remind_merged_line", env.lang, id=r.public_id, who=who(ws),
                        expires=expires(r)) for r, ws in entries]
        if escalated and owner_id:
            lines.append(t("remind_escalate", env.lang,
                           ids=sep.join(r.public_id for r in escalated),
                           after=format_duration(policy.escalate_after, env.lang),
                           owner=Md(f"@{names[owner_id]}")))
        return "\n\n".join(lines)

    at = list(dict.fromkeys(w for _, ws in entries for w in ws))
    if escalated and owner_id and owner_id not in at:
        # (The owner may decide one request and be escalated to on another: named once.)
        at.append(owner_id)
    title = t("remind_title", env.lang)

    async def send(reply: Reply, named: list[tuple[Request, list[str]]]) -> None:
        # This reminder replaces an older one to the same place still unsent (e.g. sent just
        # before a crash and never marked, so due to go again): once per request, not twice.
        ids = tuple(r.id for r, _ in named)
        await env.uow.outbox.supersede_reminders(reply.conversation_key, set(ids))
        await env.send(dataclasses.replace(reply, reminds=ids))

    if req.payload.get("is_group", True):
        await send(Reply(text=text(entries, escalated), conversation_id=req.conversation_id,
                         is_group=True, markdown=True, title=title, at=tuple(at)), entries)
    elif twin := req.payload.get("twin"):
        # Asked one-to-one: remind where the deciders see the card, the admin group.
        await send(Reply(text=text(entries, escalated), conversation_id=str(twin),
                         is_group=True, markdown=True, title=title, at=tuple(at)), entries)
    else:
        # Asked one-to-one, the card sent to each decider: each is reminded one-to-one of
        # what waits for them (not an admin added since, who has no card to click).
        copies = {str(u) for u in req.payload.get("copies", [])}
        for person in at:
            if copies and person not in copies and person != owner_id:
                continue
            mine = [(r, ws) for r, ws in entries if person in ws]
            up = escalated if person == owner_id else []
            await send(Reply(text=text(mine or entries, up), conversation_id="",
                             is_group=False, user_id=person, markdown=True, title=title),
                       mine or entries)
