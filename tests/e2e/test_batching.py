"""The batched read path end to end: read commands (whoami, help, who-has) and parse errors
that arrive together share one transaction (Dispatcher._read_batch through its Batcher), and
each message is still judged, answered, deduplicated and recorded on its own."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import pytest
from sqlalchemy import select

from bot.app import BatonApp
from bot.cli.sandbox import DEMO_GROUP, demo_simulator, sim_settings
from bot.config import Settings
from dingtalk_sim import Delivery, SimGroup, Simulator, SimUser
from storage.models import AuditEntry, Member
from tests.e2e.conftest import GROUP, roundtrip

pytestmark = pytest.mark.e2e

ALERTS = "cidBATCHALERTS"
WAIT = 15.0   # every wait below has this deadline


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with demo_simulator(groups=(SimGroup(DEMO_GROUP, "权限交接工作群"),
                                SimGroup(ALERTS, "安全提醒"))) as s:
        yield s


@pytest.fixture
def settings(sim: Simulator, db_url: str) -> Settings:
    # A burst of replies to one group must not wait for the per-minute send budget, and an
    # alert goes out as soon as it is due.
    return sim_settings(sim, db_url, outbox={"per_conversation_per_minute": 1000},
                        limits={"alert_window": "1s"}, org={"alert_conversation": ALERTS})


@pytest.fixture
async def app(settings: Settings) -> AsyncIterator[BatonApp]:
    async with BatonApp(settings) as a:
        await a.wait_connected()
        yield a


@dataclass(frozen=True)
class Sent:
    """One message of a burst: who said what, what its one reply must contain."""

    user: str
    text: str
    expect: str
    delivery: Delivery

    @property
    def session(self) -> str:
        return session_of(self.delivery)


def session_of(d: Delivery) -> str:
    """The sessionWebhook the message carried: Baton's reply to it goes there, so it names
    the reply's message even where the reply's text does not name the sender."""
    data = json.loads(d.frame["data"])
    return str(parse_qs(urlsplit(data["sessionWebhook"]).query)["session"][0])


def webhook_replies(sim: Simulator) -> dict[str, list[str]]:
    """Every reply sent through a sessionWebhook, by session."""
    out: dict[str, list[str]] = {}
    for r in sim.requests("/robot/sendBySession"):
        body = r.json or {}
        section = body.get(body.get("msgtype", ""), {})
        out.setdefault(r.query.get("session", ""), []).append(
            str(section.get("content", section.get("text", ""))))
    return out


def burst(sim: Simulator, lines: Sequence[tuple[str, str, str]]) -> list[Sent]:
    """Push every line to the group at once. ``sim.say`` returns once the frame is on the
    socket, and the bot's loop does not run in between: they all arrive together."""
    return [Sent(user, text, expect, sim.say(user, f" {text}", conversation_id=GROUP))
            for user, text, expect in lines]


async def all_acked(sim: Simulator, deliveries: Sequence[Delivery]) -> None:
    """Every frame pushed (a redelivery counts again) has an ack with code 200."""
    want: dict[str, int] = {}
    for d in deliveries:
        want[d.message_id] = want.get(d.message_id, 0) + 1

    def done() -> bool:
        return all(len([a for a in sim.acks(m) if a.code == 200]) >= n for m, n in want.items())
    await sim.until(done, timeout=WAIT, what="every frame of the burst acked")


async def all_answered(sim: Simulator, sent: Sequence[Sent]) -> dict[str, list[str]]:
    """Wait for a reply to each message, then a barrier (a later message's answer: sends to
    a conversation are in order), so a second reply would have shown by now."""
    sessions = {s.session for s in sent}
    await sim.until(lambda: sessions <= set(webhook_replies(sim)), timeout=WAIT,
                    what="a reply to every message of the burst")
    await roundtrip(sim, "zhaoliu", " help", "transfer-owner")
    return webhook_replies(sim)


def check_one_reply_each(sent: Sequence[Sent], replies: dict[str, list[str]]) -> None:
    for s in sent:
        got = replies.get(s.session, [])
        assert len(got) == 1, f"{s.user} {s.text!r}: {len(got)} replies: {got}"
        assert s.expect in got[0], f"{s.user} {s.text!r}: {got[0]!r} lacks {s.expect!r}"


async def member(app: BatonApp, user_id: str) -> Member | None:
    async with app.db.uow() as uow:
        m = await uow.members.get(app.settings.org.corp_id, user_id)
        if m is not None:
            uow.session.expunge(m)
        return m


