"""Adapters from the SDK's callback handlers to the dispatcher.

``process`` returns only after the dispatcher's transaction committed, so the SDK's
``raw_process`` builds the ack after the commit (or at once for a known duplicate). If the
dispatcher raises, no ack is sent and DingTalk may redeliver; the dedupe makes that safe.
"""

from __future__ import annotations

import logging
from typing import Any, Protocol

import dingtalk_stream
from dingtalk_stream.frames import AckMessage, CallbackMessage, EventMessage, Headers

from bot.transport.inbound import (
    CardAction,
    IncomingMessage,
    MalformedFrame,
    OrgEvent,
    parse_card_action,
    parse_org_event,
    parse_robot_message,
)

log = logging.getLogger(__name__)


class Dispatcher(Protocol):
    """Where parsed frames go (``bot.dispatch.dispatcher.Dispatcher`` is the one): a port, so transport
    does not import the layers above it."""

    async def handle_robot_message(self, msg: IncomingMessage) -> None: ...

    async def handle_card_action(self, action: CardAction) -> dict[str, Any]: ...

    async def handle_event(self, event: OrgEvent) -> None: ...


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


class OrgEventHandler(dingtalk_stream.EventHandler):  # type: ignore[misc]
    """Org events (EVENT frames): handed to the dispatcher, acked ``{"status": "SUCCESS"}``
    once it committed (the SDK's own ``raw_process`` echoes the event back instead)."""

    def __init__(self, dispatcher: Dispatcher) -> None:
        super().__init__()
        self.dispatcher = dispatcher

    async def process(self, event: EventMessage) -> tuple[int, Any]:
        h = event.headers
        headers = {"eventId": h.event_id, "eventType": h.event_type,
                   "eventCorpId": h.event_corp_id, "eventBornTime": h.event_born_time,
                   "messageId": h.message_id}
        try:
            parsed = parse_org_event(headers, event.data)
        except MalformedFrame as e:
            log.warning("ignoring event %s: %s", h.message_id, e)
            return AckMessage.STATUS_OK, "ignored"
        await self.dispatcher.handle_event(parsed)
        return AckMessage.STATUS_OK, "OK"

    async def raw_process(self, event_message: EventMessage) -> AckMessage:
        code, message = await self.process(event_message)
        ack = AckMessage()
        ack.code = code
        ack.headers.message_id = event_message.headers.message_id
        ack.headers.content_type = Headers.CONTENT_TYPE_APPLICATION_JSON
        ack.message = message
        ack.data = {"status": "SUCCESS"}
        return ack
