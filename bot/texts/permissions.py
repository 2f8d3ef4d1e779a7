"""Business permissions, roles, admins and templates (handlers/permissions.py,
handlers/templates.py), and their request kinds.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "need_admin": (
        "「{command}」只有主管理员或子管理员可以使用（你目前是：{level}）。如需权限，请联系管理员。"
    ),
    "need_owner": "「{command}」只有主管理员可以使用（你目前是：{level}）。",
    "unknown_name": "权限目录中没有「{name}」。{hint}",
    "unknown_role": "没有名为「{name}」的角色。{hint}",
    "role_is_permission": "「{name}」是一项权限，不是角色。授予单项权限请用：`授权 @用户 {name}`。",
    "did_you_mean": "你是不是想写：{names}？",
    "see_catalog": "可用的角色和权限见配置的 catalog，或发送 `帮助 授权`。",
    "builtin_role": (
        "「{name}」是内置身份，不能这样授予：主管理员请用 `转让主管理员`，子管理员请用 `添加管理员`。"
    ),
    "source_grant_role": "授权（角色 {name}）",
    "directory_unavailable": "暂时无法查询钉钉通讯录，未做任何更改。请稍后重试。",
    "user_unknown": "钉钉通讯录中找不到成员 {user}，未做任何更改。请 @ 本企业的成员。",
    "user_inactive": "{user} 在钉钉通讯录中是未激活状态（尚未激活或已离职），不能接收权限，未做任何更改。",
    "not_enough_approvers": (
        "这项更改需要 {need} 位审批人（主管理员或其他子管理员，不含申请人本人和被变更的人），"
        "目前只有 {have} 位，无法发起。请先添加管理员，或调整 policy.approvals_required。"
    ),
    "request_already_open": "同样的申请 **{id}** 已在等待审批，无需重新发起；可发送 `待审批` 查看。",
    "request_created": (
        "已发起审批 **{id}**：{what}\n\n需要 {need} 位主管理员或其他子管理员在卡片上同意后生效。"
    ),
    "request_applied": "**{id}** 已生效：{what}",
    "request_rejected": "**{id}** 被驳回，未做更改：{what}",
    "request_expired": "**{id}** 无人审批已过期，未做更改：{what}",
    "request_cancelled": "**{id}** 已取消，未做更改：{what}",
    "request_failed": "**{id}** 已获批准，但执行失败，未做任何更改（{error}）：{what}。请检查后重新发起。",
    "until": "至 {at}",
    "permanently": "长期有效",
    "for_duration": "为期 {d}",
    "grant_done": "已授予 {who}：{name}，{until}。",
    "grant_unchanged": "{who} 已经拥有 {name}（{until}），未做更改。",
    "describe_grant": "授予 {who}：{name}，{duration}",
    "revoke_done": "已撤销 {who} 的 {name}。",
    "revoke_still_held": "注意：该成员仍通过其他来源拥有相关权限：{sources}。",
    "revoke_not_direct": (
        "{who} 的 {name} 不是直接授权，而是来自：{sources}，撤销对它无效，未做任何更改。{advice}"
    ),
    "revoke_via_role": (
        "它来自 {user} 的业务角色 {role}。要去掉它，请更换角色：`设置角色 {user} <角色>`，"
        "或清除角色：`清除角色 {user}`。"
    ),
    "revoke_via_role_grant": "它来自授予的角色 {role}：`撤销 {user} {role}` 会撤销该角色的授权。",
    "revoke_via_template": (
        "它来自模板 {template}：可修改该模板（`模板 修改 {template} <权限>,...`），"
        "这会影响模板的所有使用者。"
    ),
    "revoke_not_held": "{who} 没有 {name} 的授权，无需撤销。",
    "grant_expired_holder": "你的临时权限 {name} 已到期，已自动收回。如仍需要，请向管理员重新申请。",
    "grant_expired_granter": "你授予 {who} 的临时权限 {name} 已到期，已自动收回。",
    "role_done": "已将 {who} 的业务角色设为 {role}（原为：{before}）。",
    "role_unchanged": "{who} 的业务角色已经是 {role}，未做更改。",
    "role_cleared": "已清除 {who} 的业务角色（原为：{before}）。",
    "role_clear_none": "{who} 没有业务角色，无需清除。",
    "roles_short": "角色列表",
    "roles_title": "角色（{n} 个）",
    "roles_line": "- **{name}**：{perms}",
    "roles_line_sensitive": "- **{name}**（含敏感权限）：{perms}",
    "roles_none": "权限目录中还没有角色。运维可在配置的 catalog.roles 中定义角色。",
    "none": "无",
    "describe_role_set": "将 {who} 的业务角色设为 {role}",
    "admin_already": "{who} 已经是{level}，无需添加。",
    "admin_added": "已将 {who} 添加为子管理员。",
    "admin_not_admin": "{who} 不是子管理员，无需移除。",
    "admin_remove_owner": "不能移除主管理员。如需更换主管理员，请使用 `转让主管理员 @新主管理员`。",
    "admin_removed": "已移除 {who} 的子管理员身份。",
    "describe_admin_add": "将 {who} 添加为子管理员",
    "describe_admin_remove": "移除 {who} 的子管理员身份",
    "role_label": "角色 {name}",
    "who_has_short": "谁有",
    "who_has_title": "拥有 {name} 的成员（{n} 人）",
    "who_has_none": "目前没有成员拥有 {name}。",
    "and_more": "……另有 {n} 人",
    "template_unknown": "没有名为「{name}」的模板。{hint}",
    "see_template_list": "发送 `模板 列表` 查看现有模板。",
    "template_exists": "模板「{name}」已存在。修改请用 `模板 修改 {name} <权限>,...`。",
    "template_created": "已创建模板「{name}」：{items}",
    "template_short": "权限模板",
    "template_title": "模板「{name}」",
    "template_items": "包含：{items}",
    "template_holders": "使用人数：{n}",
    "template_none": "还没有权限模板。创建：`模板 创建 <名称> <权限>,<权限>`。",
    "template_list_title": "权限模板（{n} 个）",
    "template_list_line": "- **{name}**（{n} 人）：{items}",
    "template_unchanged": "模板「{name}」的内容没有变化，未做更改。",
    "template_deleted": "已删除模板「{name}」（无人使用）。",
    "template_apply_nothing": "这些成员都已在使用模板「{name}」，未做更改。",
    "template_applied": "已将模板「{name}」应用到 {n} 人（{skipped} 人原本已有）。",
    "dept_unknown": "钉钉通讯录中找不到部门「{name}」。请写部门的完整名称或部门 ID，例如 `dept:销售部`。",
    "impact_none": "{n} 位使用者的实际权限不会变化。",
    "impact_none_done": "{n} 位使用者的实际权限没有变化。",
    "impact_gain": "{n} 人将新增 {perm}",
    "impact_loss": "{n} 人将失去 {perm}",
    "impact_gained": "{n} 人新增了 {perm}",
    "impact_lost": "{n} 人失去了 {perm}",
    "impact_who": "{line}：{who}",
    "describe_template_set": "修改模板「{name}」：{old} → {new}\n\n{impact}",
    "describe_template_delete": "删除模板「{name}」\n\n{impact}",
    "subject_template": "模板「{name}」",
    "subject_template_apply": "模板「{name}」（{n} 人）",
    "describe_template_apply": "将模板「{name}」（含敏感权限）应用到 {n} 人：{who}",
    # The request kinds of this family: their names, card titles and card bodies.
    "kind_grant": "敏感权限授予",
    "card_title_grant": "敏感权限授予 {id}",
    "card_body_grant": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_role_set": "敏感角色设置",
    "card_title_role_set": "敏感角色设置 {id}",
    "card_body_role_set": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_admin_add": "添加子管理员",
    "card_title_admin_add": "添加子管理员 {id}",
    "card_body_admin_add": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_admin_remove": "移除子管理员",
    "card_title_admin_remove": "移除子管理员 {id}",
    "card_body_admin_remove": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_template_set": "修改权限模板",
    "card_title_template_set": "修改权限模板 {id}",
    "card_body_template_set": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_template_delete": "删除权限模板",
    "card_title_template_delete": "删除权限模板 {id}",
    "card_body_template_delete": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
    "kind_template_apply": "应用权限模板",
    "card_title_template_apply": "应用权限模板 {id}",
    "card_body_template_apply": "{requester} 申请以下更改，需要主管理员或其他子管理员审批：",
}


EN: Mapping[str, str] = {
    "need_admin": (
        "Only the owner or an admin may use “{command}” (you are: {level}). Ask an admin "
        "if you need it."
    ),
    "need_owner": "Only the owner (main administrator) may use “{command}” (you are: {level}).",
    "unknown_name": "There is no “{name}” in the permission catalog. {hint}",
    "unknown_role": "There is no role called “{name}”. {hint}",
    "role_is_permission": "“{name}” is a permission, not a role. To give it, write: `grant @user {name}`.",
    "did_you_mean": "Did you mean {names}?",
    "see_catalog": (
        "The roles and permissions are listed in the configured catalog; send "
        "`help grant` for the syntax."
    ),
    "builtin_role": (
        "“{name}” is built in and cannot be given this way: use `transfer-owner` for the "
        "owner and `admin add` for admins."
    ),
    "source_grant_role": "a grant (role {name})",
    "directory_unavailable": (
        "DingTalk's directory cannot be reached right now; nothing was changed. "
        "Please try again later."
    ),
    "user_unknown": (
        "DingTalk's directory has no member {user}; nothing was changed. Mention a "
        "member of this company."
    ),
    "user_inactive": (
        "{user} is inactive in DingTalk's directory (not activated yet, or has left), "
        "so cannot receive permissions; nothing was changed."
    ),
    "not_enough_approvers": (
        "This change needs {need} approvers (the owner or other admins, never the "
        "requester or the person it is about), but only {have} can approve. Add an admin "
        "first, or change policy.approvals_required."
    ),
    "request_already_open": (
        "The same request **{id}** is already waiting for approval; no need to ask again. "
        "Send `pending` to see it."
    ),
    "request_created": (
        "Request **{id}** is open: {what}\n\nIt takes effect once {need} of the owner "
        "and the other admins approve it on the card."
    ),
    "request_applied": "**{id}** is done: {what}",
    "request_rejected": "**{id}** was rejected; nothing changed: {what}",
    "request_expired": "**{id}** expired undecided; nothing changed: {what}",
    "request_cancelled": "**{id}** was cancelled; nothing changed: {what}",
    "request_failed": (
        "**{id}** was approved but could not be applied, so nothing changed ({error}): "
        "{what}. Check and ask again."
    ),
    "until": "until {at}",
    "permanently": "with no end date",
    "for_duration": "for {d}",
    "grant_done": "Granted {name} to {who}, {until}.",
    "grant_unchanged": "{who} already holds {name} ({until}); nothing changed.",
    "describe_grant": "grant {name} to {who}, {duration}",
    "revoke_done": "Revoked {name} from {who}.",
    "revoke_still_held": "Note: the member still holds it through: {sources}.",
    "revoke_not_direct": (
        "{who} holds {name} not through a grant but through: {sources}, so revoke cannot "
        "remove it; nothing was changed.{advice}"
    ),
    "revoke_via_role": (
        "It comes with the business role {role}. To take it away, give {user} another role "
        "(`role set {user} <role>`) or clear the role (`role clear {user}`)."
    ),
    "revoke_via_role_grant": (
        "It comes with the granted role {role}: `revoke {user} {role}` removes that grant."
    ),
    "revoke_via_template": (
        "It comes with the template {template}: change the template (`template set "
        "{template} <perm>,...`), which changes it for every holder."
    ),
    "revoke_not_held": "{who} holds no grant of {name}; there is nothing to revoke.",
    "grant_expired_holder": (
        "Your time-bound permission {name} has expired and was removed. Ask an admin "
        "if you still need it."
    ),
    "grant_expired_granter": "The time-bound {name} you granted to {who} has expired and was removed.",
    "role_done": "{who}'s business role is now {role} (was: {before}).",
    "role_unchanged": "{who}'s business role is already {role}; nothing changed.",
    "role_cleared": "{who} no longer has a business role (was: {before}).",
    "role_clear_none": "{who} has no business role; there is nothing to clear.",
    "roles_short": "Roles",
    "roles_title": "Roles ({n})",
    "roles_line": "- **{name}**: {perms}",
    "roles_line_sensitive": "- **{name}** (has sensitive permissions): {perms}",
    "roles_none": (
        "The catalog has no roles yet. An operator can define them under catalog.roles "
        "in the config."
    ),
    "none": "none",
    "describe_role_set": "set {who}'s role to {role}",
    "admin_already": "{who} is already an administrator ({level}); nothing to add.",
    "admin_added": "{who} is now an admin.",
    "admin_not_admin": "{who} is not an admin; nothing to remove.",
    "admin_remove_owner": "The owner cannot be removed. To hand the role over, use `transfer-owner @user`.",
    "admin_removed": "{who} is no longer an admin.",
    "describe_admin_add": "make {who} an admin",
    "describe_admin_remove": "remove {who} from the admins",
    "role_label": "role {name}",
    "who_has_short": "Who has",
    "who_has_title": "Members holding {name} ({n})",
    "who_has_none": "Nobody holds {name} at the moment.",
    "and_more": "…and {n} more",
    "template_unknown": "There is no template called “{name}”. {hint}",
    "see_template_list": "Send `template list` to see the templates.",
    "template_exists": (
        "A template called “{name}” already exists. To change it, write "
        "`template set {name} <perm>,...`."
    ),
    "template_created": "Template “{name}” created: {items}",
    "template_short": "Templates",
    "template_title": "Template “{name}”",
    "template_items": "Contains: {items}",
    "template_holders": "Holders: {n}",
    "template_none": "There are no templates yet. Create one: `template create <name> <perm>,<perm>`.",
    "template_list_title": "Templates ({n})",
    "template_list_line": "- **{name}** ({n} holder(s)): {items}",
    "template_unchanged": "Template “{name}” already has exactly these; nothing changed.",
    "template_deleted": "Template “{name}” deleted (nobody held it).",
    "template_apply_nothing": "Everyone named already holds template “{name}”; nothing changed.",
    "template_applied": "Template “{name}” applied to {n} member(s) ({skipped} already had it).",
    "dept_unknown": (
        "DingTalk's directory has no department “{name}”. Write its full name or its "
        "id, e.g. `dept:Sales`."
    ),
    "impact_none": "The effective permissions of its {n} holders do not change.",
    "impact_none_done": "The effective permissions of its {n} holders did not change.",
    "impact_gain": "{n} will gain {perm}",
    "impact_loss": "{n} will lose {perm}",
    "impact_gained": "{n} gained {perm}",
    "impact_lost": "{n} lost {perm}",
    "impact_who": "{line}: {who}",
    "describe_template_set": "change template “{name}”: {old} → {new}\n\n{impact}",
    "describe_template_delete": "delete template “{name}”\n\n{impact}",
    "subject_template": "template “{name}”",
    "subject_template_apply": "template “{name}” ({n} members)",
    "describe_template_apply": "apply template “{name}” (it has sensitive permissions) to {n}: {who}",
    # The request kinds of this family: their names, card titles and card bodies.
    "kind_grant": "Sensitive grant",
    "card_title_grant": "Sensitive grant {id}",
    "card_body_grant": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_role_set": "Sensitive role change",
    "card_title_role_set": "Sensitive role change {id}",
    "card_body_role_set": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_admin_add": "Add an admin",
    "card_title_admin_add": "Add an admin {id}",
    "card_body_admin_add": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_admin_remove": "Remove an admin",
    "card_title_admin_remove": "Remove an admin {id}",
    "card_body_admin_remove": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_template_set": "Template change",
    "card_title_template_set": "Template change {id}",
    "card_body_template_set": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_template_delete": "Template deletion",
    "card_title_template_delete": "Template deletion {id}",
    "card_body_template_delete": "{requester} asks for this change; the owner or another admin must approve:",
    "kind_template_apply": "Template assignment",
    "card_title_template_apply": "Template assignment {id}",
    "card_body_template_apply": "{requester} asks for this change; the owner or another admin must approve:",
}