async def audit_rows(app: BatonApp) -> list[AuditEntry]:
    async with app.db.uow() as uow:
        rows = list((await uow.session.execute(
            select(AuditEntry).order_by(AuditEntry.seq))).scalars())
        for r in rows:
            uow.session.expunge(r)
        return rows


REFUSED = "Only the owner or an admin may use “who-has”"
HOLDERS = "Members holding crm.export Export data (1)"


async def test_a_burst_of_reads_is_batched_and_each_message_answered_once(
        sim: Simulator, app: BatonApp) -> None:
    members = ("zhangsan", "lisi", "wangwu", "zhaoliu", "qianqi")
    lines: list[tuple[str, str, str]] = []
    for i in range(6):
        for who in members:
            kind = (i + members.index(who)) % 5
            if kind == 0:
                lines.append((who, "whoami", who))
            elif kind == 1:
                lines.append((who, "我的权限", who))
            elif kind == 2:
                lines.append((who, "help" if i % 2 else "帮助",
                              "transfer-owner" if i % 2 else "转让主管理员"))
            elif kind == 3:
                lines.append((who, "whoamii", "whoami"))
            elif who in ("zhangsan", "lisi"):
                lines.append((who, "who-has crm.export", HOLDERS))
            else:
                lines.append((who, "whoami", who))
    n_before = len(sim.messages(GROUP))
    sent = burst(sim, lines[:15])
    dup = sent[3].delivery
    again = sim.redeliver(dup)             # the identical frame, the same messageId
    assert again.message_id == dup.message_id
    sent += burst(sim, lines[15:])
    assert len(sent) == 30 and len({s.session for s in sent}) == 30

    await all_acked(sim, [s.delivery for s in sent] + [again])
    replies = await all_answered(sim, sent)
    check_one_reply_each(sent, replies)
    # whoami answers in the language it was asked, about its sender.
    for s in sent:
        [text] = replies[s.session]
        if s.text == "whoami":
            assert "My permissions" in text and f"({s.user})" in text
        elif s.text == "我的权限":
            assert "我的权限" in text and f"（{s.user}）" in text
        elif s.text == "whoamii":
            assert "help" in text
    # Nothing else was sent to the group: the burst's 30 replies and the barrier's one.
    assert len(sim.messages(GROUP)) - n_before == 31
    assert not sim.messages(ALERTS)
    assert app.metrics.duplicates == 1
    batches = app.dispatcher._reads.batches
    assert 1 <= batches < len(sent), f"{batches} batches for {len(sent)} reads"


async def test_a_redelivery_under_a_new_frame_id_in_a_burst_gets_no_second_reply(
        sim: Simulator, app: BatonApp) -> None:
    """The dedupe key is the message's msgId: a frame pushed again under a fresh messageId
    (twice, so the repeats share a batch) is acked and not answered again."""
    sent = burst(sim, [("lisi", "whoami", "lisi"), ("qianqi", "help", "transfer-owner")])
    d = sent[0].delivery
    r1 = sim.redeliver(d, new_message_id=True)
    r2 = sim.redeliver(d, new_message_id=True)
    sent += burst(sim, [("wangwu", "whoamii", "whoami")])
    assert len({d.message_id, r1.message_id, r2.message_id}) == 3
    await all_acked(sim, [s.delivery for s in sent] + [r1, r2])
    replies = await all_answered(sim, sent)
    check_one_reply_each(sent, replies)
    assert len([m for m in sim.messages(GROUP) if "(lisi)" in m.text]) == 1
    assert app.metrics.duplicates == 2


