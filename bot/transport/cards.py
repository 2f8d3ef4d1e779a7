"""DingTalk interactive-card request bodies (the only place that knows their shape)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def create_and_deliver_body(*, template_id: str, robot_code: str, out_track_id: str,
                            params: Mapping[str, str], group_id: str | None = None,
                            user_id: str | None = None,
                            at: Mapping[str, str] | None = None,
                            user_ids: Sequence[str] = ()) -> dict[str, Any]:
    """``POST /v1.0/card/instances/createAndDeliver``: into a group, or a one-to-one chat
    (``user_ids``: the one card into several one-to-one chats, one openSpaceId listing each;
    a click in any of them calls back with the same outTrackId)."""
    body: dict[str, Any] = {
        "cardTemplateId": template_id,
        "outTrackId": out_track_id,
        "callbackType": "STREAM",
        "cardData": {"cardParamMap": dict(params)},
        "userIdType": 1,
    }
    if group_id:
        body["openSpaceId"] = f"dtv1.card//IM_GROUP.{group_id}"
        body["imGroupOpenSpaceModel"] = {"supportForward": False}
        deliver: dict[str, Any] = {"robotCode": robot_code}
        if at:
            deliver["atUserIds"] = dict(at)
        body["imGroupOpenDeliverModel"] = deliver
    elif user_id or user_ids:
        spaces = [user_id] if user_id else list(dict.fromkeys(user_ids))
        body["openSpaceId"] = "dtv1.card//" + ";".join(f"IM_ROBOT.{u}" for u in spaces)
        body["imRobotOpenSpaceModel"] = {"supportForward": False}
        body["imRobotOpenDeliverModel"] = {"spaceType": "IM_ROBOT", "robotCode": robot_code}
    else:
        raise ValueError("a card goes to a group or to a user")
    return body


def ack_update(params: Mapping[str, str] | None, private: Mapping[str, str] | None) -> dict[str, Any]:
    """The card update carried in a click's ack (``response`` is added by the SDK)."""
    out: dict[str, Any] = {
        "cardUpdateOptions": {"updateCardDataByKey": True, "updatePrivateDataByKey": True},
    }
    if params:
        out["cardData"] = {"cardParamMap": dict(params)}
    if private:
        out["userPrivateData"] = {"cardParamMap": dict(private)}
    return out
