"""Command handlers, one module per command family, included in order by build_router()."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.dispatch.context import CommandRouter

if TYPE_CHECKING:
    from bot.scheduling.due import DueHandler


def build_router() -> CommandRouter:
    from handlers import approvals, audit, bulk, info, permissions, review, templates, transfer

    root = CommandRouter()
    root.include(review.router)
    root.include(info.router)
    root.include(transfer.router)
    root.include(approvals.router)
    root.include(permissions.router)
    root.include(templates.router)
    root.include(bulk.router)
    root.include(audit.router)
    return root


def due_handlers() -> dict[str, DueHandler]:
    from handlers import approvals, audit, permissions, review, transfer

    return {**approvals.DUE_HANDLERS, **transfer.DUE_HANDLERS, **permissions.DUE_HANDLERS,
            **audit.DUE_HANDLERS, **review.DUE_HANDLERS}