async def test_a_refused_who_has_in_a_burst_is_refused_audited_and_alerted(
        sim: Simulator, app: BatonApp) -> None:
    lines = [
        ("lisi", "whoami", "lisi"),
        ("zhaoliu", "who-has crm.export", REFUSED),
        ("wangwu", "who-has crm.export", HOLDERS),
        ("qianqi", "我的权限", "qianqi"),
        ("zhangsan", "help", "transfer-owner"),
        ("qianqi", "whoamii", "whoami"),
        ("lisi", "谁有 crm.export", "拥有"),
    ]
    sent = burst(sim, lines)
    await all_acked(sim, [s.delivery for s in sent])
    replies = await all_answered(sim, sent)
    check_one_reply_each(sent, replies)
    [refusal] = replies[sent[1].session]
    assert "you are: member" in refusal
    # Audited as refused, by the member, once; nobody else's command was audited.
    rows = [r for r in await audit_rows(app) if r.action != "bootstrap"]
    assert [(r.action, r.result, r.actor_id) for r in rows] == [
        ("who-has.refused", "refused", "zhaoliu")]
    assert "need_admin" in json.dumps(rows[0].after, ensure_ascii=False)
    # Alerted: one message to the alert group naming the member and what was tried.
    msgs = await sim.until(lambda: sim.messages(ALERTS), timeout=WAIT, what="the alert")
    assert len(msgs) == 1
    assert "赵六 (zhaoliu)" in msgs[0].text and "who-has crm.export" in msgs[0].text
    assert app.metrics.commands.get(("who-has", "refused")) == 1
    assert app.metrics.commands.get(("who-has", "ok")) == 2


async def test_a_new_member_speaking_in_a_burst_is_recorded_and_answered(
        sim: Simulator, app: BatonApp) -> None:
    sim.add_user(SimUser("zhoujiu", "周九", dept_ids=[2]))
    sim.add_user(SimUser("wushi", "吴十", dept_ids=[3]))
    corp = app.settings.org.corp_id
    assert await member(app, "zhoujiu") is None and await member(app, "wushi") is None
    sent = burst(sim, [
        ("lisi", "whoami", "lisi"),
        ("zhoujiu", "whoami", "zhoujiu"),
        ("wushi", "我的权限", "wushi"),
        ("zhoujiu", "help", "transfer-owner"),      # the same new member twice in a batch
        ("wangwu", "whoamii", "whoami"),
        ("wushi", "whoami", "wushi"),
    ])
    await all_acked(sim, [s.delivery for s in sent])
    replies = await all_answered(sim, sent)
    check_one_reply_each(sent, replies)
    assert "周九" in replies[sent[1].session][0] and "member" in replies[sent[1].session][0]
    for uid, name in (("zhoujiu", "周九"), ("wushi", "吴十")):
        m = await member(app, uid)
        assert m is not None, f"{uid} was not recorded"
        assert (m.corp_id, m.name, m.level, m.active) == (corp, name, "member", True)
    async with app.db.uow() as uow:
        n = len((await uow.session.execute(
            select(Member).where(Member.user_id.in_(["zhoujiu", "wushi"])))).scalars().all())
    assert n == 2   # one row each, though each spoke twice in the burst
    # The admins known from the start keep their level.
    lisi = await member(app, "lisi")
    assert lisi is not None and lisi.level == "admin"


async def test_a_changed_nickname_is_stored_from_a_burst(sim: Simulator, app: BatonApp) -> None:
    await roundtrip(sim, "zhaoliu", " whoami", "(zhaoliu)")
    before = await member(app, "zhaoliu")
    assert before is not None and before.name == "赵六"
    sim.set_user("zhaoliu", name="赵小六")
    sent = burst(sim, [
        ("lisi", "whoami", "lisi"),
        ("zhaoliu", "whoami", "赵小六"),
        ("qianqi", "help", "transfer-owner"),
    ])
    await all_acked(sim, [s.delivery for s in sent])
    replies = await all_answered(sim, sent)
    check_one_reply_each(sent, replies)
    after = await member(app, "zhaoliu")
    assert after is not None and after.name == "赵小六"
    assert after.level == "member" and after.updated_at >= before.updated_at
    other = await member(app, "lisi")
    assert other is not None and other.name == "李四"


async def test_a_nickname_changed_within_a_burst_keeps_the_newest(
        sim: Simulator, app: BatonApp) -> None:
    """The same member, renamed between two messages of one burst: the later name wins."""
    await roundtrip(sim, "qianqi", " whoami", "(qianqi)")
    first = burst(sim, [("qianqi", "whoami", "qianqi"), ("lisi", "help", "transfer-owner")])
    sim.set_user("qianqi", name="钱小七")
    second = burst(sim, [("qianqi", "我的权限", "钱小七"), ("wangwu", "whoami", "wangwu")])
    sent = first + second
    await all_acked(sim, [s.delivery for s in sent])
    replies = await all_answered(sim, sent)
    m = await member(app, "qianqi")
    assert m is not None and m.name == "钱小七"
    for s in sent:
        assert len(replies.get(s.session, [])) == 1, s
    assert "钱小七" in replies[second[0].session][0]
