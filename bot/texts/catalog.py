"""Every user-visible string outside the command grammar, per language.

(The grammar's own usage lines and parse errors live in ``bot/core/commands/usage.py``.)
"""

from __future__ import annotations

from typing import Any, Literal

from bot.core.escape import Md, param

Lang = Literal["zh", "en"]

MESSAGES: dict[str, dict[Lang, str]] = {
    "not_available": {
        "zh": "「{command}」还未开放，敬请期待。发送 `帮助` 查看现在可用的命令。",
        "en": "“{command}” is not available yet. Send `help` to see what works today.",
    },
    "internal_error": {
        "zh": "抱歉，处理时出了内部错误，未做任何更改。请稍后重试；"
              "如需排查，请把事件编号 {event_id} 告诉管理员。",
        "en": "Sorry, something went wrong inside Baton and nothing was changed. Please try "
              "again later; if it persists, give your operator the event id {event_id}.",
    },
    "cli_store_empty": {
        "zh": "数据库中还没有任何成员或审计记录，无事可做。",
        "en": "the database holds no members or audit entries yet: nothing to do.",
    },
    "cli_only_corp": {
        "zh": "未配置 org.corp_id；使用数据库中唯一的企业 {corp}。",
        "en": "org.corp_id is not configured; using {corp}, the only corp in the database.",
    },
    "cli_unknown_corp": {
        "zh": "数据库中没有企业 {corp}（org.corp_id）的数据，未做任何事。数据库中的企业：{corps}。"
              "请在配置文件中设置 org.corp_id，或设置环境变量 BATON_ORG__CORP_ID。",
        "en": "the database holds nothing of corp {corp} (org.corp_id); nothing done. Corps "
              "in the database: {corps}. Set org.corp_id in the config file, or "
              "BATON_ORG__CORP_ID in the environment.",
    },
    "mention_unresolved": {
        "zh": "无法识别你 @ 的第 {n} 个人：他/她不是本企业的成员。Baton 只能处理本企业成员。",
        "en": "I can't tell who your mention number {n} refers to: that person is not a member of "
              "this company. Baton works only with the company's members.",
    },
    "admin_conversation_only": {
        "zh": "管理命令只能在指定的管理群或与我的单聊中使用。",
        "en": "Admin commands are accepted only in the designated admin groups or in a "
              "one-to-one chat with me.",
    },
    "whoami_title": {"zh": "我的权限", "en": "My permissions"},
    "whoami_level": {"zh": "**{name}**（{user_id}）：{level}", "en": "**{name}** ({user_id}): {level}"},
    "level_owner": {"zh": "主管理员", "en": "owner (main administrator)"},
    "level_admin": {"zh": "子管理员", "en": "admin"},
    "level_member": {"zh": "成员", "en": "member"},
    "whoami_role": {"zh": "业务角色：{role}", "en": "Business role: {role}"},
    "whoami_no_role": {"zh": "业务角色：无", "en": "Business role: none"},
    "whoami_perms": {"zh": "权限：", "en": "Permissions:"},
    "whoami_no_perms": {"zh": "暂无业务权限。", "en": "No business permissions."},
    "whoami_perm_line": {
        "zh": "- {perm}（来源：{source}{expiry}）", "en": "- {perm} (from {source}{expiry})",
    },
    "source_role": {"zh": "角色 {name}", "en": "role {name}"},
    "source_grant": {"zh": "授权", "en": "a grant"},
    "source_template": {"zh": "模板 {name}", "en": "template {name}"},
    "source_admin": {"zh": "管理员身份", "en": "admin status"},
    "expires": {"zh": "，{at} 到期", "en": ", expires {at}"},
    "admins_title": {"zh": "管理员", "en": "Administrators"},
    "admins_owner": {"zh": "主管理员：{who}", "en": "Owner: {who}"},
    "admins_none_owner": {
        "zh": "主管理员：尚未设置（运维可运行 `baton init --owner <userId>`）",
        "en": "Owner: not set yet (an operator can run `baton init --owner <userId>`)",
    },
    "admins_admins": {"zh": "子管理员：{who}", "en": "Admins: {who}"},
    "admins_no_admins": {"zh": "子管理员：无", "en": "Admins: none"},
    "list_sep": {"zh": "、", "en": ", "},
    # ---- requests and cards -------------------------------------------------------------
    "kind_owner_transfer": {"zh": "主管理员转让", "en": "Owner transfer"},
    "card_title_owner_transfer": {"zh": "主管理员转让 {id}", "en": "Owner transfer {id}"},
    "card_body_owner_transfer": {
        "zh": "{requester} 申请将主管理员转让给 **{target}**。需要现任主管理员同意，并由 {target} 接受。",
        "en": "{requester} asks to transfer the main administrator role to **{target}**. "
              "The current owner must approve and {target} must accept.",
    },
    "card_reason": {"zh": "理由：{reason}", "en": "Reason: {reason}"},
    "card_progress": {"zh": "{have}/{need} 已同意：{who}", "en": "{have}/{need} agreed: {who}"},
    "card_progress_none": {"zh": "{have}/{need} 已同意", "en": "{have}/{need} agreed"},
    "card_waiting": {"zh": "等待：{who}", "en": "Waiting for: {who}"},
    "card_decided": {"zh": "已由 {who} 于 {at} 处理", "en": "decided by {who} at {at}"},
    "card_expires": {"zh": "{at} 前有效", "en": "open until {at}"},
    "state_pending": {"zh": "待审批", "en": "Pending"},
    "state_approved": {"zh": "已同意", "en": "Approved"},
    "state_applied": {"zh": "已生效", "en": "Applied"},
    "state_rejected": {"zh": "已拒绝", "en": "Rejected"},
    "state_expired": {"zh": "已过期", "en": "Expired"},
    "state_cancelled": {"zh": "已取消", "en": "Cancelled"},
    "state_failed": {"zh": "执行失败", "en": "Failed"},
    "action_approve": {"zh": "同意", "en": "approved"},
    "action_reject": {"zh": "拒绝", "en": "rejected"},
    "action_accept": {"zh": "接受", "en": "accepted"},
    "action_decline": {"zh": "谢绝", "en": "declined"},
    "click_ok_approve": {"zh": "已记录：你同意了。", "en": "Recorded: you approved."},
    "click_ok_reject": {"zh": "已记录：你拒绝了。", "en": "Recorded: you rejected."},
    "click_ok_accept": {"zh": "已记录：你接受了。", "en": "Recorded: you accepted."},
    "click_ok_decline": {"zh": "已记录：你谢绝了。", "en": "Recorded: you declined."},
    "click_unknown_card": {
        "zh": "这张卡片已不再有效，操作未生效。", "en": "This card is no longer active; nothing was changed.",
    },
    "refuse_decided_by": {
        "zh": "此申请已由 {who} 于 {at} 处理（{state}），你的操作未生效。",
        "en": "This request was already decided by {who} at {at} ({state}); nothing was changed.",
    },
    "refuse_decided_at": {
        "zh": "此申请已于 {at} 结束（{state}），你的操作未生效。",
        "en": "This request closed at {at} ({state}); nothing was changed.",
    },
    "refuse_decided": {
        "zh": "此申请已结束（{state}），你的操作未生效。",
        "en": "This request is already closed ({state}); nothing was changed.",
    },
    "refuse_not_a_decider": {
        "zh": "只有 {who} 本人可以做此操作，你的点击未生效。",
        "en": "Only {who} can do this; your click changed nothing.",
    },
    "refuse_not_your_button": {
        "zh": "这个按钮不是给你的，你的按钮是「{yes}」或「{no}」。你的点击未生效。",
        "en": "That button is not yours to press: yours are “{yes}” and “{no}”. Your click "
              "changed nothing.",
    },
    "button_approve": {"zh": "同意", "en": "Approve"},
    "button_reject": {"zh": "拒绝", "en": "Reject"},
    "button_accept": {"zh": "接受", "en": "Accept"},
    "button_decline": {"zh": "谢绝", "en": "Decline"},
    "refuse_own_request": {
        "zh": "不能审批自己发起的申请，你的点击未生效。",
        "en": "You cannot approve your own request; your click changed nothing.",
    },
    "refuse_already_voted": {
        "zh": "你已经{action}过了，每人只能表态一次。",
        "en": "You have already {action}; each person decides only once.",
    },
    "refuse_already_implied": {
        "zh": "申请由你发起，你的同意已自动计入。",
        "en": "You started this request, so your approval is already counted.",
    },
    "refuse_expired": {"zh": "此申请已过期，操作未生效。", "en": "This request has expired; nothing was changed."},
    "refuse_unknown_action": {"zh": "未知的按钮「{action}」。", "en": "Unknown button “{action}”."},
    "refuse_wrong_button": {"zh": "这个申请没有「{action}」按钮。", "en": "This request has no “{action}” button."},
    "refuse_not_now": {"zh": "此申请正在处理中（{state}）。", "en": "This request is being processed ({state})."},
    "refuse_not_expired": {"zh": "尚未过期。", "en": "Not expired yet."},
    "remind_title": {"zh": "待审批提醒", "en": "Waiting for your decision"},
    "remind_deciders": {
        "zh": "提醒：申请 {id} 仍在等待 {who} 处理，{expires} 前有效。",
        "en": "Reminder: request {id} is still waiting for {who}; it is open until {expires}.",
    },
    "pending_none": {"zh": "没有需要你处理或你发起的待审批申请。", "en": "There are no open requests for you to decide, and none that you made."},
    "pending_title": {"zh": "待审批", "en": "Open requests"},
    "pending_line": {
        "zh": "- {id} {kind}：{requester} → {target}，{expires} 前有效（{role}）",
        "en": "- {id} {kind}: {requester} → {target}, open until {expires} ({role})",
    },
    "pending_yours_to_decide": {"zh": "待你处理", "en": "yours to decide"},
    "pending_you_asked": {"zh": "你发起的", "en": "you asked"},
    "cancel_unknown": {
        "zh": "找不到申请 {id}。发送 `待审批` 查看你的申请。",
        "en": "There is no request {id}. Send `pending` to see yours.",
    },
    "cancel_not_allowed": {
        "zh": "只有申请人或主管理员可以取消 {id}。",
        "en": "Only the requester or the owner can cancel {id}.",
    },
    "cancel_not_open": {"zh": "{id} 已结束（{state}），无法取消。", "en": "{id} is already closed ({state}); nothing to cancel."},
    "cancel_done": {"zh": "已取消 {id}。", "en": "{id} is cancelled."},
    # ---- owner transfer -----------------------------------------------------------------
    "transfer_directory_unavailable": {
        "zh": "暂时无法向钉钉通讯录核实对方身份，未做任何更改，请稍后重试。",
        "en": "I can't check the person against DingTalk's directory right now; nothing was "
              "changed. Please try again later.",
    },
    "transfer_no_owner": {
        "zh": "Baton 还不知道谁是主管理员，无法转让。请运维执行 `baton init --owner <userId>`。",
        "en": "Baton does not know the owner yet, so nothing can be transferred. An operator "
              "can run `baton init --owner <userId>`.",
    },
    "transfer_no_authority": {
        "zh": "只有主管理员，或拥有 owner.transfer 权限的管理员，才能发起主管理员转让。",
        "en": "Only the owner, or an admin holding owner.transfer, can start an owner transfer.",
    },
    "transfer_target_unknown": {
        "zh": "钉钉通讯录里没有 {who} 这个成员，只能转让给本企业成员。",
        "en": "DingTalk's directory has no member {who}; the owner role can only go to a "
              "member of this company.",
    },
    "transfer_target_inactive": {
        "zh": "{who} 尚未激活钉钉账号（或已停用），不能成为主管理员。",
        "en": "{who} has not activated a DingTalk account (or it is disabled) and cannot "
              "become the owner.",
    },
    "transfer_target_is_owner": {"zh": "{who} 已经是主管理员了。", "en": "{who} is already the owner."},
    "transfer_target_not_eligible": {
        "zh": "按本企业的策略，只有现任子管理员可以成为主管理员；{who} 不是管理员。"
              "可先 `添加管理员`，或让运维将 policy.owner_candidates 设为 members。",
        "en": "By this company's policy only a current admin can become the owner, and "
              "{who} is not one. Add them as an admin first, or ask an operator to set "
              "policy.owner_candidates to members.",
    },
    "transfer_transfer_open": {
        "zh": "已经有一个进行中的主管理员转让 {id}，请先完成或取消它。",
        "en": "An owner transfer is already open ({id}); finish or cancel it first.",
    },
    "transfer_created": {
        "zh": "已创建申请 {id}，等待 {who} 在卡片上确认。",
        "en": "Request {id} created; waiting for {who} to decide on the card.",
    },
    "transfer_not_applied": {
        "zh": "主管理员转让 {id} 已获同意，但未执行，主管理员未变：{why}",
        "en": "Owner transfer {id} was agreed but not applied, and the owner is unchanged: {why}",
    },
    "transfer_rejected": {"zh": "主管理员转让 {id} 被拒绝，未做任何更改。", "en": "Owner transfer {id} was rejected; nothing changed."},
    "transfer_expired": {"zh": "主管理员转让 {id} 已过期，未做任何更改。", "en": "Owner transfer {id} expired; nothing changed."},
    "transfer_cancelled": {"zh": "主管理员转让 {id} 已取消，未做任何更改。", "en": "Owner transfer {id} was cancelled; nothing changed."},
    "transfer_failed": {
        "zh": "主管理员转让 {id} 执行失败，已回滚，主管理员未变。请查看日志后重新发起。",
        "en": "Owner transfer {id} failed while applying and was rolled back; the owner is "
              "unchanged. Check the logs, then start it again.",
    },
    "transfer_applied": {
        "zh": "主管理员转让 {id} 已完成：{name} 现在是主管理员。交接清单已私聊发给 TA。",
        "en": "Owner transfer {id} is done: {name} is now the owner. Their checklist was "
              "sent to them one-to-one.",
    },
    "transfer_duties_title": {"zh": "主管理员职责", "en": "Owner duties"},
    "transfer_duties": {
        "zh": "{name}，你现在是主管理员（{id}）。请完成：\n\n"
              "1. 在钉钉管理后台完成主管理员转让（原主管理员会收到操作步骤）\n"
              "2. 发送 `管理员` 核对管理员名单，移除不再需要的管理员\n"
              "3. 轮换应用密钥（AppSecret）和其他共享凭据\n"
              "4. 检查敏感权限的授予情况\n\n{review} 天后我会提醒你做一次权限复核。",
        "en": "{name}, you are now the owner ({id}). Please:\n\n"
              "1. Finish the main-administrator transfer in DingTalk's admin console (the "
              "previous owner gets the steps)\n"
              "2. Send `admins` and remove admins who no longer need the role\n"
              "3. Rotate the app secret (AppSecret) and other shared credentials\n"
              "4. Review who holds sensitive permissions\n\n"
              "I will remind you to review access in {review} days.",
    },
    "console_title": {"zh": "完成钉钉主管理员转让 {id}", "en": "Finish the DingTalk transfer {id}"},
    "console_steps": {
        "zh": "请在钉钉管理后台完成：管理后台 → 设置 → 主管理员 → 转让，选择 {target}，"
              "双方完成身份验证。完成后点击「完成」，我会核实。",
        "en": "In DingTalk's admin console: Settings → Main administrator → Transfer, pick "
              "{target}; both of you verify your identity. Then press “Done” and I will check.",
    },
    "console_checking": {"zh": "好的，我这就去钉钉核实。", "en": "Thanks, checking with DingTalk now."},
    "verify_ok": {"zh": "钉钉已显示 {name} 为主管理员，转让 {id} 全部完成。", "en": "DingTalk now shows {name} as the main administrator; transfer {id} is complete."},
    "verify_pending": {
        "zh": "钉钉仍未显示 {name} 为主管理员（{id}）。请在管理后台完成转让。",
        "en": "DingTalk does not show {name} as the main administrator yet ({id}). Please "
              "finish the transfer in the admin console.",
    },
    "transfer_review_due": {
        "zh": "主管理员转让 {id} 已满复核期：请核对管理员名单、轮换凭据、检查敏感权限。",
        "en": "It's time to review after owner transfer {id}: check the admin list, rotate "
              "credentials, and review sensitive permissions.",
    },
}

