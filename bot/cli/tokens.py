"""``baton token create|list|revoke``: bearer tokens of the decision API.

A token is made here from 32 bytes of the OS's CSPRNG, printed once and stored only as its
SHA-256 (``bot.core.domain.tokens`` argues why a fast hash is right for it). Creating and
revoking are audited (actor ``cli``); the audit records the name and scope, never the token.
"""

from __future__ import annotations

import secrets
import sys

from bot.cli.store import operator_store
from bot.config import Settings
from bot.core.clock import SystemClock
from bot.core.domain.tokens import NAME, PREFIX, token_hash


def new_token() -> str:
    return PREFIX + secrets.token_urlsafe(32)


async def token(settings: Settings, cmd: str, name: str | None, scope: str) -> int:
    corp, now = settings.org.corp_id, SystemClock().now()
    async with operator_store(settings) as db, db.uow() as uow:
        if cmd == "list":
            rows = await uow.tokens.all(corp)
            if not rows:
                print("no tokens: make one with `baton token create --name crm`")
            for r in rows:
                state = f"revoked {r.revoked_at:%Y-%m-%d %H:%M}" if r.revoked_at else "active"
                print(f"{r.name:<24} {r.scope:<6} created {r.created_at:%Y-%m-%d %H:%M} "
                      f"by {r.created_by}  {state}")
            return 0
        assert name is not None
        if cmd == "create":
            if not NAME.match(name):
                print(f"baton: {name!r} is not a token name: letters, digits, '.', '_' or "
                      "'-', up to 64, e.g. crm", file=sys.stderr)
                return 2
            raw = new_token()
            made = await uow.tokens.create(corp, name, scope, token_hash(raw), by="cli",
                                           now=now)
            if made is None:
                print(f"baton: a token named {name!r} is active already; revoke it first "
                      f"(`baton token revoke {name}`) or choose another name", file=sys.stderr)
                return 1
            await uow.audit.append(corp, now, actor_id="cli", action="api_token.create",
                                   result="applied", after={"name": name, "scope": scope})
            await uow.commit()
            print(f"token {name!r} ({scope}); shown this once, store it now:\n{raw}")
            return 0
        gone = await uow.tokens.revoke(corp, name, now)
        if gone is None:
            print(f"baton: no active token named {name!r} (`baton token list`)",
                  file=sys.stderr)
            return 1
        await uow.audit.append(corp, now, actor_id="cli", action="api_token.revoke",
                               result="applied", before={"name": name, "scope": gone.scope})
        await uow.commit()
        print(f"token {name!r} revoked; every replica refuses it from the next request on")
        return 0
