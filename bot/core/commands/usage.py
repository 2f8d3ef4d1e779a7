"""Every user-visible string about commands, per language: usage lines, one-line
descriptions, examples, parse-error messages, and the help renderer.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from ..escape import Md, literal
from ..lang import Lang
from .model import COMMAND_NAMES
from .words import GROUPS, lookup, primary, resolve_topic


@dataclass(frozen=True, slots=True)
class UsageTexts:
    """The grammar's own texts in one language (not the permission ``Catalog`` of
    ``bot.core.domain.permissions``, nor the message catalogue of ``bot.texts``)."""

    usage: Mapping[str, str]
    description: Mapping[str, str]
    example: Mapping[str, str]
    errors: Mapping[str, str]
    args: Mapping[str, str]  # what is missing or wrong: "user", "permission", ...
    charset: Mapping[str, str]  # which characters a name may use, by kind of name
    unknown_hint: str  # "did you mean {suggestion}?"
    help_hint: str  # "send help to see all commands"
    usage_label: str
    example_label: str
    help_title: str
    help_footer: str
    unknown_topic: str


EN = UsageTexts(
    usage={
        "help": "help [command]",
        "whoami": "whoami [page <n>]",
        "admins": "admins",
        "who-has": "who-has <role-or-permission> [page <n>]",
        "transfer-owner": "transfer-owner @user [reason]",
        "admin add": "admin add @user",
        "admin remove": "admin remove @user",
        "role set": "role set @user <role>",
        "role clear": "role clear @user",
        "roles": "roles",
        "grant": "grant @user <role-or-permission> [for <duration>]",
        "revoke": "revoke @user <role-or-permission>",
        "template create": "template create <name> <perm>[,<perm>...]",
        "template set": "template set <name> <perm>[,<perm>...]",
        "template show": "template show <name> [page <n>]",
        "template list": "template list",
        "template delete": "template delete <name>",
        "template apply": "template apply <name> @user... dept:<department>...",
        "pending": "pending [page <n>]",
        "cancel": "cancel <request-id>",
        "export": "export [xlsx|csv]",
        "export template": "export template",
        "import": "import replace|add",
        "import undo": "import undo <batch>",
        "audit": "audit [@user] [<n>] [page <n>]",
        "next": "next",
        "review start": "review start",
        "review status": "review status",
        "request": "request <permission-or-role> [for <duration>] <reason>",
        "requests": "requests",
        "release": "release <permission-or-role>",
        "extend": "extend <permission-or-role> [for <duration>] <reason>",
        "policy show": "policy show <permission-or-role>",
        "break-glass": "break-glass <permission> <reason>",
    },
    description={
        "help": "show this list, or how to use one command",
        "whoami": "your role and permissions, where they come from, and when they expire",
        "admins": "the owner and the admins",
        "who-has": "the members holding a role or permission, with its source",
        "transfer-owner": "start handing the owner role to someone (needs approval)",
        "admin add": "make someone an admin",
        "admin remove": "remove an admin",
        "role set": "replace a member's business role",
        "role clear": "take a member's business role away",
        "roles": "the catalog's roles and the permissions each gives",
        "grant": "grant a role or permission, time-bound if a duration is given",
        "revoke": "remove a grant",
        "template create": "create a named set of permissions",
        "template set": "change a template's permissions (every holder changes at once)",
        "template show": "show a template",
        "template list": "list the templates",
        "template delete": "delete a template",
        "template apply": "assign a template to users or departments",
        "pending": "open requests you may decide, and those you made",
        "cancel": "cancel an open request",
        "export": "send you the full permission table as a file, privately",
        "export template": "send you the empty import template",
        "import": "how your next file is imported: replace, or add (the default); "
        "then send me the file one-to-one",
        "import undo": "roll a whole import batch back",
        "audit": "the last n audit entries (10 by default, at most 5000), optionally for one user",
        "next": "the next page of your last long answer here (also `more`)",
        "review start": "start an access review",
        "review status": "show how the access review is going",
        "request": "ask for a permission or role for yourself, for a while, with a reason "
        "(approved by the approvers its policy names)",
        "requests": "your own requests and how they stand",
        "release": "give back your own grant before it ends",
        "extend": "ask for more time on a grant you hold (a new request, approved as usual)",
        "policy show": "who approves a permission, how many of them, and for how long at most",
        "break-glass": "emergency access at once, short and announced to the approvers "
        "(only for those listed in policy.break_glass)",
    },
    example={
        "help": "help grant",
        "whoami": "whoami",
        "admins": "admins",
        "who-has": "who-has crm.export",
        "transfer-owner": "transfer-owner @LiSi handing over before my leave",
        "admin add": "admin add @LiSi",
        "admin remove": "admin remove @LiSi",
        "role set": "role set @LiSi sales",
        "role clear": "role clear @LiSi",
        "roles": "roles",
        "grant": "grant @LiSi crm.export for 7d",
        "revoke": "revoke @LiSi crm.export",
        "template create": "template create sales-basic crm.customer.view,crm.customer.edit",
        "template set": "template set sales-basic crm.customer.view",
        "template show": "template show sales-basic",
        "template list": "template list",
        "template delete": "template delete sales-basic",
        "template apply": "template apply sales-basic @LiSi dept:Sales",
        "pending": "pending",
        "cancel": "cancel R-12",
        "export": "export csv",
        "export template": "export template",
        "import": "import replace",
        "import undo": "import undo B-7",
        "audit": "audit @LiSi 500 page 2",
        "next": "next",
        "review start": "review start",
        "review status": "review status",
        "request": "request crm.export for 8h monthly sales report",
        "requests": "requests",
        "release": "release crm.export",
        "extend": "extend crm.export for 2h the report is not done yet",
        "policy show": "policy show crm.export",
        "break-glass": "break-glass crm.export customer outage, need the list now",
    },
    errors={
        "empty": "Hi! Send `help` to see what I can do.",
        "too_long": "Sorry, that message is too long ({length} characters; the limit is "
        "{max}). Please send a shorter command.",
        "unknown_command": "Sorry, I don't know the command “{got}”.",
        "missing_argument": "Sorry, something is missing: please add {what}.",
        "too_many_arguments": "Sorry, I didn't expect “{got}” there.",
        "bad_mention": "Sorry, “{got}” is not a user. Mention them with @, or write uid:<userId>.",
        "mention_unresolved": "Sorry, I couldn't tell who “{got}” is. Pick a member of this "
        "organisation from the @ list, or write uid:<userId>.",
        "bad_target": "Sorry, “{got}” is neither a user nor a department. Write @name, "
        "uid:<userId> or dept:<department>.",
        "no_target": "Please say who gets the template: @name, uid:<userId> or dept:<department>.",
        "bad_duration": "Sorry, “{got}” is not a duration I understand. Write a whole number "
        "above zero and a unit: 30m, 12h, 7d or 2w (at most 3650 days).",
        "bad_number": "Sorry, “{got}” is not a valid number here: use a whole number from "
        "{min} to {max}.",
        "bad_request_id": "Sorry, “{got}” is not a request id. Request ids look like R-12.",
        "bad_page": "Sorry, “{got}” is not a page I can show: write page and a whole number "
        "from 1 to {max}, for example page 2.",
        "bad_format": "Sorry, “{got}” is not one of the options here.",
        "bad_name": "Sorry, “{got}” cannot be used as {what}: {charset}.",
        "bad_list": "Sorry, please separate the permissions with commas, "
        "for example crm.customer.view,crm.customer.edit.",
    },
    args={
        "user": "a user (@name or uid:<userId>)",
        "permission": "a role or permission",
        "role": "a role",
        "template": "a template name",
        "perms": "the permissions, separated by commas",
        "request_id": "a request id such as R-12",
        "batch": "the batch id",
        "subcommand": "what to do",
        "mode": "replace or add",
        "duration": "a duration such as 7d",
        "dept": "a department",
        "reason": "a reason (why you need it)",
    },
    charset={
        "permission": "use letters, digits and . _ - : * (at most 64 characters)",
        "role": "use letters, digits and . _ - : * (at most 64 characters)",
        "template": "use letters (Chinese too), digits and . _ - (at most 64 characters)",
        "batch": "use letters, digits and . _ - (at most 64 characters)",
        "dept": "at most 64 characters, without spaces or commas",
    },
    unknown_hint=" Did you mean `{suggestion}`?",
    help_hint=" Send `help` to see all commands.",
    usage_label="Usage: ",
    example_label="Example: ",
    help_title="**Baton commands**",
    help_footer="Send `help <command>` for details. Mention users with @ or write "
    "uid:<userId>. Durations: 30m, 12h, 7d, 2w. Long answers come in pages: send `next` "
    "for the next one.",
    unknown_topic="There is no command called “{topic}”.",
)

ZH = UsageTexts(
    usage={
        "help": "帮助 [命令]",
        "whoami": "我的权限 [第<n>页]",
        "admins": "管理员",
        "who-has": "谁有 <角色或权限> [第<n>页]",
        "transfer-owner": "转让主管理员 @用户 [原因]",
        "admin add": "添加管理员 @用户",
        "admin remove": "移除管理员 @用户",
        "role set": "设置角色 @用户 <角色>",
        "role clear": "清除角色 @用户",
        "roles": "角色列表",
        "grant": "授权 @用户 <角色或权限> [<时长>]",
        "revoke": "撤销 @用户 <角色或权限>",
        "template create": "模板 创建 <名称> <权限>[,<权限>...]",
        "template set": "模板 修改 <名称> <权限>[,<权限>...]",
        "template show": "模板 查看 <名称> [第<n>页]",
        "template list": "模板 列表",
        "template delete": "模板 删除 <名称>",
        "template apply": "模板 应用 <名称> @用户... dept:<部门>...",
        "pending": "待审批 [第<n>页]",
        "cancel": "取消 <申请编号>",
        "export": "导出 [xlsx|csv]",
        "export template": "导出 模板",
        "import": "导入 替换|追加",
        "import undo": "导入 撤销 <批次号>",
        "audit": "审计 [@用户] [<条数>] [第<n>页]",
        "next": "下一页",
        "review start": "权限审核 开始",
        "review status": "权限审核 状态",
        "request": "申请 <权限或角色> [<时长>] <理由>",
        "requests": "我的申请",
        "release": "我用完了 <权限或角色>",
        "extend": "续期 <权限或角色> [<时长>] <理由>",
        "policy show": "策略 <权限或角色>",
        "break-glass": "紧急授权 <权限> <理由>",
    },
    description={
        "help": "显示命令列表，或某个命令的用法",
        "whoami": "我的角色和权限、来源及到期时间",
        "admins": "主管理员和管理员名单",
        "who-has": "拥有某个角色或权限的成员及来源",
        "transfer-owner": "发起主管理员转让（需要审批）",
        "admin add": "添加管理员",
        "admin remove": "移除管理员",
        "role set": "设置成员的业务角色（替换原角色）",
        "role clear": "清除成员的业务角色",
        "roles": "列出目录中的角色及其包含的权限",
        "grant": "授予角色或权限，可限定时长",
        "revoke": "撤销一项授权",
        "template create": "创建权限模板",
        "template set": "修改模板的权限（所有使用者同时生效）",
        "template show": "查看模板",
        "template list": "列出全部模板",
        "template delete": "删除模板",
        "template apply": "把模板应用到用户或部门",
        "pending": "待我审批的申请，以及我发起的申请",
        "cancel": "取消未完成的申请",
        "export": "导出完整权限表，以文件私聊发送给您",
        "export template": "获取空白的导入模板",
        "import": "设置下一个文件的导入方式：替换，或追加（默认）；然后私聊把文件发给我",
        "import undo": "整批撤销一次导入",
        "audit": "最近 n 条审计记录（默认 10 条，最多 5000 条），可指定用户",
        "next": "查看您在本会话中上一个长回答的下一页（也可以发 `更多`）",
        "review start": "发起权限审核",
        "review status": "查看权限审核进度",
        "request": "为自己申请权限或角色，限定时长并说明理由（由该权限策略指定的审批人审批）",
        "requests": "我发起的申请及其进展",
        "release": "提前交还自己的授权",
        "extend": "为自己持有的授权申请延长时间（新的申请，照常审批）",
        "policy show": "某项权限由谁审批、需要几人、最长多久",
        "break-glass": "紧急授权：立即生效、时间很短，并通知审批人（仅限 policy.break_glass 中列出的人）",
    },
    example={
        "help": "帮助 授权",
        "whoami": "我的权限",
        "admins": "管理员",
        "who-has": "谁有 crm.export",
        "transfer-owner": "转让主管理员 @李四 休假前交接",
        "admin add": "添加管理员 @李四",
        "admin remove": "移除管理员 @李四",
        "role set": "设置角色 @李四 sales",
        "role clear": "清除角色 @李四",
        "roles": "角色列表",
        "grant": "授权 @李四 crm.export 7天",
        "revoke": "撤销 @李四 crm.export",
        "template create": "模板 创建 销售基础 crm.customer.view,crm.customer.edit",
        "template set": "模板 修改 销售基础 crm.customer.view",
        "template show": "模板 查看 销售基础",
        "template list": "模板 列表",
        "template delete": "模板 删除 销售基础",
        "template apply": "模板 应用 销售基础 @李四 dept:销售部",
        "pending": "待审批",
        "cancel": "取消 R-12",
        "export": "导出 csv",
        "export template": "导出 模板",
        "import": "导入 替换",
        "import undo": "导入 撤销 B-7",
        "audit": "审计 @李四 500 第2页",
        "next": "下一页",
        "review start": "权限审核 开始",
        "review status": "权限审核 状态",
        "request": "申请 crm.export 8小时 导出月度销售报表",
        "requests": "我的申请",
        "release": "我用完了 crm.export",
        "extend": "续期 crm.export 2小时 报表还没做完",
        "policy show": "策略 crm.export",
        "break-glass": "紧急授权 crm.export 客户故障，需要立即导出名单",
    },
    errors={
        "empty": "您好！发送 `帮助` 查看我能做什么。",
        "too_long": "抱歉，消息太长了（{length} 个字符，上限 {max}）。请发送更短的命令。",
        "unknown_command": "抱歉，我不认识命令“{got}”。",
        "missing_argument": "抱歉，还缺少{what}。",
        "too_many_arguments": "抱歉，这里多了“{got}”。",
        "bad_mention": "抱歉，“{got}”不是用户。请用 @ 提及对方，或写 uid:<userId>。",
        "mention_unresolved": "抱歉，无法确定“{got}”是谁。请从 @ 列表中选择本组织的成员，"
        "或写 uid:<userId>。",
        "bad_target": "抱歉，“{got}”既不是用户也不是部门。请写 @某人、uid:<userId> 或 "
        "dept:<部门>。",
        "no_target": "请指定模板给谁：@某人、uid:<userId> 或 dept:<部门>。",
        "bad_duration": "抱歉，无法识别时长“{got}”。请写大于零的整数加单位：30分钟、12小时、7天、2周"
        "（最长 3650 天）。",
        "bad_number": "抱歉，“{got}”不是有效的数字：请写 {min} 到 {max} 之间的整数。",
        "bad_request_id": "抱歉，“{got}”不是申请编号。申请编号形如 R-12。",
        "bad_page": "抱歉，无法显示“{got}”：请写“第N页”，N 为 1 到 {max} 的整数，例如 第2页。",
        "bad_format": "抱歉，这里不能用“{got}”。",
        "bad_name": "抱歉，“{got}”不是有效的{what}：{charset}。",
        "bad_list": "抱歉，多个权限请用逗号分隔，例如 crm.customer.view,crm.customer.edit。",
    },
    args={
        "user": "用户（@某人 或 uid:<userId>）",
        "permission": "角色或权限",
        "role": "角色",
        "template": "模板名称",
        "perms": "权限（多个用逗号分隔）",
        "request_id": "申请编号（如 R-12）",
        "batch": "批次号",
        "subcommand": "要做的操作",
        "mode": "导入方式（替换 或 追加）",
        "duration": "时长（如 7天）",
        "dept": "部门",
        "reason": "理由（为什么需要）",
    },
    charset={
        "permission": "只能包含英文字母、数字和 . _ - : *，最多 64 个字符",
        "role": "只能包含英文字母、数字和 . _ - : *，最多 64 个字符",
        "template": "只能包含文字、数字和 . _ -，最多 64 个字符",
        "batch": "只能包含英文字母、数字和 . _ -，最多 64 个字符",
        "dept": "最多 64 个字符，不能有空格或逗号",
    },
    unknown_hint="您是想用 `{suggestion}` 吗？",
    help_hint="发送 `帮助` 查看全部命令。",
    usage_label="用法：",
    example_label="示例：",
    help_title="**Baton 命令**",
    help_footer="发送 `帮助 <命令>` 查看详细用法。用 @ 提及用户，或写 uid:<userId>。"
    "时长：30分钟、12小时、7天、2周。较长的回答会分页显示：发送 `下一页` 查看下一页。",
    unknown_topic="没有名为“{topic}”的命令。",
)

CATALOGS: Mapping[Lang, UsageTexts] = {"en": EN, "zh": ZH}

_SHOWN_MAX = 40


class _Blank(dict[str, str]):
    """Format values where a missing one is left empty rather than raising."""

    def __missing__(self, key: str) -> str:
        return ""


def shown(text: str) -> Md:
    """User text as echoed back: short, and unable to break the surrounding markdown."""
    return literal(text.replace("`", "'"), _SHOWN_MAX)


def usage(command_name: str, lang: Lang) -> str:
    """The usage line of a command, or the lines of a group ("template"), in ``lang``."""
    table = CATALOGS[lang].usage
    if command_name in table:
        return table[command_name]
    if command_name in GROUPS:
        return "\n".join(table[n] for n in GROUPS[command_name])
    raise ValueError(f"unknown command name {command_name!r}")


def _usage_block(command_name: str, lang: Lang) -> str:
    lines = usage(command_name, lang).split("\n")
    label = CATALOGS[lang].usage_label
    if len(lines) == 1:
        return f"{label}`{lines[0]}`"
    return label.rstrip() + "".join(f"\n- `{line}`" for line in lines)


def render_error(
    code: str,
    params: Mapping[str, str],
    usage_of: str | None,
    suggestion: str | None,
    lang: Lang,
) -> Md:
    """The polite reply to a parse error: what was wrong, and how to write it. Every
    parameter is escaped (``shown``) before it enters the template."""
    cat = CATALOGS[lang]
    values: dict[str, str] = {key: shown(value) for key, value in params.items()}
    if "what" in values:
        what = params["what"]
        values["charset"] = cat.charset.get(what, "")
        values["what"] = cat.args.get(what, values["what"])
    template = cat.errors.get(code, cat.errors["unknown_command"])
    message = template.format_map(_Blank(values))
    if code == "unknown_command":
        word = lookup(suggestion) if suggestion else None
        if word is not None:
            message += cat.unknown_hint.format(suggestion=primary(word.name, lang))
        if usage_of is None:
            message += cat.help_hint
    if usage_of is not None:
        message += "\n" + _usage_block(usage_of, lang)
    return Md(message)


def _help_line(name: str, lang: Lang) -> str:
    cat = CATALOGS[lang]
    return f"- `{cat.usage[name]}` — {cat.description[name]}"


def render_help(topic: str | None, lang: Lang) -> Md:
    """Markdown help: every command with one line each, or one command (or group) in detail."""
    cat = CATALOGS[lang]
    if topic is not None and topic.strip():
        name = resolve_topic(topic)
        if name is not None and name in GROUPS:
            return Md("\n".join(_help_line(n, lang) for n in GROUPS[name]))
        if name is not None:
            description = cat.description[name]
            return Md(
                f"**`{cat.usage[name]}`**\n\n{description[:1].upper()}{description[1:]}\n\n"
                f"{cat.example_label}`{cat.example[name]}`"
            )
    lines = [cat.help_title, ""]
    lines.extend(_help_line(n, lang) for n in COMMAND_NAMES)
    lines.extend(["", cat.help_footer])
    text = "\n".join(lines)
    if topic is not None and topic.strip():
        return Md(cat.unknown_topic.format(topic=shown(topic.strip())) + "\n\n" + text)
    return Md(text)
