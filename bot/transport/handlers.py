"""Adapters from the SDK's callback handlers to the dispatcher.

``process`` returns only after the dispatcher's transaction committed, so the SDK's
``raw_process`` builds the ack after the commit (or at once for a known duplicate). If the
dispatcher raises, no ack is sent and DingTalk may redeliver; the dedupe makes that safe.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import dingtalk_stream
from dingtalk_stream.frames import AckMessage, CallbackMessage

from bot.transport.inbound import (
    CardAction,
    IncomingMessage,
    MalformedFrame,
    parse_card_action,
    parse_robot_message,
)

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Where parsed frames go (``bot.dispatch.dispatcher.Dispatcher`` is the one): a port, so transport
    does not import the layers above it."""

    async def handle_robot_message(self, msg: IncomingMessage) -> None: ...

    async def handle_card_action(self, action: CardAction) -> dict[str, Any]: ...


class RobotMessageHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]
    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self.dispatcher = dispatcher

    async def process(self, message: CallbackMessage) -> tuple[int, Any]:
        try:
            msg = parse_robot_message(message.headers.message_id, message.data)
        except MalformedFrame as e:
            log.warning("ignoring robot message %s: %s", message.headers.message_id, e)
            return AckMessage.STATUS_OK, "ignored"
        await self.dispatcher.handle_robot_message(msg)
        return AckMessage.STATUS_OK, "OK"


class CardCallbackHandler(dingtalk_stream.CallbackHandler):  # type: ignore[misc]
    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self.dispatcher = dispatcher

    async def process(self, message: CallbackMessage) -> tuple[int, Any]:
        try:
            action = parse_card_action(message.headers.message_id, message.data)
        except MalformedFrame as e:
            log.warning("ignoring card callback %s: %s", message.headers.message_id, e)
            return AckMessage.STATUS_OK, {}
        return AckMessage.STATUS_OK, await self.dispatcher.handle_card_action(action)
