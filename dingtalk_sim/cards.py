"""Advanced-card rules: parameter maps, ``openSpaceId`` grammar and applying updates."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from dingtalk_sim.errors import ApiError
from dingtalk_sim.state import CardState

SPACE_PREFIX = "dtv1.card//"
SPACE_TYPES = frozenset({"IM_GROUP", "IM_ROBOT", "IM_SINGLE", "ONE_BOX", "CO_FEED", "TOP", "DOC"})
_SPACE = re.compile(r"^([A-Za-z_]+)\.(.+)$")


def param_map(value: Any, where: str, *, required: bool = False) -> dict[str, str] | None:
    """Validate a ``{"cardParamMap": {str: str}}`` holder; return the map (None if absent)."""
    if value is None:
        if required:
            raise ApiError(400, "param.cardPublicDataEmpty", f"{where} 不能为空")
        return None
    if not isinstance(value, Mapping):
        raise ApiError(400, "param.cardDataInvalid", f"{where} 必须是对象")
    inner = value.get("cardParamMap")
    if inner is None:
        if required:
            raise ApiError(400, "param.cardPublicDataEmpty", f"{where}.cardParamMap 不能为空")
        return None
    if not isinstance(inner, Mapping):
        raise ApiError(400, "param.cardParamMapInvalid", f"{where}.cardParamMap 必须是对象")
    for key, item in inner.items():
        if not isinstance(key, str) or not isinstance(item, str):
            raise ApiError(
                400,
                "param.cardParamMapInvalid",
                f"{where}.cardParamMap 的值必须是字符串: {key}",
            )
    return dict(inner)


def private_maps(value: Any, where: str = "privateData") -> dict[str, dict[str, str]]:
    """Validate ``{userId: {"cardParamMap": {...}}}``."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ApiError(400, "param.privateDataInvalid", f"{where} 必须是对象")
    result: dict[str, dict[str, str]] = {}
    for user_id, holder in value.items():
        params = param_map(holder, f"{where}.{user_id}")
        result[str(user_id)] = params or {}
    return result


def parse_open_space_id(value: Any) -> list[tuple[str, str]]:
    """``dtv1.card//IM_GROUP.cid...;im_robot.user`` -> [("IM_GROUP", "cid..."), ...]."""
    if not isinstance(value, str) or not value:
        raise ApiError(400, "param.openSpaceIdEmpty", "openSpaceId 不能为空")
    if not value.lower().startswith(SPACE_PREFIX):
        raise ApiError(400, "param.openSpaceIdInvalid", "openSpaceId 格式错误")
    spaces: list[tuple[str, str]] = []
    for part in value[len(SPACE_PREFIX) :].split(";"):
        match = _SPACE.match(part.strip())
        if match is None or match.group(1).upper() not in SPACE_TYPES:
            raise ApiError(400, "param.openSpaceIdInvalid", "openSpaceId 格式错误")
        spaces.append((match.group(1).upper(), match.group(2)))
    return spaces


def space_id(space_type: str, ident: str) -> str:
    return f"{SPACE_PREFIX}{space_type}.{ident}"


def apply_update(
    card: CardState,
    *,
    params: dict[str, str] | None,
    private: Mapping[str, dict[str, str]],
    by_key: bool,
    private_by_key: bool,
) -> None:
    """Merge (``by_key``) or replace the public data, and each user's private data."""
    if params is not None:
        if by_key:
            card.params.update(params)
        else:
            card.params = dict(params)
    for user_id, values in private.items():
        if private_by_key:
            card.private.setdefault(user_id, {}).update(values)
        else:
            card.private[user_id] = dict(values)


def update_options(value: Any) -> tuple[bool, bool]:
    """``cardUpdateOptions`` -> (updateCardDataByKey, updatePrivateDataByKey)."""
    if not isinstance(value, Mapping):
        return False, False
    return bool(value.get("updateCardDataByKey")), bool(value.get("updatePrivateDataByKey"))