# ---- business permissions (handlers/permissions.py, handlers/templates.py) ----------------
MESSAGES.update({
    "need_admin": {
        "zh": "「{command}」只有主管理员或子管理员可以使用（你目前是：{level}）。如需权限，请联系管理员。",
        "en": "Only the owner or an admin may use “{command}” (you are: {level}). Ask an admin "
              "if you need it.",
    },
    "need_owner": {
        "zh": "「{command}」只有主管理员可以使用（你目前是：{level}）。",
        "en": "Only the owner (main administrator) may use “{command}” (you are: {level}).",
    },
    "unknown_name": {
        "zh": "权限目录中没有「{name}」。{hint}",
        "en": "There is no “{name}” in the permission catalog. {hint}",
    },
    "unknown_role": {
        "zh": "没有名为「{name}」的角色。{hint}",
        "en": "There is no role called “{name}”. {hint}",
    },
    "role_is_permission": {
        "zh": "「{name}」是一项权限，不是角色。授予单项权限请用：`授权 @用户 {name}`。",
        "en": "“{name}” is a permission, not a role. To give it, write: `grant @user {name}`.",
    },
    "did_you_mean": {"zh": "你是不是想写：{names}？", "en": "Did you mean {names}?"},
    "see_catalog": {
        "zh": "可用的角色和权限见配置的 catalog，或发送 `帮助 授权`。",
        "en": "The roles and permissions are listed in the configured catalog; send "
              "`help grant` for the syntax.",
    },
    "builtin_role": {
        "zh": "「{name}」是内置身份，不能这样授予：主管理员请用 `转让主管理员`，子管理员请用 `添加管理员`。",
        "en": "“{name}” is built in and cannot be given this way: use `transfer-owner` for the "
              "owner and `admin add` for admins.",
    },
    "source_grant_role": {"zh": "授权（角色 {name}）", "en": "a grant (role {name})"},
    "directory_unavailable": {
        "zh": "暂时无法查询钉钉通讯录，未做任何更改。请稍后重试。",
        "en": "DingTalk's directory cannot be reached right now; nothing was changed. "
              "Please try again later.",
    },
    "user_unknown": {
        "zh": "钉钉通讯录中找不到成员 {user}，未做任何更改。请 @ 本企业的成员。",
        "en": "DingTalk's directory has no member {user}; nothing was changed. Mention a "
              "member of this company.",
    },
    "user_inactive": {
        "zh": "{user} 在钉钉通讯录中是未激活状态（尚未激活或已离职），不能接收权限，未做任何更改。",
        "en": "{user} is inactive in DingTalk's directory (not activated yet, or has left), "
              "so cannot receive permissions; nothing was changed.",
    },
    "not_enough_approvers": {
        "zh": "这项更改需要 {need} 位审批人（主管理员或其他子管理员，不含申请人本人和被变更的人），"
              "目前只有 {have} 位，无法发起。请先添加管理员，或调整 policy.approvals_required。",
        "en": "This change needs {need} approvers (the owner or other admins, never the "
              "requester or the person it is about), but only {have} can approve. Add an admin "
              "first, or change policy.approvals_required.",
    },
    "request_already_open": {
        "zh": "同样的申请 **{id}** 已在等待审批，无需重新发起；可发送 `待审批` 查看。",
        "en": "The same request **{id}** is already waiting for approval; no need to ask again. "
              "Send `pending` to see it.",
    },
    "request_created": {
        "zh": "已发起审批 **{id}**：{what}\n\n需要 {need} 位主管理员或其他子管理员在卡片上同意后生效。",
        "en": "Request **{id}** is open: {what}\n\nIt takes effect once {need} of the owner "
              "and the other admins approve it on the card.",
    },
    "request_applied": {"zh": "**{id}** 已生效：{what}", "en": "**{id}** is done: {what}"},
    "request_rejected": {"zh": "**{id}** 被驳回，未做更改：{what}",
                         "en": "**{id}** was rejected; nothing changed: {what}"},
    "request_expired": {"zh": "**{id}** 无人审批已过期，未做更改：{what}",
                        "en": "**{id}** expired undecided; nothing changed: {what}"},
    "request_cancelled": {"zh": "**{id}** 已取消，未做更改：{what}",
                          "en": "**{id}** was cancelled; nothing changed: {what}"},
    "request_failed": {
        "zh": "**{id}** 已获批准，但执行失败，未做任何更改（{error}）：{what}。请检查后重新发起。",
        "en": "**{id}** was approved but could not be applied, so nothing changed ({error}): "
              "{what}. Check and ask again.",
    },
    "until": {"zh": "至 {at}", "en": "until {at}"},
    "permanently": {"zh": "长期有效", "en": "with no end date"},
    "for_duration": {"zh": "为期 {d}", "en": "for {d}"},
    "grant_done": {"zh": "已授予 {who}：{name}，{until}。", "en": "Granted {name} to {who}, {until}."},
    "grant_unchanged": {
        "zh": "{who} 已经拥有 {name}（{until}），未做更改。",
        "en": "{who} already holds {name} ({until}); nothing changed.",
    },
    "describe_grant": {"zh": "授予 {who}：{name}，{duration}", "en": "grant {name} to {who}, {duration}"},
    "revoke_done": {"zh": "已撤销 {who} 的 {name}。", "en": "Revoked {name} from {who}."},
    "revoke_still_held": {
        "zh": "注意：该成员仍通过其他来源拥有相关权限：{sources}。",
        "en": "Note: the member still holds it through: {sources}.",
    },
    "revoke_not_direct": {
        "zh": "{who} 的 {name} 不是直接授权，而是来自：{sources}，撤销对它无效，未做任何更改。{advice}",
        "en": "{who} holds {name} not through a grant but through: {sources}, so revoke cannot "
              "remove it; nothing was changed.{advice}",
    },
    "revoke_via_role": {
        "zh": "它来自 {user} 的业务角色 {role}。要去掉它，请更换角色：`设置角色 {user} <角色>`，"
              "或清除角色：`清除角色 {user}`。",
        "en": "It comes with the business role {role}. To take it away, give {user} another role "
              "(`role set {user} <role>`) or clear the role (`role clear {user}`).",
    },
    "revoke_via_role_grant": {
        "zh": "它来自授予的角色 {role}：`撤销 {user} {role}` 会撤销该角色的授权。",
        "en": "It comes with the granted role {role}: `revoke {user} {role}` removes that grant.",
    },
    "revoke_via_template": {
        "zh": "它来自模板 {template}：可修改该模板（`模板 修改 {template} <权限>,...`），"
              "这会影响模板的所有使用者。",
        "en": "It comes with the template {template}: change the template (`template set "
              "{template} <perm>,...`), which changes it for every holder.",
    },
    "revoke_not_held": {
        "zh": "{who} 没有 {name} 的授权，无需撤销。",
        "en": "{who} holds no grant of {name}; there is nothing to revoke.",
    },
    "grant_expired_holder": {
        "zh": "你的临时权限 {name} 已到期，已自动收回。如仍需要，请向管理员重新申请。",
        "en": "Your time-bound permission {name} has expired and was removed. Ask an admin "
              "if you still need it.",
    },
    "grant_expired_granter": {
        "zh": "你授予 {who} 的临时权限 {name} 已到期，已自动收回。",
        "en": "The time-bound {name} you granted to {who} has expired and was removed.",
    },
    "role_done": {"zh": "已将 {who} 的业务角色设为 {role}（原为：{before}）。",
                  "en": "{who}'s business role is now {role} (was: {before})."},
    "role_unchanged": {"zh": "{who} 的业务角色已经是 {role}，未做更改。",
                       "en": "{who}'s business role is already {role}; nothing changed."},
    "role_cleared": {"zh": "已清除 {who} 的业务角色（原为：{before}）。",
                     "en": "{who} no longer has a business role (was: {before})."},
    "role_clear_none": {"zh": "{who} 没有业务角色，无需清除。",
                        "en": "{who} has no business role; there is nothing to clear."},
    "roles_short": {"zh": "角色列表", "en": "Roles"},
    "roles_title": {"zh": "角色（{n} 个）", "en": "Roles ({n})"},
    "roles_line": {"zh": "- **{name}**：{perms}", "en": "- **{name}**: {perms}"},
    "roles_line_sensitive": {"zh": "- **{name}**（含敏感权限）：{perms}",
                             "en": "- **{name}** (has sensitive permissions): {perms}"},
    "roles_none": {
        "zh": "权限目录中还没有角色。运维可在配置的 catalog.roles 中定义角色。",
        "en": "The catalog has no roles yet. An operator can define them under catalog.roles "
              "in the config.",
    },
    "none": {"zh": "无", "en": "none"},
    "describe_role_set": {"zh": "将 {who} 的业务角色设为 {role}", "en": "set {who}'s role to {role}"},
    "admin_already": {"zh": "{who} 已经是{level}，无需添加。",
                      "en": "{who} is already an administrator ({level}); nothing to add."},
    "admin_added": {"zh": "已将 {who} 添加为子管理员。", "en": "{who} is now an admin."},
    "admin_not_admin": {"zh": "{who} 不是子管理员，无需移除。",
                        "en": "{who} is not an admin; nothing to remove."},
    "admin_remove_owner": {
        "zh": "不能移除主管理员。如需更换主管理员，请使用 `转让主管理员 @新主管理员`。",
        "en": "The owner cannot be removed. To hand the role over, use `transfer-owner @user`.",
    },
    "admin_removed": {"zh": "已移除 {who} 的子管理员身份。", "en": "{who} is no longer an admin."},
    "describe_admin_add": {"zh": "将 {who} 添加为子管理员", "en": "make {who} an admin"},
    "describe_admin_remove": {"zh": "移除 {who} 的子管理员身份", "en": "remove {who} from the admins"},
    "role_label": {"zh": "角色 {name}", "en": "role {name}"},
    "who_has_short": {"zh": "谁有", "en": "Who has"},
    "who_has_title": {"zh": "拥有 {name} 的成员（{n} 人）", "en": "Members holding {name} ({n})"},
    "who_has_none": {"zh": "目前没有成员拥有 {name}。", "en": "Nobody holds {name} at the moment."},
    "and_more": {"zh": "……另有 {n} 人", "en": "…and {n} more"},
    "template_unknown": {"zh": "没有名为「{name}」的模板。{hint}",
                         "en": "There is no template called “{name}”. {hint}"},
    "see_template_list": {"zh": "发送 `模板 列表` 查看现有模板。",
                          "en": "Send `template list` to see the templates."},
    "template_exists": {
        "zh": "模板「{name}」已存在。修改请用 `模板 修改 {name} <权限>,...`。",
        "en": "A template called “{name}” already exists. To change it, write "
              "`template set {name} <perm>,...`.",
    },
    "template_created": {"zh": "已创建模板「{name}」：{items}",
                         "en": "Template “{name}” created: {items}"},
    "template_short": {"zh": "权限模板", "en": "Templates"},
    "template_title": {"zh": "模板「{name}」", "en": "Template “{name}”"},
    "template_items": {"zh": "包含：{items}", "en": "Contains: {items}"},
    "template_holders": {"zh": "使用人数：{n}", "en": "Holders: {n}"},
    "template_none": {
        "zh": "还没有权限模板。创建：`模板 创建 <名称> <权限>,<权限>`。",
        "en": "There are no templates yet. Create one: `template create <name> <perm>,<perm>`.",
    },
    "template_list_title": {"zh": "权限模板（{n} 个）", "en": "Templates ({n})"},
    "template_list_line": {"zh": "- **{name}**（{n} 人）：{items}",
                           "en": "- **{name}** ({n} holder(s)): {items}"},
    "template_unchanged": {"zh": "模板「{name}」的内容没有变化，未做更改。",
                           "en": "Template “{name}” already has exactly these; nothing changed."},
    "template_deleted": {"zh": "已删除模板「{name}」（无人使用）。",
                         "en": "Template “{name}” deleted (nobody held it)."},
    "template_apply_nothing": {
        "zh": "这些成员都已在使用模板「{name}」，未做更改。",
        "en": "Everyone named already holds template “{name}”; nothing changed.",
    },
    "template_applied": {
        "zh": "已将模板「{name}」应用到 {n} 人（{skipped} 人原本已有）。",
        "en": "Template “{name}” applied to {n} member(s) ({skipped} already had it).",
    },
    "dept_unknown": {
        "zh": "钉钉通讯录中找不到部门「{name}」。请写部门的完整名称或部门 ID，例如 `dept:销售部`。",
        "en": "DingTalk's directory has no department “{name}”. Write its full name or its "
              "id, e.g. `dept:Sales`.",
    },
    "impact_none": {"zh": "{n} 位使用者的实际权限不会变化。",
                    "en": "The effective permissions of its {n} holders do not change."},
    "impact_none_done": {"zh": "{n} 位使用者的实际权限没有变化。",
                         "en": "The effective permissions of its {n} holders did not change."},
    "impact_gain": {"zh": "{n} 人将新增 {perm}", "en": "{n} will gain {perm}"},
    "impact_loss": {"zh": "{n} 人将失去 {perm}", "en": "{n} will lose {perm}"},
    "impact_gained": {"zh": "{n} 人新增了 {perm}", "en": "{n} gained {perm}"},
    "impact_lost": {"zh": "{n} 人失去了 {perm}", "en": "{n} lost {perm}"},
    "impact_who": {"zh": "{line}：{who}", "en": "{line}: {who}"},
    "describe_template_set": {
        "zh": "修改模板「{name}」：{old} → {new}\n\n{impact}",
        "en": "change template “{name}”: {old} → {new}\n\n{impact}",
    },
    "describe_template_delete": {"zh": "删除模板「{name}」\n\n{impact}",
                                 "en": "delete template “{name}”\n\n{impact}"},
    "subject_template": {"zh": "模板「{name}」", "en": "template “{name}”"},
    "subject_template_apply": {"zh": "模板「{name}」（{n} 人）",
                               "en": "template “{name}” ({n} members)"},
    "describe_template_apply": {
        "zh": "将模板「{name}」（含敏感权限）应用到 {n} 人：{who}",
        "en": "apply template “{name}” (it has sensitive permissions) to {n}: {who}",
    },
})
MESSAGES.update({
    "alert_title": {"zh": "Baton 安全提醒", "en": "Baton security alert"},
    "alert_outbox_failed": {
        "zh": "一条发往 {to} 的{kind}在 {attempts} 次尝试后仍未送达，已放弃（最后错误：{error}）。"
              "可在数据库 outbox 表 id={id} 查看。",
        "en": "a {kind} to {to} was given up after {attempts} attempts (last error: {error}); "
              "see outbox row id={id}.",
    },
    "outbox_kind_reply": {"zh": "消息", "en": "message"},
    "outbox_kind_card": {"zh": "卡片", "en": "card"},
    "outbox_kind_export": {"zh": "导出文件", "en": "export file"},
    "db_unavailable_click": {
        "zh": "抱歉，数据库暂时不可用，你刚才在卡片上的点击没有生效。请稍后再点一次；"
              "如需排查，请把事件编号 {event_id} 告诉管理员。",
        "en": "Sorry, the database is unavailable right now, so your click on the card was "
              "not applied. Please click again in a moment; for support, quote event id "
              "{event_id}.",
    },
    "db_unavailable": {
        "zh": "抱歉，数据库暂时不可用，这条命令没有执行，也没有做任何更改。请稍后重新发送同一条命令；"
              "如需排查，请把事件编号 {event_id} 告诉管理员。",
        "en": "Sorry, the database is unavailable right now, so this command was not applied "
              "and nothing was changed. Please send the same command again in a moment; for "
              "support, quote event id {event_id}.",
    },
    "alert_click": {"zh": "在 {id} 的卡片上点击了 {action}", "en": "pressed {action} on {id}'s card"},
    "alert_line": {"zh": "- {at} {who}：{what}（{why}）", "en": "- {at} {who}: {what} ({why})"},
    "alert_header": {"zh": "### Baton 安全提醒（{n} 条）", "en": "### Baton security alerts ({n})"},
    "alert_more": {"zh": "……另有 {n} 条，详见 `审计`。", "en": "…and {n} more; see `audit`."},
    "rate_limited": {
        "zh": "你发送命令太频繁了，请 {seconds} 秒后再试。这段时间里多发的命令不会执行。",
        "en": "You are sending commands too fast; please wait {seconds} s. The extra commands "
              "sent meanwhile were not run.",
    },
    "rate_limited_conversation": {
        "zh": "这个会话里的命令太多了，请 {seconds} 秒后再试。这段时间里多发的命令不会执行。",
        "en": "This conversation is sending too many commands; please wait {seconds} s. The "
              "extra commands were not run.",
    },
})
for _kind, _zh, _en in (
    ("grant", "敏感权限授予", "Sensitive grant"),
    ("role_set", "敏感角色设置", "Sensitive role change"),
    ("admin_add", "添加子管理员", "Add an admin"),
    ("admin_remove", "移除子管理员", "Remove an admin"),
    ("template_set", "修改权限模板", "Template change"),
    ("template_delete", "删除权限模板", "Template deletion"),
    ("template_apply", "应用权限模板", "Template assignment"),
):
    MESSAGES[f"kind_{_kind}"] = {"zh": _zh, "en": _en}
    MESSAGES[f"card_title_{_kind}"] = {"zh": f"{_zh} {{id}}", "en": f"{_en} {{id}}"}
    MESSAGES[f"card_body_{_kind}"] = {
        "zh": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
        "en": "{requester} asks for this change; the owner or another admin must approve:",
    }


def t(key: str, lang: Lang, **params: Any) -> Md:
    """The message ``key`` in ``lang``. Every parameter is escaped (``bot.core.escape.literal``)
    unless it is ``Md`` (already-rendered markdown: another ``t()``, ``literal()``,
    ``person()``, ``joined()``) or a number."""
    text = MESSAGES[key][lang]
    return Md(text.format(**{k: param(v) for k, v in params.items()}) if params else text)
