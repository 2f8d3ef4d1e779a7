"""General replies: what is not available, internal errors, the CLI's store checks, mentions,
where admin commands are accepted, ``whoami`` and ``admins``.
"""

from __future__ import annotations

from collections.abc import Mapping

ZH: Mapping[str, str] = {
    "not_available": "「{command}」还未开放，敬请期待。发送 `帮助` 查看现在可用的命令。",
    "internal_error": (
        "抱歉，处理时出了内部错误，未做任何更改。请稍后重试；"
        "如需排查，请把事件编号 {event_id} 告诉管理员。"
    ),
    "cli_store_empty": "数据库中还没有任何成员或审计记录，无事可做。",
    "cli_only_corp": "未配置 org.corp_id；使用数据库中唯一的企业 {corp}。",
    "cli_unknown_corp": (
        "数据库中没有企业 {corp}（org.corp_id）的数据，未做任何事。数据库中的企业：{corps}。"
        "请在配置文件中设置 org.corp_id，或设置环境变量 BATON_ORG__CORP_ID。"
    ),
    "mention_unresolved": "无法识别你 @ 的第 {n} 个人：他/她不是本企业的成员。Baton 只能处理本企业成员。",
    "admin_conversation_only": "管理命令只能在指定的管理群或与我的单聊中使用。",
    "whoami_title": "我的权限",
    "whoami_level": "**{name}**（{user_id}）：{level}",
    "level_owner": "主管理员",
    "level_admin": "子管理员",
    "level_member": "成员",
    "whoami_role": "业务角色：{role}",
    "whoami_no_role": "业务角色：无",
    "whoami_perms": "权限：",
    "whoami_no_perms": "暂无业务权限。",
    "whoami_perm_line": "- {perm}（来源：{source}{expiry}）",
    "source_role": "角色 {name}",
    "source_grant": "授权",
    "source_template": "模板 {name}",
    "source_admin": "管理员身份",
    "expires": "，{at} 到期",
    "admins_title": "管理员",
    "admins_owner": "主管理员：{who}",
    "admins_none_owner": "主管理员：尚未设置（运维可运行 `baton init --owner <userId>`）",
    "admins_admins": "子管理员：{who}",
    "admins_no_admins": "子管理员：无",
    "list_sep": "、",
}


EN: Mapping[str, str] = {
    "not_available": "“{command}” is not available yet. Send `help` to see what works today.",
    "internal_error": (
        "Sorry, something went wrong inside Baton and nothing was changed. Please try "
        "again later; if it persists, give your operator the event id {event_id}."
    ),
    "cli_store_empty": "the database holds no members or audit entries yet: nothing to do.",
    "cli_only_corp": "org.corp_id is not configured; using {corp}, the only corp in the database.",
    "cli_unknown_corp": (
        "the database holds nothing of corp {corp} (org.corp_id); nothing done. Corps "
        "in the database: {corps}. Set org.corp_id in the config file, or "
        "BATON_ORG__CORP_ID in the environment."
    ),
    "mention_unresolved": (
        "I can't tell who your mention number {n} refers to: that person is not a member of "
        "this company. Baton works only with the company's members."
    ),
    "admin_conversation_only": (
        "Admin commands are accepted only in the designated admin groups or in a "
        "one-to-one chat with me."
    ),
    "whoami_title": "My permissions",
    "whoami_level": "**{name}** ({user_id}): {level}",
    "level_owner": "owner (main administrator)",
    "level_admin": "admin",
    "level_member": "member",
    "whoami_role": "Business role: {role}",
    "whoami_no_role": "Business role: none",
    "whoami_perms": "Permissions:",
    "whoami_no_perms": "No business permissions.",
    "whoami_perm_line": "- {perm} (from {source}{expiry})",
    "source_role": "role {name}",
    "source_grant": "a grant",
    "source_template": "template {name}",
    "source_admin": "admin status",
    "expires": ", expires {at}",
    "admins_title": "Administrators",
    "admins_owner": "Owner: {who}",
    "admins_none_owner": "Owner: not set yet (an operator can run `baton init --owner <userId>`)",
    "admins_admins": "Admins: {who}",
    "admins_no_admins": "Admins: none",
    "list_sep": ", ",
}
