"""The owner transfer: its refusals, its outcomes, the new owner's duties and the DingTalk
console step.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "transfer_directory_unavailable": "暂时无法向钉钉通讯录核实对方身份，未做任何更改，请稍后重试。",
    "transfer_no_owner": "Baton 还不知道谁是主管理员，无法转让。请运维执行 `baton init --owner <userId>`。",
    "transfer_no_authority": "只有主管理员，或拥有 owner.transfer 权限的管理员，才能发起主管理员转让。",
    "transfer_target_unknown": "钉钉通讯录里没有 {who} 这个成员，只能转让给本企业成员。",
    "transfer_target_inactive": "{who} 尚未激活钉钉账号（或已停用），不能成为主管理员。",
    "transfer_target_is_owner": "{who} 已经是主管理员了。",
    "transfer_target_not_eligible": (
        "按本企业的策略，只有现任子管理员可以成为主管理员；{who} 不是管理员。"
        "可先 `添加管理员`，或让运维将 policy.owner_candidates 设为 members。"
    ),
    "transfer_transfer_open": "已经有一个进行中的主管理员转让 {id}，请先完成或取消它。",
    "transfer_created": "已创建申请 {id}，等待 {who} 在卡片上确认。",
    "transfer_not_applied": "主管理员转让 {id} 已获同意，但未执行，主管理员未变：{why}",
    "transfer_rejected": "主管理员转让 {id} 被拒绝，未做任何更改。",
    "transfer_expired": "主管理员转让 {id} 已过期，未做任何更改。",
    "transfer_cancelled": "主管理员转让 {id} 已取消，未做任何更改。",
    "transfer_failed": "主管理员转让 {id} 执行失败，已回滚，主管理员未变。请查看日志后重新发起。",
    "transfer_applied": "主管理员转让 {id} 已完成：{name} 现在是主管理员。交接清单已私聊发给 TA。",
    "transfer_duties_title": "主管理员职责",
    "transfer_duties": (
        "{name}，你现在是主管理员（{id}）。请完成：\n\n"
        "1. 在钉钉管理后台完成主管理员转让（原主管理员会收到操作步骤）\n"
        "2. 发送 `管理员` 核对管理员名单，移除不再需要的管理员\n"
        "3. 轮换应用密钥（AppSecret）和其他共享凭据\n"
        "4. 检查敏感权限的授予情况\n\n{review} 天后我会提醒你做一次权限复核。"
    ),
    "console_title": "完成钉钉主管理员转让 {id}",
    "console_steps": (
        "请在钉钉管理后台完成：管理后台 → 设置 → 主管理员 → 转让，选择 {target}，"
        "双方完成身份验证。完成后点击「完成」，我会核实。"
    ),
    "console_checking": "好的，我这就去钉钉核实。",
    "verify_ok": "钉钉已显示 {name} 为主管理员，转让 {id} 全部完成。",
    "verify_pending": "钉钉仍未显示 {name} 为主管理员（{id}）。请在管理后台完成转让。",
    "transfer_review_due": "主管理员转让 {id} 已满复核期：请核对管理员名单、轮换凭据、检查敏感权限。",
}


EN: Mapping[str, str] = {
    "transfer_directory_unavailable": (
        "I can't check the person against DingTalk's directory right now; nothing was "
        "changed. Please try again later."
    ),
    "transfer_no_owner": (
        "Baton does not know the owner yet, so nothing can be transferred. An operator "
        "can run `baton init --owner <userId>`."
    ),
    "transfer_no_authority": (
        "Only the owner, or an admin holding owner.transfer, can start an owner transfer."
    ),
    "transfer_target_unknown": (
        "DingTalk's directory has no member {who}; the owner role can only go to a "
        "member of this company."
    ),
    "transfer_target_inactive": (
        "{who} has not activated a DingTalk account (or it is disabled) and cannot "
        "become the owner."
    ),
    "transfer_target_is_owner": "{who} is already the owner.",
    "transfer_target_not_eligible": (
        "By this company's policy only a current admin can become the owner, and "
        "{who} is not one. Add them as an admin first, or ask an operator to set "
        "policy.owner_candidates to members."
    ),
    "transfer_transfer_open": "An owner transfer is already open ({id}); finish or cancel it first.",
    "transfer_created": "Request {id} created; waiting for {who} to decide on the card.",
    "transfer_not_applied": (
        "Owner transfer {id} was agreed but not applied, and the owner is unchanged: {why}"
    ),
    "transfer_rejected": "Owner transfer {id} was rejected; nothing changed.",
    "transfer_expired": "Owner transfer {id} expired; nothing changed.",
    "transfer_cancelled": "Owner transfer {id} was cancelled; nothing changed.",
    "transfer_failed": (
        "Owner transfer {id} failed while applying and was rolled back; the owner is "
        "unchanged. Check the logs, then start it again."
    ),
    "transfer_applied": (
        "Owner transfer {id} is done: {name} is now the owner. Their checklist was "
        "sent to them one-to-one."
    ),
    "transfer_duties_title": "Owner duties",
    "transfer_duties": (
        "{name}, you are now the owner ({id}). Please:\n\n"
        "1. Finish the main-administrator transfer in DingTalk's admin console (the "
        "previous owner gets the steps)\n"
        "2. Send `admins` and remove admins who no longer need the role\n"
        "3. Rotate the app secret (AppSecret) and other shared credentials\n"
        "4. Review who holds sensitive permissions\n\n"
        "I will remind you to review access in {review} days."
    ),
    "console_title": "Finish the DingTalk transfer {id}",
    "console_steps": (
        "In DingTalk's admin console: Settings → Main administrator → Transfer, pick "
        "{target}; both of you verify your identity. Then press “Done” and I will check."
    ),
    "console_checking": "Thanks, checking with DingTalk now.",
    "verify_ok": "DingTalk now shows {name} as the main administrator; transfer {id} is complete.",
    "verify_pending": (
        "DingTalk does not show {name} as the main administrator yet ({id}). Please "
        "finish the transfer in the admin console."
    ),
    "transfer_review_due": (
        "It's time to review after owner transfer {id}: check the admin list, rotate "
        "credentials, and review sensitive permissions."
    ),
}
