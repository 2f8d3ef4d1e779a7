"""Owner transfer (主管理员转让) end to end: the real bot, the SDK, the simulator. The wire path:
the card in the group and one-to-one, twenty concurrent clicks, a click after a restart, a
redelivered frame, the backup CLI after a transfer. The rest of this family's behaviour is
tested at the handler level, tests/handlers/test_transfer.py."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from bot.app import BatonApp
from bot.config import Settings
from dingtalk_sim import Simulator
from storage.models import AuditEntry, Request, Snapshot, Vote
from tests.e2e.conftest import CARD, GROUP, card_status, click, reply_to

pytestmark = pytest.mark.e2e

async def start(sim: Simulator, user: str, text: str, at: tuple[str, ...], expect: str,
                conversation: str = GROUP) -> str:
    n = len(sim.messages(conversation))
    sim.say(user, f" {text}", conversation_id=conversation, at=at)
    return await reply_to(sim, conversation, expect, after=n)


async def owner_of(app: BatonApp) -> str:
    async with app.db.uow() as uow:
        o = await uow.members.owner_of(app.settings.org.corp_id)
        return o.user_id if o else ""


async def count(app: BatonApp, q: Any) -> int:
    async with app.db.uow() as uow:
        return int((await uow.session.execute(q)).scalar_one())


async def test_owner_starts_target_accepts_applied_with_snapshot_and_duties(
        sim: Simulator, bot: BatonApp) -> None:
    text = await start(sim, "zhangsan", "转让主管理员 @李四 工作交接", ("lisi",), "R-1")
    assert "李四" in text
    card = CARD.format(1)
    params = await card_status(sim, card, "pending")
    assert params["progress"].startswith("1/2") and "张三" in params["progress"]
    assert params["request_id"] == "R-1" and "工作交接" in params["markdown"]
    assert sim.cards()[card].spaces == [f"dtv1.card//IM_GROUP.{GROUP}"]
    notice = await click(sim, "lisi", card, "accept")
    assert "接受" in notice
    params = await card_status(sim, card, "applied")
    assert params["progress"].startswith("2/2") and "李四" in params["decided"]
    assert await owner_of(bot) == "lisi"
    async with bot.db.uow() as uow:
        prev = await uow.members.get(bot.settings.org.corp_id, "zhangsan")
        assert prev is not None and prev.level == "admin"
        assert await uow.audit.verify(bot.settings.org.corp_id) is None
    assert await count(bot, select(func.count()).select_from(Snapshot)) == 1
    await reply_to(sim, GROUP, "R-1 已完成")
    await sim.until(lambda: [m for m in sim.messages() if "lisi" in m.user_ids
                             and "你现在是主管理员" in m.text], what="duties to lisi 1:1")
    assert not [m for m in sim.messages(GROUP) if "AppSecret" in m.text]
    # The previous owner gets the console steps with a Done button on a one-to-one card.
    console = await sim.until(lambda: sim.cards().get(card + "-console"), what="console card")
    assert console.spaces == ["dtv1.card//IM_ROBOT.zhangsan"]


async def test_twenty_concurrent_clicks_apply_once(sim: Simulator, bot: BatonApp) -> None:
    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    card = CARD.format(1)
    await card_status(sim, card, "pending")
    deliveries = [sim.click("lisi", card, "accept", {"request_id": "R-1"}) for _ in range(20)]
    await sim.until(lambda: all(sim.acks(d.message_id) for d in deliveries), timeout=20,
                    what="all 20 acks")
    await card_status(sim, card, "applied")
    assert await count(bot, select(func.count()).select_from(Vote)) == 1
    assert await count(bot, select(func.count()).select_from(AuditEntry).where(
        AuditEntry.action == "owner_transfer.applied")) == 1
    assert await owner_of(bot) == "lisi"
    notices = {sim.cards()[card].private["lisi"]["notice"]}
    assert notices  # the last one a repeat click got: already decided / voted


async def test_click_after_restart_still_works(sim: Simulator, settings: Settings) -> None:
    async with BatonApp(settings) as app:
        await app.wait_connected()
        await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    async with BatonApp(settings) as app:
        await app.wait_connected()
        await click(sim, "lisi", CARD.format(1), "accept")
        await card_status(sim, CARD.format(1), "applied")
        assert await owner_of(app) == "lisi"


async def test_redelivered_command_creates_one_request(sim: Simulator, bot: BatonApp) -> None:
    d = sim.say("zhangsan", " 转让主管理员 @李四", conversation_id=GROUP, at=("lisi",))
    sim.redeliver(d)
    sim.redeliver(d, new_message_id=True)
    await sim.until(lambda: len([a for a in sim.acks() if a.message_id == d.message_id]) >= 2,
                    what="acks")
    await reply_to(sim, GROUP, "R-1")
    await start(sim, "zhaoliu", "help", (), "transfer-owner")  # barrier
    assert await count(bot, select(func.count()).select_from(Request)) == 1
    assert len([m for m in sim.messages(GROUP) if "R-1" in m.text and "创建" in m.text]) == 1


async def test_asked_one_to_one_the_target_gets_the_card_one_to_one(
        sim: Simulator, bot: BatonApp) -> None:
    """No admin group: the owner's transfer asked in the robot chat reaches the target in
    theirs; the target accepts there; both cards show the outcome."""
    n = len(sim.messages("cidOTOzhangsan"))
    sim.say("zhangsan", "转让主管理员 uid:lisi")                    # one-to-one with Baton
    await reply_to(sim, "cidOTOzhangsan", "R-1", after=n)
    card, copy = CARD.format(1), CARD.format(1) + "-dma"
    await card_status(sim, copy, "pending")
    assert sim.cards()[copy].spaces == ["dtv1.card//IM_ROBOT.lisi"]
    await click(sim, "lisi", copy, "accept")
    await card_status(sim, card, "applied")
    await card_status(sim, copy, "applied")
    assert await owner_of(bot) == "lisi"


async def test_backup_list_and_show_after_a_transfer(sim: Simulator, bot: BatonApp,
                                                     db_url: str) -> None:
    import asyncio
    import json
    import os
    import sys

    await start(sim, "zhangsan", "转让主管理员 @李四", ("lisi",), "R-1")
    await click(sim, "lisi", CARD.format(1), "accept")
    await card_status(sim, CARD.format(1), "applied")
    env = {**os.environ, "BATON_DATABASE__URL": db_url, "BATON_ORG__CORP_ID": sim.corp_id}

    async def baton(*args: str) -> tuple[int, str]:
        # Async, so the bot on this loop keeps running while the CLI reads the store.
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli.main", *args, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
        out, _err = await asyncio.wait_for(proc.communicate(), 60)
        return proc.returncode or 0, out.decode()

    rc, listed = await baton("backup", "list")
    assert rc == 0 and "owner_transfer" in listed
    assert "R-1" in listed and "owner=zhangsan" in listed
    snap_id = listed.split("\t", 1)[0].strip()
    shown = json.loads((await baton("backup", "show", snap_id))[1])
    levels = {m["user_id"]: m["level"] for m in shown["members"]}
    assert levels["zhangsan"] == "owner" and levels["lisi"] == "admin"
    assert (await baton("backup", "show", "999"))[0] == 1
