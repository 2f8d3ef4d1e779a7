"""``baton sandbox`` driven by scripted lines: as the real command (``--script``) in a
subprocess, and in-process (the chat loop fed by a generator that waits, with deadlines, for
the simulator before its next line) on each storage backend."""

from __future__ import annotations

import re
import subprocess
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bot.app import BatonApp
from bot.cli.sandbox import (
    DEMO_GROUP,
    DEMO_ROLE_SYNC,
    ChatState,
    _chat,
    sandbox_settings,
    sim_settings,
)
from dingtalk_sim import Simulator
from dingtalk_sim.roles import ADD_EMPS_PATH, REMOVE_EMPS_PATH
from tests.e2e.helpers import baton
from tests.support import edit

pytestmark = pytest.mark.e2e

CARD = "baton-dingsandboxcorp-R{}"
Step = str | Callable[[], Any]


def sandbox(tmp_path: Path, lines: Sequence[str], *args: str) -> subprocess.CompletedProcess[str]:
    """The real ``baton sandbox --script`` over ``lines``, in ``tmp_path``."""
    script = tmp_path / "script.txt"
    script.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return baton("sandbox", "--db", str(tmp_path / "sandbox.db"), "--script", str(script),
                 *args, cwd=tmp_path, timeout=120)


async def feed(sim: Simulator, steps: Sequence[Step]) -> AsyncIterator[str]:
    """Yield the lines; a callable step is a condition to wait for (30 s) before the next."""
    for step in steps:
        if callable(step):
            await sim.until(step, timeout=30, what=getattr(step, "__doc__", None) or "a step")
        else:
            print(f"> {step}")
            yield step


async def chat(app: BatonApp, state: ChatState, steps: Sequence[Step]) -> None:
    await app.wait_connected()
    await _chat(state, feed(state.sim, steps))


@pytest.fixture
async def app(sim: Simulator, db_url: str) -> AsyncIterator[BatonApp]:
    async with BatonApp(sim_settings(sim, db_url, locale={"default": "en"})) as a:
        yield a


def test_bad_input_gets_a_message_and_the_sandbox_goes_on(tmp_path: Path) -> None:
    r = sandbox(tmp_path, [
        "/click approve",                       # no card yet
        "转让主管理员 @李四",                    # a card: baton-dingsandboxcorp-R1
        "/click approve no-such-card",
        "/click",
        "/frobnicate",
        '/as "unbalanced',
        "/as",
        "/click frobnicate",                    # an action the card does not have
        "/cards",
    ], "--lang", "en")
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    out = r.stdout
    assert "There is no card to click yet." in out
    assert f"There is no card no-such-card. The cards are: {CARD.format(1)}" in out
    assert "usage: /click <action> [card id]" in out
    assert "The sandbox has no command /frobnicate." in out
    assert "Check that its quotes are paired." in out
    assert "usage: /as <user>" in out
    assert "frobnicate" in out.split("> /click frobnicate", 1)[1]
    # The last line still ran: the chat survived everything before it.
    assert f"  {CARD.format(1)}: " in out.split("> /cards", 1)[1]


async def test_a_line_that_fails_is_reported_and_the_chat_goes_on(
        sim: Simulator, app: BatonApp, capsys: pytest.CaptureFixture[str]) -> None:
    # A member the simulated directory does not know: the simulator refuses the message.
    state = ChatState(sim, user="ghost", lang="en")
    await chat(app, state, ["whoami", "/as 李四", "whoami"])
    out = capsys.readouterr().out
    assert "The sandbox could not do “whoami”: KeyError" in out
    assert "now speaking as 李四 (lisi)" in out
    assert "**李四** (lisi)" in out.rsplit("> whoami", 1)[1]


async def test_in_an_unknown_conversation_is_refused_and_lists_them(
        sim: Simulator, app: BatonApp, capsys: pytest.CaptureFixture[str]) -> None:
    state = ChatState(sim, lang="en")
    await chat(app, state, ["/in nowhere", "whoami", "/in", "/in dm", "whoami"])
    out = capsys.readouterr().out
    refusal = out.split("> /in nowhere", 1)[1].split("> whoami", 1)[0]
    assert ("There is no conversation “nowhere”; you are still in the admin group "
            f"权限交接工作群 ({DEMO_GROUP}).") in refusal
    assert f"group  the admin group 权限交接工作群 ({DEMO_GROUP})" in refusal
    assert "dm     your one-to-one chat with Baton" in refusal
    assert "usage: /in <conversation>" in out.split("> /in\n", 1)[1]
    # The first whoami was said in the group, still the current conversation; after /in dm,
    # one-to-one.
    assert [m.conversation_id for m in sim.messages() if "My permissions" in m.text] == [
        DEMO_GROUP, "cidOTOzhangsan"]


