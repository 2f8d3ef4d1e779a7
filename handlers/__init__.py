"""Command handlers, one module per command family, included in order by build_router()."""

from __future__ import annotations

from bot.dispatch.context import CommandRouter
from handlers import (
    access,
    approvals,
    audit,
    breakglass,
    bulk,
    drift,
    info,
    offboarding,
    paging,
    permissions,
    review,
    rolesync,
    templates,
    transfer,
)

# In order: a command type, card kind or due kind is routed once (include refuses a second).
FAMILIES: tuple[CommandRouter, ...] = (
    review.router,
    info.router,
    transfer.router,
    approvals.router,
    permissions.router,
    templates.router,
    bulk.router,
    audit.router,
    drift.router,
    offboarding.router,
    rolesync.router,
    paging.router,
    access.router,
    breakglass.router,
)


def build_router() -> CommandRouter:
    """The root router: every family's commands, card actions and due work."""
    root = CommandRouter()
    for family in FAMILIES:
        root.include(family)
    return root
