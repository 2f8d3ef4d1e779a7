"""Request cards as pure renderers: a view in, the card's ``cardParamMap`` out.

The template (docs/card-template.md) binds these keys: ``title``, ``markdown`` (the body),
``status`` (drives button visibility: buttons show only while ``pending``), ``status_text``,
``request_id``, ``progress``, ``expires``, ``decided``, and the per-user private key
``notice`` (the answer only the clicker sees). All values are strings, as DingTalk requires.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from bot.core.cardref import CardRef
from bot.core.clock import local
from bot.core.domain.requests import State
from bot.core.escape import joined, literal
from bot.core.lang import Lang
from bot.texts.catalog import MESSAGES, t


@dataclass(frozen=True)
class CardView:
    request_id: str
    kind: str
    state: State
    lang: Lang
    tz: str
    requester: str                     # display names (already "name (userId)")
    target: str
    reason: str
    expires_at: datetime
    progress: tuple[int, int]
    agreed: tuple[str, ...]            # names of those who said yes
    waiting_for: tuple[str, ...]       # names still to decide
    decided_by: str = ""
    decided_at: datetime | None = None
    detail: str = ""                   # what the request changes (markdown, already escaped)


def render_request_card(v: CardView) -> dict[str, str]:
    lang = v.lang
    sep = t("list_sep", lang)
    title = t(f"card_title_{v.kind}", lang, id=v.request_id)
    lines: list[str] = [
        t(f"card_body_{v.kind}", lang, requester=literal(v.requester), target=literal(v.target)),
    ]
    if v.detail:
        lines.append(v.detail)
    if v.reason:
        lines.append(t("card_reason", lang, reason=literal(v.reason, 500)))
    have, need = v.progress
    agreed = joined(sep, (literal(a) for a in v.agreed))
    progress = t("card_progress", lang, have=have, need=need, who=agreed) if agreed else \
        t("card_progress_none", lang, have=have, need=need)
    if v.state is State.PENDING and v.waiting_for:
        lines.append(t("card_waiting", lang, who=joined(sep, (literal(w) for w in v.waiting_for))))
    decided = ""
    if v.decided_at is not None:
        decided = t("card_decided", lang, who=literal(v.decided_by) or "Baton",
                    at=local(v.decided_at, v.tz, "%m-%d %H:%M"))
    # A kind may name its own outcomes (a break-glass review's "applied" is "justified").
    own = f"state_{v.kind}_{v.state.value}"
    status_text = t(own if own in MESSAGES else f"state_{v.state.value}", lang)
    lines.append(f"**{status_text}**" + (f" · {decided}" if decided else ""))
    return {
        "title": title,
        "markdown": "\n\n".join(lines),
        "status": v.state.value,
        "status_text": status_text,
        "request_id": v.request_id,
        "progress": progress,
        "expires": t("card_expires", lang, at=local(v.expires_at, v.tz)),
        "decided": decided,
    }


def out_track_id(corp_id: str, request_id: int) -> str:
    """Derived from the request, so any replica can update the card."""
    return CardRef.request(corp_id, request_id).pack()
