"""Members asking for access themselves (handlers/access.py): request, requests, release,
extend, policy show, the expiry warning, and the ``access`` request kind's card.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "kind_access": "权限申请",
    "card_title_access": "权限申请 {id}",
    "card_body_access": "**{requester}** 为自己申请权限。",
    "access_gain": "申请：{name}，{duration}",
    "access_gain_extend": "申请续期：{name}，再延长 {d}",
    "access_for": "为期 {d}（自批准起；若现在批准，至 {at}）",
    "access_for_ever": "长期有效",
    "access_holds": "目前拥有：{perms}",
    "access_holds_nothing": "目前没有任何业务权限",
    "access_capped": "（你申请的时长超过上限 {cap}，已按 {cap} 申请）",
    "access_already_held": "你已经拥有 {name}（来源：{sources}），无需申请。",
    "access_already_asked": "你已在申请 {name}：**{id}** 正在等待审批，未重复发起。可发送 `我的申请` 查看。",
    "access_asked": (
        "已发起申请 **{id}**：{what}{capped}\n\n审批人：{approvers}（需要 {need} 位同意）。"
        "审批结果会通知你；`取消 {id}` 可撤回。"
    ),
    "access_auto": "{name} 按策略自动批准，已生效，{until}{capped}。",
    "access_not_requestable": "{name} 不能自助申请，只能由管理员授予。请联系管理员。",
    "access_no_approvers": (
        "{name} 需要 {need} 位审批人，但按策略目前只有 {have} 位可以审批（不含你本人），无法发起。"
        "请联系管理员调整该权限的 policy。"
    ),
    "access_builtin": "「{name}」是内置身份，不能申请。",
    "access_directory": "暂时无法从钉钉通讯录读取你的主管和部门负责人，未发起申请。请稍后重试。",
    "my_requests_none": "你还没有发起过申请。用法：`申请 <权限> [<时长>] <理由>`。",
    "my_requests_title": "我的申请",
    "my_requests_line": "- **{id}** {kind}：{what} · {state}{when}",
    "my_requests_open_until": "，{at} 前有效",
    "release_done": "已交还 {name}，即时生效。",
    "release_not_held": "你没有 {name} 的授权，无需交还，未做任何更改。",
    "release_not_grant": "你的 {name} 来自：{sources}，不是授权，不能用这个命令交还，未做任何更改。",
    "extend_nothing": (
        "你没有可续期的 {name}：续期只适用于你持有的限时授权，未做任何更改。"
        "需要的话请用 `申请 {perm} <时长> <理由>`。"
    ),
    "expiry_warning": (
        "你的临时权限 {name} 将于 {at} 到期。如仍需要，可发送 `续期 {perm} <时长> <理由>` "
        "申请延长（需重新审批）；用完了可发送 `我用完了 {perm}`。"
    ),
    "expiry_warning_title": "权限即将到期",
    "policy_title": "{name} 的申请策略",
    "policy_approvers": "审批人：{who}",
    "policy_need": "需要同意人数：{n}",
    "policy_max": "最长时长：{d}",
    "policy_max_none": "最长时长：不限",
    "policy_auto": "自动批准：{rule}",
    "policy_auto_depts": "部门为 {depts}",
    "policy_auto_max": "时长不超过 {d}",
    "policy_not_requestable": "不可自助申请（仅管理员授予）",
    "policy_break_glass": "你可以对它使用 `紧急授权`（最长 {d}）。",
    "approver_owner": "主管理员",
    "approver_admins": "子管理员",
    "approver_manager": "申请人的直属主管",
    "approver_dept_leader": "申请人所在部门的负责人",
    "approver_role": "角色 {role} 的成员",
    "and": "且",
    "kind_break_glass": "紧急授权",
    "todo_subject": "审批 {id}：{who} 申请 {name}",
    "access_escalated": "⚠️ 超时无人处理，已升级至：{who}",
    "access_escalated_notice": "**{id}** 已等待超过 {after} 无人处理，已升级至 {who}。",
    "bg_refused": (
        "你不在紧急授权名单中，或 {name} 不允许紧急授权（policy.break_glass），未做任何更改。"
        "此次尝试已记录并通知管理员。如需权限，请用 `申请`。"
    ),
    "bg_held": "你已经拥有 {name}（来源：{sources}），无需紧急授权。",
    "bg_done": (
        "紧急授权 **{id}** 已生效：{name}，至 {at}。已通知 {who}，他们可随时撤回。"
        "用完请发送 `我用完了 {perm}`。"
    ),
    "bg_card_title": "紧急授权 {id}",
    "bg_card_body": (
        "**{who}** 使用了紧急授权：{name}，至 {at}。\n\n理由：{reason}\n\n"
        "如不应授予，请点「撤回」立即收回。"
    ),
    "bg_status_active": "生效中",
    "bg_status_withdrawn": "已撤回",
    "bg_status_ended": "已结束",
    "bg_card_withdrawn": "已由 {who} 于 {at} 撤回",
    "bg_card_ended": "已于 {at} 结束",
    "bg_card_until": "至 {at}",
    "bg_withdraw_ok": "已撤回，{who} 的 {name} 立即失效。",
    "bg_withdraw_not_yours": "只有被通知的主管理员和审批人可以撤回，你的点击未生效。",
    "bg_withdraw_over": "这次紧急授权已结束（{state}），无需撤回。",
    "bg_withdrawn_holder": "你的紧急授权 {name}（{id}）已被 {who} 撤回，立即失效。",
    "kind_break_glass_review": "紧急授权复核",
    "card_title_break_glass_review": "紧急授权复核 {id}",
    "card_body_break_glass_review": (
        "**{target}** 的紧急授权已结束，请判断这次使用是否合理"
        "（「合理」或「不合理」，不合理的会告警以便跟进）："
    ),
    "bg_review_detail": (
        "{id}：{name}，{at} 起，{outcome}。可发送 `审计 {user}` 查看这段时间的操作。"
    ),
    "bg_verdict_applied": "**结论：合理**",
    "bg_verdict_rejected": "**结论：不合理，需跟进**",
    "state_break_glass_review_pending": "待复核",
    "state_break_glass_review_applied": "合理",
    "state_break_glass_review_rejected": "不合理，需跟进",
    "button_justified": "合理",
    "button_unjustified": "不合理",
    "action_justified": "判为合理",
    "action_unjustified": "判为不合理",
    "click_ok_justified": "已记录：这次紧急授权合理。",
    "click_ok_unjustified": "已记录：这次紧急授权不合理，已告警以便跟进。",
    "bg_unjustified_what": "紧急授权 {id}（{who}）被判为不合理",
    "bg_unjustified_why": "{by} 在复核 {id} 中判为不合理，请跟进",
    "bg_unreviewed_what": "紧急授权 {id}（{who}）无人复核",
    "bg_unreviewed_why": "复核 {id} 已过期，未作判断",
    "bg_outcome_withdrawn": "已由 {by} 撤回",
    "bg_outcome_ended": "已按时结束",
    "bg_outcome_released": "已由本人提前交还",
}


EN: Mapping[str, str] = {
    "kind_access": "Access request",
    "card_title_access": "Access request {id}",
    "card_body_access": "**{requester}** asks for access.",
    "access_gain": "Asks for: {name}, {duration}",
    "access_gain_extend": "Asks to extend: {name}, by {d} more",
    "access_for": "for {d} (from approval; until {at} if approved now)",
    "access_for_ever": "permanently",
    "access_holds": "Holds now: {perms}",
    "access_holds_nothing": "Holds no business permission now",
    "access_capped": " (you asked for longer than the cap of {cap}; asked for {cap})",
    "access_already_held": "You already hold {name} (from {sources}); nothing to ask for.",
    "access_already_asked": (
        "You are already asking for {name}: **{id}** is waiting for approval; no second "
        "request was opened. Send `requests` to see yours."
    ),
    "access_asked": (
        "Request **{id}** is open: {what}{capped}\n\nApprovers: {approvers} ({need} must "
        "agree). You will be told the outcome; `cancel {id}` withdraws it."
    ),
    "access_auto": "{name} is approved by policy and applies now, {until}{capped}.",
    "access_not_requestable": (
        "{name} cannot be requested; only an admin can grant it. Please ask an admin."
    ),
    "access_no_approvers": (
        "{name} needs {need} approvers, but under its policy only {have} can approve (you "
        "excluded), so no request was opened. Please ask an admin to adjust its policy."
    ),
    "access_builtin": "“{name}” is a built-in level and cannot be requested.",
    "access_directory": (
        "I could not read your manager and department heads from the DingTalk directory just "
        "now; no request was opened. Please try again shortly."
    ),
    "my_requests_none": (
        "You have made no requests. To ask: `request <permission> [for <duration>] <reason>`."
    ),
    "my_requests_title": "My requests",
    "my_requests_line": "- **{id}** {kind}: {what} · {state}{when}",
    "my_requests_open_until": ", open until {at}",
    "release_done": "{name} is given back; it ends now.",
    "release_not_held": "You hold no grant of {name}; nothing was changed.",
    "release_not_grant": (
        "Your {name} comes from {sources}, not from a grant, so this command cannot give it "
        "back; nothing was changed."
    ),
    "extend_nothing": (
        "You have no {name} to extend: extend works on a time-bound grant you hold; nothing "
        "was changed. To ask for it: `request {perm} for <duration> <reason>`."
    ),
    "expiry_warning": (
        "Your temporary {name} ends at {at}. If you still need it, send `extend {perm} for "
        "<duration> <reason>` (a new request, approved as usual); if you are done, send "
        "`release {perm}`."
    ),
    "expiry_warning_title": "Access ending soon",
    "policy_title": "Request policy of {name}",
    "policy_approvers": "Approvers: {who}",
    "policy_need": "Approvals needed: {n}",
    "policy_max": "Longest duration: {d}",
    "policy_max_none": "Longest duration: no limit",
    "policy_auto": "Approved automatically: {rule}",
    "policy_auto_depts": "in {depts}",
    "policy_auto_max": "for at most {d}",
    "policy_not_requestable": "Not requestable (admins grant it)",
    "policy_break_glass": "You may use `break-glass` for it (at most {d}).",
    "approver_owner": "the owner",
    "approver_admins": "the admins",
    "approver_manager": "the requester's direct manager",
    "approver_dept_leader": "the head of the requester's department",
    "approver_role": "members in role {role}",
    "and": "and",
    "kind_break_glass": "Break-glass",
    "todo_subject": "Approve {id}: {who} asks for {name}",
    "access_escalated": "⚠️ Undecided in time: escalated to {who}",
    "access_escalated_notice": "**{id}** waited over {after} with no decision; escalated to {who}.",
    "bg_refused": (
        "You are not on the break-glass list, or {name} does not allow break-glass "
        "(policy.break_glass); nothing was changed. The attempt is recorded and the admins are "
        "told. To ask for access, use `request`."
    ),
    "bg_held": "You already hold {name} (from {sources}); no break-glass needed.",
    "bg_done": (
        "Break-glass **{id}** applies now: {name}, until {at}. {who} are told and may "
        "withdraw it at any time. When you are done, send `release {perm}`."
    ),
    "bg_card_title": "Break-glass {id}",
    "bg_card_body": (
        "**{who}** used break-glass: {name}, until {at}.\n\nReason: {reason}\n\n"
        "If it should not stand, press “Withdraw” to end it now."
    ),
    "bg_status_active": "Active",
    "bg_status_withdrawn": "Withdrawn",
    "bg_status_ended": "Ended",
    "bg_card_withdrawn": "withdrawn by {who} at {at}",
    "bg_card_ended": "ended at {at}",
    "bg_card_until": "until {at}",
    "bg_withdraw_ok": "Withdrawn: {who} loses {name} now.",
    "bg_withdraw_not_yours": (
        "Only the owner and the approvers told of it can withdraw it; your click changed nothing."
    ),
    "bg_withdraw_over": "This break-glass is already over ({state}); nothing to withdraw.",
    "bg_withdrawn_holder": "Your break-glass {name} ({id}) was withdrawn by {who}; it ends now.",
    "kind_break_glass_review": "Break-glass review",
    "card_title_break_glass_review": "Break-glass review {id}",
    "card_body_break_glass_review": (
        "**{target}**'s break-glass has ended. Was this use justified? (Justified or Not "
        "justified; a use not justified is alerted for follow-up.)"
    ),
    "bg_review_detail": (
        "{id}: {name}, from {at}; {outcome}. `audit {user}` shows what happened meanwhile."
    ),
    "bg_verdict_applied": "**Verdict: justified**",
    "bg_verdict_rejected": "**Verdict: not justified; to follow up**",
    "state_break_glass_review_pending": "To review",
    "state_break_glass_review_applied": "Justified",
    "state_break_glass_review_rejected": "Not justified: follow up",
    "button_justified": "Justified",
    "button_unjustified": "Not justified",
    "action_justified": "judged it justified",
    "action_unjustified": "judged it not justified",
    "click_ok_justified": "Recorded: this break-glass was justified.",
    "click_ok_unjustified": "Recorded: not justified; it is alerted for follow-up.",
    "bg_unjustified_what": "break-glass {id} ({who}) judged not justified",
    "bg_unjustified_why": "{by} judged it not justified in review {id}; please follow up",
    "bg_unreviewed_what": "break-glass {id} ({who}) was never reviewed",
    "bg_unreviewed_why": "review {id} expired with no verdict",
    "bg_outcome_withdrawn": "withdrawn by {by}",
    "bg_outcome_ended": "it ended on time",
    "bg_outcome_released": "given back early by its holder",
}
