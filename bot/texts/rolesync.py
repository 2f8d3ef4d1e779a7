"""What Baton says about DingTalk role sync (通讯录角色) and the monthly API call budget."""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "roles_why": "钉钉角色同步",
    "roles_denied": (
        "钉钉拒绝了角色同步调用（{api}：{code}），应用缺少通讯录管理权限"
        "（qyapi_manage_addresslist）。请在开发者后台为应用开通后，下一次对账会补齐；"
        "在此之前的角色变更已暂停，不会反复重试。"
    ),
    "roles_failed": "钉钉角色同步失败（{api}：{code} {message}），将在下一次对账时重试。",
    "roles_summary_enforce": (
        "钉钉角色对账：发现 {n} 处不一致（钉钉缺少 {missing} 处，多出 {extra} 处），"
        "已按 Baton 修正，共 {calls} 次调用。{detail}"
    ),
    "roles_summary_report": (
        "钉钉角色对账（只报告）：发现 {n} 处不一致（钉钉缺少 {missing} 处，多出 {extra} 处），"
        "未做修改。{detail}"
    ),
    "roles_detail_missing": "{role} 缺 {users}",
    "roles_detail_extra": "{role} 多 {users}",
    "audit_action_roles.missing": "钉钉角色缺少",
    "audit_action_roles.extra": "钉钉角色多出",
    "budget_why": "钉钉调用额度",
    "budget_warning": (
        "本月（{month}）钉钉开放接口已调用 {calls} 次，达到月度额度 {budget} 次的 {pct}%。"
        "超出额度后计量接口会被拒绝，请减少调用或升级额度。"
    ),
}

EN: Mapping[str, str] = {
    "roles_why": "DingTalk role sync",
    "roles_denied": (
        "DingTalk refused a role sync call ({api}: {code}): the app lacks the contacts "
        "management permission (qyapi_manage_addresslist). Grant it in the developer console; "
        "the next reconcile catches up. Until then role changes are parked, not retried."
    ),
    "roles_failed": "DingTalk role sync failed ({api}: {code} {message}); the next reconcile "
                    "tries again.",
    "roles_summary_enforce": (
        "DingTalk role reconcile: {n} differences ({missing} missing in DingTalk, {extra} "
        "extra), fixed to match Baton in {calls} calls. {detail}"
    ),
    "roles_summary_report": (
        "DingTalk role reconcile (report only): {n} differences ({missing} missing in "
        "DingTalk, {extra} extra), nothing changed. {detail}"
    ),
    "roles_detail_missing": "{role} lacks {users}",
    "roles_detail_extra": "{role} also has {users}",
    "audit_action_roles.missing": "DingTalk role missing",
    "audit_action_roles.extra": "DingTalk role extra",
    "budget_why": "DingTalk call budget",
    "budget_warning": (
        "DingTalk OpenAPI calls this month ({month}): {calls}, {pct}% of the monthly budget "
        "of {budget}. Past the budget, metered APIs are refused: call less or raise it."
    ),
}