def files_sent(sim: Simulator, n: int) -> Callable[[], bool]:
    def sent() -> bool:
        """the file messages Baton sends"""
        return len([m for m in sim.messages() if m.msgtype == "sampleFile"]) >= n
    return sent


def saved_paths(out: str) -> list[Path]:
    return [Path(line.rsplit(", saved to ", 1)[1]) for line in out.splitlines()
            if ", saved to " in line]


async def test_export_is_saved_under_the_files_folder_and_its_path_printed(
        sim: Simulator, app: BatonApp, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "files"
    state = ChatState(sim, lang="en", files=folder)
    await chat(app, state, ["export", files_sent(sim, 1), "export", files_sent(sim, 2), "/users"])
    out = capsys.readouterr().out
    paths = saved_paths(out)
    assert [line.split("] ", 1)[1].startswith("file baton-permissions-") for line in
            out.splitlines() if ", saved to " in line] == [True, True]
    assert len(paths) == 2 and paths[0] != paths[1]  # the second does not overwrite the first
    for path in paths:
        assert path.parent == folder.resolve() and path.suffix == ".xlsx"
        wb = openpyxl.load_workbook(path, read_only=True)
        assert wb.sheetnames[0] == "permissions" and "effective" in wb.sheetnames
        rows = [r[:3] for r in wb["permissions"].iter_rows(values_only=True)]
        assert ("zhangsan", "张三", "level") in rows


def test_the_files_folder_is_printed_at_start_and_can_be_chosen(tmp_path: Path) -> None:
    r = sandbox(tmp_path, ["/quit"], "--lang", "en", "--files", "out/files")
    assert r.returncode == 0, r.stderr
    folder = (tmp_path / "out" / "files").resolve()
    assert f"Files Baton sends are saved in {folder}\n" in r.stdout
    assert folder.is_dir()
    default = sandbox(tmp_path, ["/quit"])
    assert f"Baton 发送的文件保存在 {(tmp_path / 'baton-sandbox-files').resolve()}" in default.stdout


async def test_file_sends_an_import_one_to_one_and_gets_its_dry_run_card(
        sim: Simulator, app: BatonApp, tmp_path: Path,
        capsys: pytest.CaptureFixture[str]) -> None:
    folder, edited = tmp_path / "files", tmp_path / "edited table.xlsx"

    def edit_export() -> bool:
        """the export, edited: 钱七 gains crm.report.view"""
        exported = next(folder.glob("*.xlsx")).read_bytes()
        edited.write_bytes(edit(exported, add=[["qianqi", "钱七", "grant", "crm.report.view",
                                                "", ""]]))
        return True

    def request_card() -> bool:
        """the import request's card"""
        return CARD.format(1) in sim.cards()

    state = ChatState(sim, lang="en", files=folder)
    await chat(app, state, [
        "/as 钱七", "whoami",               # Baton knows members who have written to it
        "/as 李四", "/file", f"/file {tmp_path / 'missing.xlsx'}",
        "export", files_sent(sim, 1), edit_export,
        "/in group",                      # a file goes one-to-one wherever the chat is
        f'/file "{edited}"', request_card, "/cards"])
    out = capsys.readouterr().out
    assert "usage: /file <path>" in out
    assert f"The file {tmp_path / 'missing.xlsx'} cannot be read" in out
    sent = out.split(f'> /file "{edited}"', 1)[1]
    assert f"edited table.xlsx ({edited.stat().st_size} bytes) sent to Baton one-to-one by " \
           "李四 (lisi)" in sent
    assert "[Baton → 单聊 cidOTOlisi] ### Import dry run" in sent
    assert "qianqi grant crm.report.view" in sent
    assert f"{CARD.format(1)}: " in sent.split("> /cards", 1)[1]
    # What Baton downloaded is the file's bytes.
    replies = [m.text for m in sim.messages("cidOTOlisi") if "Import dry run" in m.text]
    assert len(replies) == 1 and "edited table.xlsx" in replies[0]


async def test_console_owner_plays_the_console_step_and_baton_verifies_it(
        sim: Simulator, app: BatonApp, capsys: pytest.CaptureFixture[str]) -> None:
    console = CARD.format(1) + "-console"

    def console_card() -> bool:
        """the console step's card"""
        return console in sim.cards()

    state = ChatState(sim, lang="en")
    await chat(app, state, [
        "/console", "/console owner 孙八",
        "转让主管理员 @李四", "/as 李四", "/click accept", console_card, "/as 张三",
        f"/click done {console}",         # too early: DingTalk still shows 张三
        "/console owner 李四", f"/click done {console}", "/console", "/help"])
    out = capsys.readouterr().out
    assert ("DingTalk's administrators now: main 张三 (zhangsan); sub 李四 (lisi), 王五 (wangwu)"
            in out.split("> /console\n", 1)[1])
    assert "孙八 (sunba) is inactive; the DingTalk console cannot make them" in out
    early, played = out.split("> /console owner 李四", 1)
    assert "DingTalk does not show 李四 (lisi) as the main administrator yet" in early
    assert ("the main administrator is now 李四 (lisi); 张三 (zhangsan) is no longer an "
            "administrator") in played
    assert "DingTalk now shows 李四 (lisi) as the main administrator; transfer R-1 is " \
           "complete" in played
    assert sim.user("lisi").admin_level == 1 and sim.user("zhangsan").admin_level == 0
    # 李四's accept notice is shown once, not again with each later update of the card.
    assert out.count(f"[card {CARD.format(1)}, only you see]") == 1
    assert ("DingTalk's administrators now: main 李四 (lisi); sub 王五 (wangwu)"
            in played.rsplit("> /console\n", 1)[1])
    help_text = played.rsplit("> /help", 1)[1]
    assert "/file <path>" in help_text and "/console owner <user>" in help_text


async def test_leave_and_console_admin_play_org_events(
        sim: Simulator, app: BatonApp, capsys: pytest.CaptureFixture[str]) -> None:
    def drift_card() -> bool:
        """the drift card"""
        return CARD.format(1) in sim.cards()

    state = ChatState(sim, lang="en")
    await chat(app, state, [
        "/leave", "/leave nobody", "/as 李四", "role set @赵六 sales", "/leave 赵六",
        "/leave 赵六", "/console admin remove 钱七", "/console admin add 钱七", drift_card,
        "/click adopt", "/as 张三", "/click adopt", "/help"])
    out = capsys.readouterr().out
    assert "usage: /leave <user>" in out
    left = out.split("> /leave 赵六", 1)[1]
    assert "DingTalk (simulated): 赵六 (zhaoliu) has left; user_leave_org pushed" in left
    assert "has left** (DingTalk's leave event)" in left and "role sales" in left
    assert "赵六 (zhaoliu) has left already (inactive); nothing changed." in out
    assert "钱七 (qianqi) is that already in DingTalk's console; nothing changed." in out
    assert "钱七 (qianqi) is now a sub-administrator; org_admin_add pushed" in out
    adopted = out.split("> /as 张三", 1)[1]
    assert "status=applied" in adopted
    assert sim.user("zhaoliu").active is False and sim.user("qianqi").admin_level == 2
    help_text = out.rsplit("> /help", 1)[1]
    assert "/leave <user>" in help_text and "/console admin add|remove <user>" in help_text


def test_the_demo_shows_a_member_asking_and_an_approver_deciding(tmp_path: Path) -> None:
    """The demo catalog's policies (issue 18): 钱七 asks one-to-one, the card reaches their
    manager 赵六, who approves; a short report is approved by policy at once."""
    r = sandbox(tmp_path, [
        "/as 钱七",
        "/in dm",
        "申请 finance.invoice 4小时 给客户开月结发票",
        "/as 赵六",
        f"/click approve {CARD.format(1)}-dmc",
        "/as 钱七",
        "我的申请",
        "申请 crm.report.view 2小时 看周报",
        "策略 finance.invoice",
    ])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "已发起申请 **R-1**" in out and "赵六" in out
    assert "R-1** 已生效" in out                        # R-1 applied, told to 钱七
    assert "按策略自动批准" in out
    assert "申请人的直属主管" in out
def test_the_sandbox_serves_the_decision_api_and_prints_its_url_and_a_demo_token(
        tmp_path: Path) -> None:
    r = sandbox(tmp_path, ["/quit"], "--lang", "en")
    assert r.returncode == 0, r.stderr
    m = re.search(r"Decision API: (http://127\.0\.0\.1:\d+/v1) \(demo token (baton_\S+)\)",
                  r.stdout)
    assert m, r.stdout
    assert f"curl -H 'Authorization: Bearer {m[2]}' '{m[1]}/check?user=zhaoliu" in r.stdout


def holders(sim: Simulator, role: str, want: list[str]) -> Callable[[], bool]:
    def held() -> bool:
        return sim.role_holders("Baton", role) == want
    held.__doc__ = f"DingTalk's {role} label on exactly {want}"
    return held


async def test_role_sync_plays_a_console_change_and_reconcile_fixes_it(
        sim: Simulator, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The sandbox's own settings: role set puts the 销售 label on 赵六 in DingTalk; a label
    given and one taken in the console are found by /reconcile, fixed (enforce) and
    summarised to the alert group; /calls counts the calls by API."""
    async with BatonApp(sandbox_settings(sim, db_url, lang="en")) as app:
        state = ChatState(sim, lang="en", app=app)
        await chat(app, state, [
            "/roles", "/as 李四", "role set @赵六 sales", holders(sim, "销售", ["zhaoliu"]),
            "role set @钱七 analyst", holders(sim, "分析师", ["qianqi"]), "/roles",
            "/console role add 销售 王五", "/console role remove analyst 钱七",
            "/console role add sales 王五", "/console role remove 分析师 赵六",
            "/console role add nothing 钱七", "/console role add", "/console role add 销售 nobody",
            "/roles", "/reconcile",
            holders(sim, "销售", ["zhaoliu"]), holders(sim, "分析师", ["qianqi"]),
            "/roles", "/reconcile", "/calls", "/help"])
    out = capsys.readouterr().out

    def after(line: str, nth: int = 1) -> str:
        """What was printed after the ``nth`` ``line`` up to the next typed line."""
        return out.split(f"> {line}\n", nth)[nth].split("\n> ", 1)[0]

    assert "分析师 (analyst): none" in after("/roles") and "销售 (sales): none" in after("/roles")
    assert "销售 (sales): 赵六 (zhaoliu)" in after("/roles", 2)
    assert "分析师 (analyst): 钱七 (qianqi)" in after("/roles", 2)
    assert ("王五 (wangwu) now carries the role label Baton/销售. DingTalk does not tell Baton"
            in after("/console role add 销售 王五"))
    assert "钱七 (qianqi) no longer carries the role label Baton/分析师" in after(
        "/console role remove analyst 钱七")
    assert "王五 (wangwu) carries the 销售 label in DingTalk already; nothing changed." in out
    assert "赵六 (zhaoliu) does not carry the 分析师 label in DingTalk; nothing changed." in out
    assert ("Baton does not sync a role “nothing”. The synced roles: 分析师 (analyst), "
            "销售 (sales)") in out
    assert "usage: /console role add|remove <role> <user>" in after("/console role add")
    assert "no such demo member" in after("/console role add 销售 nobody")
    played = after("/roles", 3)
    assert "销售 (sales): 赵六 (zhaoliu), 王五 (wangwu)" in played
    assert "分析师 (analyst): none" in played
    found = after("/reconcile")
    assert "Role reconcile done (enforce): 2 difference(s), audited" in found
    assert "销售: DingTalk also has 王五 (wangwu) (enforce: Baton removes it" in found
    assert "分析师: DingTalk lacks 钱七 (qianqi) (enforce: Baton adds it" in found
    assert "[Baton → 群] ### " in found and "DingTalk role reconcile: 2 differences" in found
    fixed = after("/roles", 4)
    assert "销售 (sales): 赵六 (zhaoliu)\n" in fixed + "\n" and "王五" not in fixed
    assert "分析师 (analyst): 钱七 (qianqi)" in fixed
    assert "DingTalk matches Baton, no differences." in after("/reconcile", 2)
    calls = after("/calls")
    # Three labels through the feed (two role sets, the fix's add) and one removal.
    assert f"{sim.role_calls(ADD_EMPS_PATH):6}  {ADD_EMPS_PATH}" in calls
    assert f"{sim.role_calls(REMOVE_EMPS_PATH):6}  {REMOVE_EMPS_PATH}" in calls
    assert sim.role_calls(ADD_EMPS_PATH) == 3 and sim.role_calls(REMOVE_EMPS_PATH) == 1
    assert "of a budget of 10000 (dingtalk.monthly_call_budget)" in calls
    help_text = out.rsplit("> /help", 1)[1]
    for usage in ("/roles", "/console role add|remove <role> <user>", "/reconcile", "/calls"):
        assert usage in help_text


async def test_console_role_deny_plays_a_refused_permission_alerted_once(
        sim: Simulator, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    def refusal() -> bool:
        """the refusal alerted in the admin group"""
        return any("refused a role sync call" in m.text for m in sim.messages(DEMO_GROUP))

    async with BatonApp(sandbox_settings(sim, db_url, lang="en")) as app:
        state = ChatState(sim, lang="en", app=app)
        await chat(app, state, [
            "/console role deny", "/console role deny", "/as 李四", "role set @赵六 sales",
            refusal, "/reconcile", "/roles", "/console role allow", "/reconcile",
            holders(sim, "销售", ["zhaoliu"]), "/roles"])
    out = capsys.readouterr().out
    assert out.count("every role call is refused (60011)") == 2
    unread = out.split("> /reconcile", 1)[1].split("> /console role allow", 1)[0]
    assert "could not read DingTalk's role labels" in unread
    assert "销售 (sales): none" in unread and "Role reconcile done" not in unread
    fixed = out.split("> /console role allow", 1)[1]
    assert "role calls are answered again" in fixed
    assert "销售: DingTalk lacks 赵六 (zhaoliu) (enforce: Baton adds it in DingTalk)" in fixed
    assert "销售 (sales): 赵六 (zhaoliu)" in fixed.rsplit("> /roles", 1)[1]
    # Refused twice (the parked call, the reconcile's read), alerted once.
    assert len([m for m in sim.messages(DEMO_GROUP)
                if "refused a role sync call" in m.text]) == 1


async def test_a_configured_report_mode_is_kept_and_only_alerts(
        sim: Simulator, db_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = sim_settings(sim, db_url, integrations={
        "dingtalk_roles": {**DEMO_ROLE_SYNC, "map": {"sales": "销售"}, "mode": "report"}})
    async with BatonApp(sandbox_settings(sim, db_url, base, lang="en")) as app:
        state = ChatState(sim, lang="en", app=app)
        await chat(app, state, ["/console role add 销售 钱七", "/reconcile", "/roles"])
    out = capsys.readouterr().out
    found = out.split("> /reconcile", 1)[1]
    assert "Role reconcile done (report): 1 difference(s)" in found
    assert "销售: DingTalk also has 钱七 (qianqi) (report: alerted only" in found
    assert "DingTalk role reconcile (report only): 1 differences" in found   # the alert
    shown = out.split("> /roles", 1)[1]
    assert "(sync mode report)" in shown and "销售 (sales): 钱七 (qianqi)" in shown
    assert "分析师" not in shown                                   # the configured map
    assert sim.role_holders("Baton", "销售") == ["qianqi"]
    assert sim.role_calls(REMOVE_EMPS_PATH) == 0


async def test_without_role_sync_the_role_commands_say_so(
        sim: Simulator, app: BatonApp, capsys: pytest.CaptureFixture[str]) -> None:
    state = ChatState(sim, lang="en", app=app)       # the plain settings: the sync is off
    await chat(app, state, ["/roles", "/reconcile", "/console role add 销售 钱七", "/calls"])
    await chat(app, ChatState(sim, lang="en"), ["/calls"])
    out = capsys.readouterr().out
    assert out.count("DingTalk role sync (integrations.dingtalk_roles) is off") == 3
    assert "/v1.0/oauth2/accessToken" in out and "DingTalk API calls in all" in out
    assert "No Baton runs in this chat" in out
    assert sim.role_holders("Baton", "销售") == []


def test_the_sandbox_command_syncs_roles_in_chinese(tmp_path: Path) -> None:
    """The real command: its demo config turns the role sync on; a console label is found
    by /reconcile and summarised to the admin group."""
    r = sandbox(tmp_path, ["/console role add 销售 钱七", "/roles", "/reconcile", "/calls"])
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "钱七 (qianqi) 加上了角色标签「Baton/销售」" in out
    assert "销售 (sales): 钱七 (qianqi)" in out.split("> /roles", 1)[1]
    found = out.split("> /reconcile", 1)[1]
    assert "角色对账完成（enforce）：1 处差异" in found
    assert "销售：钉钉多了 钱七 (qianqi)（enforce：Baton 从钉钉去掉）" in found
    assert "[Baton → 群]" in found and "钉钉角色对账" in found
    assert "/topapi/role/simplelist" in out.split("> /calls", 1)[1]
