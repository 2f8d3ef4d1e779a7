"""A loopback DingTalk: the Stream gateway and the OpenAPI subset a bot uses.

Used by end-to-end tests, benchmarks and the interactive sandbox::

    with Simulator(users=[SimUser("u1", "张三")]) as sim:
        DingTalkStreamClient.OPEN_CONNECTION_API = sim.open_connection_url
        ...
        delivery = sim.say("u1", "帮助")
        sim.wait_for(lambda: sim.acks(delivery.message_id), what="the ack")
"""

from dingtalk_sim.model import (
    AckRecord,
    BadFrame,
    CardUpdate,
    ConnInfo,
    Delivery,
    HttpRecord,
    SentMessage,
    SimCard,
    SimGroup,
    SimUser,
    Upload,
)
from dingtalk_sim.server import Simulator

__all__ = [
    "AckRecord",
    "BadFrame",
    "CardUpdate",
    "ConnInfo",
    "Delivery",
    "HttpRecord",
    "SentMessage",
    "SimCard",
    "SimGroup",
    "SimUser",
    "Simulator",
    "Upload",
]
