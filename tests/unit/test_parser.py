"""The command grammar of product.md §2, as tables, plus properties of the parser."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.core.commands import (
    COMMAND_NAMES,
    ERROR_CODES,
    AccessRequest,
    AdminAdd,
    AdminRemove,
    Admins,
    Audit,
    BreakGlass,
    Cancel,
    Command,
    DeptRef,
    Export,
    ExportTemplate,
    Extend,
    Grant,
    Help,
    ImportMode,
    ImportUndo,
    MyRequests,
    NextPage,
    Parsed,
    ParseError,
    Pending,
    PolicyShow,
    Release,
    ReviewStart,
    ReviewStatus,
    Revoke,
    RoleClear,
    Roles,
    RoleSet,
    TemplateApply,
    TemplateCreate,
    TemplateDelete,
    TemplateList,
    TemplateSet,
    TemplateShow,
    TransferOwner,
    UserRef,
    WhoAmI,
    WhoHas,
    format_duration,
    parse,
    render_help,
    usage,
)
from bot.core.commands.usage import CATALOGS, shown
from bot.core.commands.words import WORDS, primary
from bot.core.lang import Lang

M = ("u1", "u2", "u3")  # the mentioned users' userIds, in order
U1, U2, U3 = UserRef("u1"), UserRef("u2"), UserRef("u3")
LANGS: tuple[Lang, ...] = ("en", "zh")

# (text, mentions, expected command, language of the command word)
VALID: list[tuple[str, Sequence[str], Command, Lang]] = [
    # help
    ("help", (), Help(), "en"),
    (" help", (), Help(), "en"),
    ("HELP", (), Help(), "en"),
    ("/help", (), Help(), "en"),
    ("／帮助", (), Help(), "zh"),
    ("帮助", (), Help(), "zh"),
    ("\u3000帮助\u3000", (), Help(), "zh"),
    ("help grant", (), Help("grant"), "en"),
    ("help 授权", (), Help("grant"), "en"),
    ("帮助 转让主管理员", (), Help("transfer-owner"), "zh"),
    ("帮助 模板创建", (), Help("template create"), "zh"),
    ("帮助 模板 创建", (), Help("template create"), "zh"),
    ("help Admin  RM", (), Help("admin remove"), "en"),
    ("help /whoami", (), Help("whoami"), "en"),
    ("help whohas", (), Help("who-has"), "en"),
    ("help template", (), Help("template"), "en"),
    ("帮助 模板", (), Help("template"), "zh"),
    ("help how do   I start", (), Help("how do I start"), "en"),
    # whoami / admins / pending
    ("whoami", (), WhoAmI(), "en"),
    ("WhoAmI", (), WhoAmI(), "en"),
    ("  /whoami  ", (), WhoAmI(), "en"),
    ("我的权限", (), WhoAmI(), "zh"),
    ("admins", (), Admins(), "en"),
    ("管理员", (), Admins(), "zh"),
    ("pending", (), Pending(), "en"),
    ("待审批", (), Pending(), "zh"),
    # who-has
    ("who-has crm.export", (), WhoHas("crm.export"), "en"),
    ("whohas crm.export", (), WhoHas("crm.export"), "en"),
    ("WHO-HAS sales", (), WhoHas("sales"), "en"),
    ("who-has crm.*", (), WhoHas("crm.*"), "en"),
    ("谁有 crm.export", (), WhoHas("crm.export"), "zh"),
    ("谁有crm.export", (), WhoHas("crm.export"), "zh"),
    ("谁有 ｃｒｍ．ｅｘｐｏｒｔ", (), WhoHas("crm.export"), "zh"),
    # transfer-owner
    (" transfer-owner @李四", M, TransferOwner(U1), "en"),
    ("transfer-owner @李四 leaving   the\tteam", M, TransferOwner(U1, "leaving the team"), "en"),
    (
        "transfer-owner uid:manager123 on leave",
        (),
        TransferOwner(UserRef("manager123"), "on leave"),
        "en",
    ),
    ("转让主管理员 @李四 休假交接", M, TransferOwner(U1, "休假交接"), "zh"),
    ("转让主管理员@李四", M, TransferOwner(U1), "zh"),
    ("转让主管理员 @李四 原因：离职\u3000交接", M, TransferOwner(U1, "原因：离职 交接"), "zh"),
    # admin add / remove
    ("admin add @李四", M, AdminAdd(U1), "en"),
    ("ADMIN ADD uid:abc", (), AdminAdd(UserRef("abc")), "en"),
    ("admin   add @李四", M, AdminAdd(U1), "en"),
    ("添加管理员 @李四", M, AdminAdd(U1), "zh"),
    ("添加管理员@李四", M, AdminAdd(U1), "zh"),
    ("admin remove @李四", M, AdminRemove(U1), "en"),
    ("admin rm @李四", M, AdminRemove(U1), "en"),
    ("移除管理员 @李四", M, AdminRemove(U1), "zh"),
    ("移除管理员 uid:user.01$x@corp", (), AdminRemove(UserRef("user.01$x@corp")), "zh"),
    # role set
    ("role set @李四 sales", M, RoleSet(U1, "sales"), "en"),
    ("设置角色 @李四 sales", M, RoleSet(U1, "sales"), "zh"),
    ("设置角色@李四 crm_admin", M, RoleSet(U1, "crm_admin"), "zh"),
    # role clear
    ("role clear @李四", M, RoleClear(U1), "en"),
    ("ROLE CLEAR uid:u1", (), RoleClear(U1), "en"),
    ("清除角色 @李四", M, RoleClear(U1), "zh"),
    ("清除角色@李四", M, RoleClear(U1), "zh"),
    # roles
    ("roles", (), Roles(), "en"),
    ("/Roles", (), Roles(), "en"),
    ("角色列表", (), Roles(), "zh"),
    # grant
    ("grant @李四 crm.export", M, Grant(U1, "crm.export"), "en"),
    ("grant @李四 crm.export for 7d", M, Grant(U1, "crm.export", timedelta(days=7)), "en"),
    ("grant @李四 crm.export FOR 2W", M, Grant(U1, "crm.export", timedelta(weeks=2)), "en"),
    ("grant @李四 crm.export 12h", M, Grant(U1, "crm.export", timedelta(hours=12)), "en"),
    (
        "grant @李四 crm.export for 30 minutes",
        M,
        Grant(U1, "crm.export", timedelta(minutes=30)),
        "en",
    ),
    (
        "grant uid:user-01 sales for 1d",
        (),
        Grant(UserRef("user-01"), "sales", timedelta(days=1)),
        "en",
    ),
    ("grant uid:x 7d", (), Grant(UserRef("x"), "7d"), "en"),
    ("grant uid:x for 7d", (), Grant(UserRef("x"), "for", timedelta(days=7)), "en"),
    ("授权 @李四 crm.export", M, Grant(U1, "crm.export"), "zh"),
    ("授权 @李四 crm.export 7天", M, Grant(U1, "crm.export", timedelta(days=7)), "zh"),
    ("授权 @李四 crm.export 7 天", M, Grant(U1, "crm.export", timedelta(days=7)), "zh"),
    ("授权 @李四 crm.export 12小时", M, Grant(U1, "crm.export", timedelta(hours=12)), "zh"),
    ("授权 @李四 crm.export 2周", M, Grant(U1, "crm.export", timedelta(weeks=2)), "zh"),
    ("授权 @李四 crm.export for 3天", M, Grant(U1, "crm.export", timedelta(days=3)), "zh"),
    ("授权 @李四 crm.export ３天", M, Grant(U1, "crm.export", timedelta(days=3)), "zh"),
    ("授权@李四 crm_admin", M, Grant(U1, "crm_admin"), "zh"),
    # revoke
    ("revoke @李四 crm.export", M, Revoke(U1, "crm.export"), "en"),
    ("撤销 @李四 crm.export", M, Revoke(U1, "crm.export"), "zh"),
    ("撤销@李四 sales", M, Revoke(U1, "sales"), "zh"),
    # template create / set
    (
        "template create sales-basic crm.a,crm.b",
        (),
        TemplateCreate("sales-basic", ("crm.a", "crm.b")),
        "en",
    ),
    (
        "template create sales-basic crm.a, crm.b",
        (),
        TemplateCreate("sales-basic", ("crm.a", "crm.b")),
        "en",
    ),
    ("template create t crm.a ,crm.b,,", (), TemplateCreate("t", ("crm.a", "crm.b")), "en"),
    ("template create t crm.a,crm.a", (), TemplateCreate("t", ("crm.a",)), "en"),
    ("模板 创建 销售基础 crm.a，crm.b", (), TemplateCreate("销售基础", ("crm.a", "crm.b")), "zh"),
    ("模板创建 销售基础 crm.a、crm.b", (), TemplateCreate("销售基础", ("crm.a", "crm.b")), "zh"),
    ("模板创建 销售_v2 crm.*", (), TemplateCreate("销售_v2", ("crm.*",)), "zh"),
    ("template set t crm.a", (), TemplateSet("t", ("crm.a",)), "en"),
    ("模板 修改 销售 crm.a, crm.b", (), TemplateSet("销售", ("crm.a", "crm.b")), "zh"),
    # template show / list / delete
    ("template show t", (), TemplateShow("t"), "en"),
    ("模板 查看 销售基础", (), TemplateShow("销售基础"), "zh"),
    ("模板查看 销售基础", (), TemplateShow("销售基础"), "zh"),
    ("template list", (), TemplateList(), "en"),
    ("Template List", (), TemplateList(), "en"),
    ("模板 列表", (), TemplateList(), "zh"),
    ("模板列表", (), TemplateList(), "zh"),
    ("template delete t", (), TemplateDelete("t"), "en"),
    ("模板 删除 t", (), TemplateDelete("t"), "zh"),
    # template apply
    ("template apply t @李四 @王五", M, TemplateApply("t", (U1, U2)), "en"),
    ("template apply t dept:Sales", (), TemplateApply("t", (), (DeptRef("Sales"),)), "en"),
    ("template apply t uid:a,uid:b", (), TemplateApply("t", (UserRef("a"), UserRef("b"))), "en"),
    ("template apply t @a, @b DEPT:42", M, TemplateApply("t", (U1, U2), (DeptRef("42"),)), "en"),
    (
        "模板 应用 销售 @李四 dept:销售部 部门：财务部",
        M,
        TemplateApply("销售", (U1,), (DeptRef("销售部"), DeptRef("财务部"))),
        "zh",
    ),
    ("模板应用 销售 @李四，@王五", M, TemplateApply("销售", (U1, U2)), "zh"),
    ("template apply t uid:a uid:a", (), TemplateApply("t", (UserRef("a"),)), "en"),
    # cancel
    ("cancel R-12", (), Cancel("R-12"), "en"),
    ("cancel r12", (), Cancel("R-12"), "en"),
    ("cancel 12", (), Cancel("R-12"), "en"),
    ("cancel R-007", (), Cancel("R-7"), "en"),
    ("cancel #3", (), Cancel("R-3"), "en"),
    ("取消 R-12", (), Cancel("R-12"), "zh"),
    ("取消R-7", (), Cancel("R-7"), "zh"),
    ("取消 ｒ－１２", (), Cancel("R-12"), "zh"),
    # export
    ("export", (), Export("xlsx"), "en"),
    ("export csv", (), Export("csv"), "en"),
    ("export XLSX", (), Export("xlsx"), "en"),
    ("export .csv", (), Export("csv"), "en"),
    ("导出", (), Export("xlsx"), "zh"),
    ("导出 csv", (), Export("csv"), "zh"),
    ("导出csv", (), Export("csv"), "zh"),
    ("export template", (), ExportTemplate(), "en"),
    ("EXPORT  TEMPLATE", (), ExportTemplate(), "en"),
    ("导出 模板", (), ExportTemplate(), "zh"),
    ("导出模板", (), ExportTemplate(), "zh"),
    # import
    ("import replace", (), ImportMode("replace"), "en"),
    ("import add", (), ImportMode("add"), "en"),
    ("import REPLACE", (), ImportMode("replace"), "en"),
    ("导入 替换", (), ImportMode("replace"), "zh"),
    ("导入 追加", (), ImportMode("add"), "zh"),
    ("导入替换", (), ImportMode("replace"), "zh"),
    ("import undo B-7", (), ImportUndo("B-7"), "en"),
    ("导入 撤销 B-7", (), ImportUndo("B-7"), "zh"),
    ("导入撤销 20240601.1", (), ImportUndo("20240601.1"), "zh"),
    # audit
    ("audit", (), Audit(), "en"),
    ("audit 20", (), Audit(None, 20), "en"),
    ("audit 1", (), Audit(None, 1), "en"),
    ("audit @李四", M, Audit(U1), "en"),
    ("audit @李四 50", M, Audit(U1, 50), "en"),
    ("audit 50 @李四", M, Audit(U1, 50), "en"),
    ("audit uid:abc 200", (), Audit(UserRef("abc"), 200), "en"),
    ("审计", (), Audit(), "zh"),
    ("审计 @李四 5", M, Audit(U1, 5), "zh"),
    ("审计@李四", M, Audit(U1), "zh"),
    ("audit uid:abc 5000 page 3", (), Audit(UserRef("abc"), 5000, 3), "en"),
    ("审计 @李四 500 第2页", M, Audit(U1, 500, 2), "zh"),
    ("审计 第 3 页", (), Audit(None, 10, 3), "zh"),
    ("who-has crm.export page 2", (), WhoHas("crm.export", 2), "en"),
    ("who-has crm.export page7", (), WhoHas("crm.export", 7), "en"),
    ("谁有 crm.export 第2页", (), WhoHas("crm.export", 2), "zh"),
    ("谁有crm.export 第 12 页", (), WhoHas("crm.export", 12), "zh"),
    ("whoami page 3", (), WhoAmI(3), "en"),
    ("我的权限第二页", (), WhoAmI(2), "zh"),
    ("我的权限 page 4", (), WhoAmI(4), "zh"),
    ("pending page 2", (), Pending(2), "en"),
    ("待审批 第3页", (), Pending(3), "zh"),
    ("template show sales page 2", (), TemplateShow("sales", 2), "en"),
    ("template show page", (), TemplateShow("page"), "en"),
    ("模板 查看 销售基础 第2页", (), TemplateShow("销售基础", 2), "zh"),
    ("next", (), NextPage(), "en"),
    ("MORE", (), NextPage(), "en"),
    ("/next", (), NextPage(), "en"),
    ("下一页", (), NextPage(), "zh"),
    ("更多", (), NextPage(), "zh"),
    # review
    ("review start", (), ReviewStart(), "en"),
    ("/Review Status", (), ReviewStatus(), "en"),
    ("权限审核 开始", (), ReviewStart(), "zh"),
    ("权限审核开始", (), ReviewStart(), "zh"),
    ("权限审核 状态", (), ReviewStatus(), "zh"),
    # self-service (section 13): the reason is the rest; the duration is optional
    ("request crm.export for 8h monthly report", (),
     AccessRequest("crm.export", timedelta(hours=8), "monthly report"), "en"),
    ("request crm.export 2d audit prep", (),
     AccessRequest("crm.export", timedelta(days=2), "audit prep"), "en"),
    ("request sales just the report", (), AccessRequest("sales", None, "just the report"), "en"),
    ("申请 crm.export 8小时 导出月报", (),
     AccessRequest("crm.export", timedelta(hours=8), "导出月报"), "zh"),
    ("申请crm.export 导出 月报", (), AccessRequest("crm.export", None, "导出 月报"), "zh"),
    ("requests", (), MyRequests(), "en"),
    ("我的申请", (), MyRequests(), "zh"),
    ("release crm.export", (), Release("crm.export"), "en"),
    ("我用完了 crm.export", (), Release("crm.export"), "zh"),
    ("extend crm.export for 2h not done", (),
     Extend("crm.export", timedelta(hours=2), "not done"), "en"),
    ("续期 crm.export 报表没做完", (), Extend("crm.export", None, "报表没做完"), "zh"),
    ("policy show crm.export", (), PolicyShow("crm.export"), "en"),
    ("策略 crm.export", (), PolicyShow("crm.export"), "zh"),
    ("break-glass crm.export outage now", (), BreakGlass("crm.export", "outage now"), "en"),
    ("紧急授权 crm.export 客户故障", (), BreakGlass("crm.export", "客户故障"), "zh"),
    # mentions are taken in order; extra ones (never used by a token) are ignored
    (
        "template apply t @a @b @c",
        ("x", "y", "z"),
        TemplateApply("t", tuple(map(UserRef, "xyz"))),
        "en",
    ),
    ("admin add @李四", ("only", "extra"), AdminAdd(UserRef("only")), "en"),
    # zero-width and other format characters vanish
    ("who\u200bami", (), WhoAmI(), "en"),
]


@pytest.mark.parametrize(("text", "mentions", "command", "lang"), VALID)
def test_valid_commands(text: str, mentions: Sequence[str], command: Command, lang: Lang) -> None:
    assert parse(text, mentions) == Parsed(command, lang)


def test_every_command_is_in_the_valid_table_in_both_languages() -> None:
    seen = {(type(cmd).command_name, lang) for _, _, cmd, lang in VALID}
    assert seen == {(name, lang) for name in COMMAND_NAMES for lang in LANGS}


# (text, mentions, code, usage_of, language of the error)
# (None: the text shows no language, so the reply uses the configured default)
MALFORMED: list[tuple[str, Sequence[str], str, str | None, Lang | None]] = [
    ("", (), "empty", None, None),
    ("   ", (), "empty", None, None),
    ("/", (), "empty", None, None),
    ("\u3000\n\t", (), "empty", None, None),
    ("x" * 2001, (), "too_long", None, "en"),
    ("help " + "帮" * 2000, (), "too_long", None, "zh"),
    ("hello", (), "unknown_command", None, "en"),
    ("你好", (), "unknown_command", None, "zh"),
    ("😀👍", (), "unknown_command", None, None),
    ("123 !?", (), "unknown_command", None, None),
    ("grant@李四 x", M, "unknown_command", None, "zh"),
    ("whoamii", (), "unknown_command", None, "en"),
    # no arguments expected
    ("whoami now", (), "too_many_arguments", "whoami", "en"),
    ("我的权限 谢谢", (), "too_many_arguments", "whoami", "zh"),
    ("admins x", (), "too_many_arguments", "admins", "en"),
    ("管理员们", (), "too_many_arguments", "admins", "zh"),
    ("pending x", (), "too_many_arguments", "pending", "en"),
    ("template list x", (), "too_many_arguments", "template list", "en"),
    ("导出 模板 x", (), "too_many_arguments", "export template", "zh"),
    ("review start now", (), "too_many_arguments", "review start", "en"),
    ("权限审核 状态 x", (), "too_many_arguments", "review status", "zh"),
    ("request crm.export", (), "missing_argument", "request", "en"),
    ("申请 crm.export 8小时", (), "missing_argument", "request", "zh"),
    ("request crm.export for", (), "missing_argument", "request", "en"),
    ("request crm.export for soon x", (), "bad_duration", "request", "en"),
    ("request crm.export -5d x", (), "bad_duration", "request", "en"),
    ("紧急授权 crm.export", (), "missing_argument", "break-glass", "zh"),
    ("release", (), "missing_argument", "release", "en"),
    ("release a b", (), "too_many_arguments", "release", "en"),
    ("policy", (), "missing_argument", "policy", "en"),
    # who-has
    ("who-has", (), "missing_argument", "who-has", "en"),
    ("谁有", (), "missing_argument", "who-has", "zh"),
    ("who-has a b", (), "too_many_arguments", "who-has", "en"),
    ("谁有 查看客户", (), "bad_name", "who-has", "zh"),
    # users
    ("transfer-owner", (), "missing_argument", "transfer-owner", "en"),
    ("transfer-owner 李四", (), "bad_mention", "transfer-owner", "en"),
    ("转让主管理员 @李四", (), "mention_unresolved", "transfer-owner", "zh"),
    ("admin add", (), "missing_argument", "admin add", "en"),
    ("admin add @a @b", M, "too_many_arguments", "admin add", "en"),
    ("admin add @a @b", ("", "u2"), "mention_unresolved", "admin add", "en"),
    ("admin add uid:", (), "bad_mention", "admin add", "en"),
    ("admin add uid:bad#id", (), "bad_mention", "admin add", "en"),
    ("admin add uid:" + "a" * 65, (), "bad_mention", "admin add", "en"),
    ("移除管理员 张三", (), "bad_mention", "admin remove", "zh"),
    ("role set @a", M, "missing_argument", "role set", "en"),
    ("role set @a sales extra", M, "too_many_arguments", "role set", "en"),
    ("设置角色 @a 销售", M, "bad_name", "role set", "zh"),
    ("role clear", M, "missing_argument", "role clear", "en"),
    ("role clear @a sales", M, "too_many_arguments", "role clear", "en"),
    ("清除角色 sales", (), "bad_mention", "role clear", "zh"),
    ("roles sales", (), "too_many_arguments", "roles", "en"),
    ("角色列表 全部", (), "too_many_arguments", "roles", "zh"),
    ("role", (), "missing_argument", "role", "en"),
    # grant / revoke
    ("grant", (), "missing_argument", "grant", "en"),
    ("grant @a", M, "missing_argument", "grant", "en"),
    ("grant crm.export", (), "bad_mention", "grant", "en"),
    ("grant @a crm,export", M, "bad_name", "grant", "en"),
    ("grant @a " + "a" * 65, M, "bad_name", "grant", "en"),
    ("grant @a crm.export for", M, "missing_argument", "grant", "en"),
    ("grant @a crm.export for 7x", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export for ever", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export 7x", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export 10s", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export 0d", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export -5d", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export −5d", M, "bad_duration", "grant", "en"),
    ("授权 @a crm.export -5天", M, "bad_duration", "grant", "zh"),
    ("授权 @a crm.export －5天", M, "bad_duration", "grant", "zh"),
    ("授权 @a crm.export -5d", M, "bad_duration", "grant", "zh"),
    ("grant @a crm.export 3651d", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export 1.5d", M, "bad_duration", "grant", "en"),
    ("grant @a crm.export please", M, "too_many_arguments", "grant", "en"),
    ("grant @a crm.export 7d extra", M, "too_many_arguments", "grant", "en"),
    ("授权 @a crm.export 7年", M, "bad_duration", "grant", "zh"),
    ("授权 @a crm.export 10秒", M, "bad_duration", "grant", "zh"),
    ("授权 @a", (), "mention_unresolved", "grant", "zh"),
    ("revoke @a", M, "missing_argument", "revoke", "en"),
    ("撤销 @a crm.export 7d", M, "too_many_arguments", "revoke", "zh"),
    # templates
    ("template create", (), "missing_argument", "template create", "en"),
    ("template create t", (), "missing_argument", "template create", "en"),
    ("template create t ,, ,", (), "missing_argument", "template create", "en"),
    ("template create t a b", (), "bad_list", "template create", "en"),
    ("模板 创建 销售 crm.a crm.b", (), "bad_list", "template create", "zh"),
    ("template create t a,b$", (), "bad_name", "template create", "en"),
    ("template create a/b x", (), "bad_name", "template create", "en"),
    ("template create " + "t" * 65 + " x", (), "bad_name", "template create", "en"),
    ("模板 修改 销售 查看客户", (), "bad_name", "template set", "zh"),
    ("template show", (), "missing_argument", "template show", "en"),
    ("template delete t u", (), "too_many_arguments", "template delete", "en"),
    ("template apply", (), "missing_argument", "template apply", "en"),
    ("template apply t", (), "no_target", "template apply", "en"),
    ("模板 应用 销售 ,", (), "no_target", "template apply", "zh"),
    ("template apply t sales", (), "bad_target", "template apply", "en"),
    ("template apply t dept:", (), "bad_name", "template apply", "en"),
    ("template apply t @a @b", ("u1",), "mention_unresolved", "template apply", "en"),
    ("template", (), "missing_argument", "template", "en"),
    ("模板", (), "missing_argument", "template", "zh"),
    ("template lst", (), "unknown_command", "template", "en"),
    ("模板 新建 x", (), "unknown_command", "template", "zh"),
    ("admin", (), "missing_argument", "admin", "en"),
    ("admin promote @a", M, "unknown_command", "admin", "en"),
    ("role", (), "missing_argument", "role", "en"),
    ("review", (), "missing_argument", "review", "en"),
    ("权限审核 结束", (), "unknown_command", "review", "zh"),
    # cancel
    ("cancel", (), "missing_argument", "cancel", "en"),
    ("cancel abc", (), "bad_request_id", "cancel", "en"),
    ("cancel R-0", (), "bad_request_id", "cancel", "en"),
    ("cancel R--1", (), "bad_request_id", "cancel", "en"),
    ("cancel R-" + "9" * 13, (), "bad_request_id", "cancel", "en"),
    ("取消 申请", (), "bad_request_id", "cancel", "zh"),
    ("cancel R-12 R-13", (), "too_many_arguments", "cancel", "en"),
    # export / import
    ("export pdf", (), "bad_format", "export", "en"),
    ("export csv xlsx", (), "too_many_arguments", "export", "en"),
    ("导出 pdf", (), "bad_format", "export", "zh"),
    ("import", (), "missing_argument", "import", "en"),
    ("import everything", (), "bad_format", "import", "en"),
    ("导入 全部", (), "bad_format", "import", "zh"),
    ("import add now", (), "too_many_arguments", "import", "en"),
    ("import undo", (), "missing_argument", "import undo", "en"),
    ("导入 撤销 批次/1", (), "bad_name", "import undo", "zh"),
    # audit
    ("audit 0", (), "bad_number", "audit", "en"),
    ("audit 5001", (), "bad_number", "audit", "en"),
    ("who-has crm.export page 0", (), "bad_page", "who-has", "en"),
    ("who-has crm.export page x", (), "bad_page", "who-has", "en"),
    ("whoami page -1", (), "bad_page", "whoami", "en"),
    ("whoami page 100000", (), "bad_page", "whoami", "en"),
    ("我的权限 第零页", (), "bad_page", "whoami", "zh"),
    ("待审批 第1.5页", (), "bad_page", "pending", "zh"),
    ("next 2", (), "too_many_arguments", "next", "en"),
    ("下一页 谁有", (), "too_many_arguments", "next", "zh"),
    ("audit -5", (), "bad_number", "audit", "en"),
    ("audit 1.5", (), "bad_number", "audit", "en"),
    ("audit 99999999999", (), "bad_number", "audit", "en"),
    ("audit 5 6", (), "too_many_arguments", "audit", "en"),
    ("audit @a @b", M, "too_many_arguments", "audit", "en"),
    ("audit @a 5 x", M, "too_many_arguments", "audit", "en"),
    ("audit @a x", M, "bad_number", "audit", "en"),
    ("audit 李四", (), "bad_mention", "audit", "en"),
    ("审计 @李四", (), "mention_unresolved", "audit", "zh"),
]


@pytest.mark.parametrize(("text", "mentions", "code", "usage_of", "lang"), MALFORMED)
def test_malformed_input(
    text: str, mentions: Sequence[str], code: str, usage_of: str | None, lang: Lang | None
) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, mentions)
    err = info.value
    assert (err.code, err.usage_of, err.lang) == (code, usage_of, lang)
    assert err.code in ERROR_CODES


@pytest.mark.parametrize(("text", "mentions", "code", "usage_of", "lang"), MALFORMED)
@pytest.mark.parametrize("render_lang", LANGS)
def test_error_renders_the_usage_in_either_language(
    text: str,
    mentions: Sequence[str],
    code: str,
    usage_of: str | None,
    lang: Lang | None,
    render_lang: Lang,
) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, mentions)
    message = info.value.render(render_lang)
    assert message.strip()
    assert "{" not in message  # every placeholder was filled
    if usage_of is not None:
        for line in usage(usage_of, render_lang).split("\n"):
            assert f"`{line}`" in message
    if render_lang == lang:
        assert info.value.render() == message


def test_render_defaults_to_the_users_language_and_echoes_the_input() -> None:
    with pytest.raises(ParseError) as info:
        parse("授权 @李四 crm.export 7x", M)
    assert info.value.render() == (
        "抱歉，无法识别时长“7x”。请写大于零的整数加单位：30分钟、12小时、7天、2周（最长 3650 天）。\n"
        "用法：`授权 @用户 <角色或权限> [<时长>]`"
    )
    assert info.value.render("en").endswith(
        "Usage: `grant @user <role-or-permission> [for <duration>]`"
    )


def test_echoed_input_is_shortened_and_cannot_break_markdown() -> None:
    with pytest.raises(ParseError) as info:
        parse("cancel `" + "x" * 100, ())
    message = info.value.render()
    assert "x" * 100 not in message
    assert "“'x" in message


@pytest.mark.parametrize(
    ("text", "lang", "suggestion"),
    [
        ("whoamii", "en", "whoami"),
        ("whoam", "en", "whoami"),
        ("grnat @a x", "en", "grant"),
        ("pendng", "en", "pending"),
        ("admin-add @a", "en", "admin add"),
        ("转让管理员", "zh", "转让主管理员"),
        ("转让管理员@李四", "zh", "转让主管理员"),
        ("我的权利", "zh", "我的权限"),
        ("帮主", "zh", "帮助"),
        ("whoamii 谢谢", "zh", "我的权限"),  # in the language the user wrote in
        ("template lst", "en", "template list"),
        ("模板 列单", "zh", "模板 列表"),
        ("模板 新建 x", "zh", "模板 创建"),
        ("template frobnicate", "en", None),
        ("hello", "en", "help"),
        ("good morning", "en", None),
        ("你好", "zh", None),
    ],
)
def test_did_you_mean(text: str, lang: Lang, suggestion: str | None) -> None:
    with pytest.raises(ParseError) as info:
        parse(text, M)
    err = info.value
    assert (err.code, err.lang, err.suggestion) == ("unknown_command", lang, suggestion)
    message = err.render()
    if suggestion is not None:
        assert f"`{suggestion}`" in message
    if err.usage_of is None:
        assert f"`{primary('help', lang)}`" in message


def test_suggestion_is_translated_when_rendered_in_the_other_language() -> None:
    with pytest.raises(ParseError) as info:
        parse("转让管理员 @李四", M)
    assert "`转让主管理员`" in info.value.render()
    assert "`transfer-owner`" in info.value.render("en")
    assert "`help`" in info.value.render("en")


@pytest.mark.parametrize("lang", LANGS)
def test_negative_durations_are_refused_alike_in_either_unit(lang: Lang) -> None:
    def refusal(text: str) -> str:
        with pytest.raises(ParseError) as info:
            parse(text, M)
        assert info.value.code == "bad_duration"
        # (the echo is escaped: a leading "-" shows as its full-width look-alike)
        return info.value.render(lang).replace(shown(info.value.params["got"]), "<got>")

    english, chinese = refusal("grant @a crm.export -5d"), refusal("授权 @a crm.export -5天")
    assert english == chinese
    assert ("above zero" if lang == "en" else "大于零") in english


@pytest.mark.parametrize("what", sorted(CATALOGS["en"].charset))
def test_bad_name_reads_as_english_for_every_kind_of_name(what: str) -> None:
    message = ParseError("bad_name", "en", params={"got": "a/b", "what": what}).render()
    assert "valid a" not in message and "valid the" not in message
    assert f"cannot be used as {CATALOGS['en'].args[what]}:" in message


def test_too_long_is_checked_before_anything_else() -> None:
    assert parse("help " + "x" * 1995, ()).command == Help("x" * 1995)
    with pytest.raises(ParseError) as info:
        parse("help " + "x" * 1996, ())
    assert info.value.code == "too_long"
    assert info.value.params == {"length": "2001", "max": "2000"}


def test_too_long_names_the_whole_length_of_a_cut_message() -> None:
    # The router hands the parser at most MAX_LENGTH + 1 characters, and the real length.
    with pytest.raises(ParseError) as info:
        parse(("x" * 5000)[:2001], (), length=5000)
    assert info.value.params == {"length": "5000", "max": "2000"}
    assert "5000" in info.value.render("en") and "5000" in info.value.render("zh")


def test_a_message_without_letters_leaves_the_language_to_the_default() -> None:
    with pytest.raises(ParseError) as info:
        parse("🙂🎉", ())
    assert info.value.lang is None
    assert info.value.render() == info.value.render("zh")   # zh-CN is the default


def test_empty_renders_a_hint_to_send_help() -> None:
    with pytest.raises(ParseError) as info:
        parse("  ", ())
    assert "`help`" in info.value.render("en")
    assert "`帮助`" in info.value.render("zh")


# --- help -------------------------------------------------------------------------------


@pytest.mark.parametrize("lang", LANGS)
def test_help_lists_every_command_with_its_word(lang: Lang) -> None:
    text = render_help(None, lang)
    for name in COMMAND_NAMES:
        assert f"`{usage(name, lang)}`" in text
        assert CATALOGS[lang].description[name] in text
    assert len(text.splitlines()) >= len(COMMAND_NAMES)


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_help_on_one_command(name: str, lang: Lang) -> None:
    text = render_help(name, lang)
    assert usage(name, lang) in text
    assert CATALOGS[lang].description[name][1:] in text
    assert CATALOGS[lang].example[name] in text
    # the other language's word for the same command leads to the same page
    other: Lang = "zh" if lang == "en" else "en"
    assert render_help(primary(name, other), lang) == text


@pytest.mark.parametrize("lang", LANGS)
def test_help_on_a_group_lists_its_commands(lang: Lang) -> None:
    text = render_help("模板", lang)
    assert usage("template create", lang) in text
    assert usage("template apply", lang) in text
    assert usage("grant", lang) not in text


@pytest.mark.parametrize(
    ("lang", "line"),
    [("en", "no command called “frobnicate”"), ("zh", "没有名为“frobnicate”的命令")],
)
def test_help_on_an_unknown_topic(lang: Lang, line: str) -> None:
    text = render_help("frobnicate", lang)
    assert line in text.splitlines()[0]
    assert render_help(None, lang) in text


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_every_example_parses_to_its_command(name: str, lang: Lang) -> None:
    parsed = parse(CATALOGS[lang].example[name], M)
    assert type(parsed.command).command_name == name
    assert parsed.lang == lang


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("name", COMMAND_NAMES)
def test_usage_lines_start_with_the_command_word(name: str, lang: Lang) -> None:
    assert usage(name, lang).lower().startswith(primary(name, lang))


def test_usage_of_an_unknown_name() -> None:
    with pytest.raises(ValueError, match="unknown command"):
        usage("frobnicate", "en")


def test_command_names_are_unique_and_canonical() -> None:
    assert len(set(COMMAND_NAMES)) == len(COMMAND_NAMES) == 34
    for name in COMMAND_NAMES:
        assert primary(name, "en") == name


# --- properties -------------------------------------------------------------------------

WORD_TEXTS = sorted({w.text for w in WORDS})
PIECES = st.one_of(
    st.sampled_from(WORD_TEXTS),
    st.sampled_from(["@", "@李四", "@Bob", "uid:", "uid:abc", "dept:", "dept:销售", "for", "为期"]),
    st.sampled_from(["7d", "7天", "10s", "0", "R-1", "r", "#", "xlsx", "csv", "替换", "add"]),
    st.from_regex(r"[0-9]{1,14}", fullmatch=True),
    st.text(alphabet="，、,.:：*-_/／@`$ \u3000\t\n\u200b", max_size=4),
    st.text(alphabet=st.characters(min_codepoint=0x4E00, max_codepoint=0x4E2F), max_size=4),
    st.text(max_size=6),
)
COMMANDISH = st.lists(PIECES, max_size=12).flatmap(
    lambda parts: st.lists(
        st.sampled_from([" ", "", "\u3000", ",", "  "]), min_size=len(parts), max_size=len(parts)
    ).map(lambda seps: "".join(p + s for p, s in zip(parts, seps, strict=True)))
)
MENTIONS = st.lists(st.one_of(st.text(max_size=8), st.just("u1")), max_size=5)
FAST = settings(
    deadline=timedelta(milliseconds=200),
    max_examples=300,
    suppress_health_check=[HealthCheck.too_slow],
)


def _check_total(text: str, mentions: Sequence[str]) -> None:
    try:
        parsed = parse(text, mentions)
    except ParseError as err:
        assert err.code in ERROR_CODES
        assert err.lang in (*LANGS, None)
        for lang in LANGS:
            assert err.render(lang).strip()
        if err.usage_of is not None:
            usage(err.usage_of, "en")
        return
    assert isinstance(parsed, Parsed)
    assert type(parsed.command).command_name in COMMAND_NAMES
    assert parsed.lang in LANGS


@FAST
@given(st.text(), MENTIONS)
def test_parse_is_total_on_any_text(text: str, mentions: list[str]) -> None:
    _check_total(text, mentions)


@FAST
@given(COMMANDISH, MENTIONS, st.sampled_from(["", " ", "/", "／"]))
def test_parse_is_total_on_command_like_text(text: str, mentions: list[str], prefix: str) -> None:
    _check_total(prefix + text, mentions)


@FAST
@given(
    st.sampled_from(
        ["", "help ", "grant @a x ", "template create t ", "template apply t ", "audit "]
    ),
    st.sampled_from(
        ["a,", "@x ", ",", " ", "7", "@", "uid:a ", "dept:d ", "模", "\u3000", "a" * 70]
    ),
    st.integers(1, 2100),
)
def test_parse_is_fast_on_long_repetitive_text(head: str, unit: str, times: int) -> None:
    text = (head + unit * times)[: 1990 + times % 20]
    _check_total(text, ["u"] * (times % 50))


# Round-trip: write a command back out, as a user of either language would, and re-read it.
USER_IDS = st.from_regex(r"[A-Za-z0-9_\-.$@]{1,64}", fullmatch=True)
NAMES = st.from_regex(r"[A-Za-z0-9_.*:\-]{1,64}", fullmatch=True)
DISPLAY = st.text(
    alphabet=st.characters(categories=["L", "N"], exclude_characters="\uff00"),
    min_size=1,
    max_size=8,
)
DURATIONS = st.one_of(st.none(), st.integers(1, 3650 * 24 * 60).map(lambda m: timedelta(minutes=m)))


@st.composite
def written_user(draw: st.DrawFn) -> tuple[UserRef, str, list[str]]:
    user_id = draw(USER_IDS)
    if draw(st.booleans()):
        return UserRef(user_id), f"uid:{user_id}", []
    return UserRef(user_id), f"@{draw(DISPLAY)}", [user_id]


def _write(command: Grant | Revoke | RoleSet, who: str, lang: Lang, for_word: bool) -> str:
    word = primary(type(command).command_name, lang)
    if isinstance(command, RoleSet):
        return f"{word} {who} {command.role}"
    text = f"{word} {who} {command.name}"
    if isinstance(command, Grant) and command.duration is not None:
        text += (" for " if for_word else " ") + format_duration(command.duration, lang)
    return text


@given(
    written_user(),
    NAMES,
    DURATIONS,
    st.sampled_from(["grant", "revoke", "role set"]),
    st.sampled_from(LANGS),
    st.booleans(),
)
def test_round_trip(
    user: tuple[UserRef, str, list[str]],
    name: str,
    duration: timedelta | None,
    kind: str,
    lang: Lang,
    for_word: bool,
) -> None:
    target, who, mentions = user
    command: Grant | Revoke | RoleSet
    if kind == "grant":
        command = Grant(target, name, duration)
    elif kind == "revoke":
        command = Revoke(target, name)
    else:
        command = RoleSet(target, name)
    text = _write(command, who, lang, for_word)
    assert parse(text, mentions) == Parsed(command, lang)


# ---- display names with spaces: DingTalk ends each mention with U+2005 --------------------

END = "\u2005"


@pytest.mark.parametrize(("text", "want"), [
    (f"grant @Tom Lee{END}crm.export", Grant(UserRef("u1"), "crm.export")),
    (f"grant @Tom Lee{END} crm.export for 3d",
     Grant(UserRef("u1"), "crm.export", timedelta(days=3))),
    (f"授权 @张 三{END}crm.export", Grant(UserRef("u1"), "crm.export")),
    (f"transfer-owner @Mary Ann Smith{END}going on leave",
     TransferOwner(UserRef("u1"), "going on leave")),
    ("grant @Tom crm.export", Grant(UserRef("u1"), "crm.export")),   # no U+2005: as before
])
def test_a_mention_ends_at_its_four_per_em_space(text: str, want: object) -> None:
    assert parse(text, ["u1"]).command == want


@given(st.lists(st.text(alphabet=st.characters(whitelist_categories=("L",)), min_size=1,
                        max_size=8), min_size=1, max_size=4))
def test_any_display_name_is_one_mention(words: list[str]) -> None:
    name = " ".join(words)
    got = parse(f"revoke @{name}{END}crm.export", ["u1"]).command
    assert got == Revoke(UserRef("u1"), "crm.export")
