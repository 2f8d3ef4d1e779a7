"""Storage for the batched read path and the outbox sender, on both backends: claiming many
inbound ids at once, upserting many senders with one SELECT, primed holdings (``expect``),
multi-row outbox inserts, the per-conversation send window, and the outbox lease."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import event, select, text

from bot.core.domain.permissions import GrantIn, Holdings, TemplateIn
from storage.db import Database
from storage.models import ADMIN, MEMBER, Member, OutboxMessage, ProcessedMessage, Template

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CORP = "c1"
LEASE = timedelta(seconds=30)


@contextlib.contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL statements run while inside (BEGIN and savepoints left out: how a
    transaction begins differs by driver)."""
    seen: list[str] = []

    def on_execute(_conn: Any, _cur: Any, statement: str, *_: Any) -> None:
        word = statement.lstrip().split(None, 1)[0].upper()
        if word not in ("BEGIN", "SAVEPOINT", "RELEASE"):
            seen.append(statement)

    engine = db.engine.sync_engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def first_words(seen: list[str]) -> list[str]:
    return [s.lstrip().split(None, 1)[0].upper() for s in seen]


# ---- processed.claim_many ------------------------------------------------------------------

async def test_claim_many_returns_exactly_the_new_keys(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.processed.claim_many(["k1", "k2", "k3"], "robot", NOW) == {"k1", "k2", "k3"}
        assert await uow.processed.claim("k4", "robot", NOW) is True
        await uow.commit()
    async with db.uow() as uow:
        got = await uow.processed.claim_many(["k1", "k4", "k5", "k6", "k2"], "robot", NOW)
        assert got == {"k5", "k6"}
        # Within one transaction too: what this call claimed is no longer new.
        assert await uow.processed.claim_many(["k5", "k7"], "robot", NOW) == {"k7"}
        await uow.commit()
    async with db.uow() as uow:
        for k in ["k1", "k2", "k3", "k4", "k5", "k6", "k7"]:
            assert await uow.processed.seen(k), k
        assert not await uow.processed.seen("k8")
        kinds = set((await uow.session.execute(select(ProcessedMessage.kind))).scalars())
        assert kinds == {"robot"}


async def test_claim_many_counts_a_key_repeated_in_one_call_once(db: Database) -> None:
    async with db.uow() as uow:
        assert await uow.processed.claim_many(["d", "d", "e", "d"], "robot", NOW) == {"d", "e"}
        assert await uow.processed.claim_many(["e", "e"], "robot", NOW) == set()
        await uow.commit()
    async with db.uow() as uow:
        rows = (await uow.session.execute(select(ProcessedMessage.key))).scalars().all()
        assert sorted(rows) == ["d", "e"]


async def test_claim_many_of_nothing_is_nothing_and_runs_no_statement(db: Database) -> None:
    async with db.uow() as uow:
        with statements(db) as seen:
            assert await uow.processed.claim_many([], "robot", NOW) == set()
        assert seen == []


async def test_claim_many_after_claim_and_across_a_large_batch(db: Database) -> None:
    """More keys than one multi-row INSERT page: still exactly the new ones."""
    old = [f"old:{i}" for i in range(0, 1500, 3)]
    async with db.uow() as uow:
        for k in old[:5]:
            assert await uow.processed.claim(k, "robot", NOW)
        assert await uow.processed.claim_many(old[5:], "robot", NOW) == set(old[5:])
        await uow.commit()
    keys = [f"old:{i}" for i in range(1500)]
    async with db.uow() as uow:
        got = await uow.processed.claim_many(keys, "robot", NOW)
        await uow.commit()
    assert got == set(keys) - set(old)
    assert len(got) == 1000


# ---- members.upsert_many -------------------------------------------------------------------

async def _seed_members(db: Database) -> None:
    async with db.uow() as uow:
        await uow.members.upsert(CORP, "alice", NOW, name="Alice", level=ADMIN)
        await uow.members.upsert(CORP, "bob", NOW, name="Bob")
        await uow.members.upsert(CORP, "carol", NOW)
        await uow.members.upsert("other", "alice", NOW, name="Other Alice")
        await uow.commit()


async def _member(db: Database, user_id: str, corp_id: str = CORP) -> Member:
    async with db.uow() as uow:
        m = await uow.members.get(corp_id, user_id)
        assert m is not None, user_id
        uow.session.expunge(m)
        return m


async def test_upsert_many_reads_known_members_with_one_select(db: Database) -> None:
    await _seed_members(db)
    alice_id = (await _member(db, "alice")).id
    async with db.uow() as uow:
        with statements(db) as seen:
            got = await uow.members.upsert_many(
                CORP, [("alice", "Alice"), ("bob", None), ("carol", None)], NOW)
        assert first_words(seen) == ["SELECT"], seen
        assert sorted(got) == ["alice", "bob", "carol"]
        assert got["alice"].id == alice_id and got["alice"].level == ADMIN
        assert [got[u].name for u in ("alice", "bob", "carol")] == ["Alice", "Bob", ""]
        assert all(m.corp_id == CORP for m in got.values())


async def test_upsert_many_inserts_unknown_members(db: Database) -> None:
    await _seed_members(db)
    later = NOW + timedelta(minutes=5)
    async with db.uow() as uow:
        got = await uow.members.upsert_many(
            CORP, [("alice", None), ("dave", "Dave"), ("erin", None)], later)
        assert sorted(got) == ["alice", "dave", "erin"]
        await uow.commit()
    dave, erin = await _member(db, "dave"), await _member(db, "erin")
    assert (dave.name, dave.level, dave.active, dave.created_at) == ("Dave", MEMBER, True, later)
    assert (erin.name, erin.level) == ("", MEMBER)
    async with db.uow() as uow:
        assert await uow.members.count(CORP) == 5
        assert await uow.members.count("other") == 1


async def test_upsert_many_updates_a_changed_nick_and_keeps_it_when_none(db: Database) -> None:
    await _seed_members(db)
    later = NOW + timedelta(minutes=5)
    async with db.uow() as uow:
        got = await uow.members.upsert_many(
            CORP, [("alice", "Alicia"), ("bob", None), ("carol", "")], later)
        assert got["alice"].name == "Alicia"
        await uow.commit()
    alice, bob, carol = [await _member(db, u) for u in ("alice", "bob", "carol")]
    assert (alice.name, alice.updated_at, alice.level) == ("Alicia", later, ADMIN)
    assert (bob.name, bob.updated_at) == ("Bob", NOW)
    assert (carol.name, carol.updated_at) == ("", NOW)
    assert (await _member(db, "alice", "other")).name == "Other Alice"


async def test_upsert_many_takes_the_same_user_twice(db: Database) -> None:
    await _seed_members(db)
    async with db.uow() as uow:
        got = await uow.members.upsert_many(CORP, [
            ("frank", None), ("frank", "Frank"),        # new, named by the second message
            ("alice", "A1"), ("alice", "A2"),           # known: the last nick wins
            ("bob", "Bobby"), ("bob", None),            # a None later keeps the nick given
        ], NOW)
        assert sorted(got) == ["alice", "bob", "frank"]
        await uow.commit()
    assert [(await _member(db, u)).name for u in ("frank", "alice", "bob")] == ["Frank", "A2", "Bobby"]
    async with db.uow() as uow:
        assert await uow.members.count(CORP) == 4


# ---- perms.expect / holdings_of ------------------------------------------------------------

VIEW, EDIT, EXPORT, REPORT, SALARY = (
    "crm.customer.view", "crm.customer.edit", "crm.export", "report.view", "hr.salary.view")
SOON = NOW + timedelta(hours=1)
USERS = ["alice", "bob", "carol", "dave"]


async def _seed_permissions(db: Database) -> None:
    """alice: admin with a role, a lasting grant, one ending SOON and one already expired;
    bob: a grant with an expiry and the template; carol: nothing; dave: the template only."""
    async with db.uow() as uow:
        alice = await uow.members.upsert(CORP, "alice", NOW, level=ADMIN)
        alice.role = "sales"
        for u in USERS[1:]:
            await uow.members.upsert(CORP, u, NOW)
        p = uow.perms
        await p.grant(CORP, "alice", EXPORT, by="boss", now=NOW, expires_at=None)
        await p.grant(CORP, "alice", REPORT, by="boss", now=NOW, expires_at=SOON)
        await p.grant(CORP, "alice", SALARY, by="boss", now=NOW - timedelta(days=2),
                      expires_at=NOW - timedelta(days=1))
        await p.grant(CORP, "bob", REPORT, by="boss", now=NOW, expires_at=NOW + timedelta(days=7))
        uow.session.add(Template(corp_id=CORP, name="crm-basic", permissions=[VIEW, EDIT],
                                 created_by="boss", created_at=NOW, updated_at=NOW))
        await uow.session.flush()
        tpl = await p.template(CORP, "crm-basic")
        assert tpl is not None
        assert await p.assign(tpl, "bob", by="boss", now=NOW)
        assert await p.assign(tpl, "dave", by="boss", now=NOW)
        # Another corp's grant and template for the same ids must not leak in.
        await p.grant("other", "carol", EXPORT, by="boss", now=NOW, expires_at=None)
        uow.session.add(Template(corp_id="other", name="x", permissions=[SALARY],
                                 created_by="boss", created_at=NOW, updated_at=NOW))
        await uow.session.flush()
        other = await p.template("other", "x")
        assert other is not None
        await p.assign(other, "dave", by="boss", now=NOW)
        await uow.commit()


async def test_primed_holdings_equal_a_normal_read_with_one_query(db: Database) -> None:
    await _seed_permissions(db)
    async with db.uow() as uow:
        members = await uow.members.upsert_many(CORP, [(u, None) for u in USERS], NOW)
        expected = await uow.perms.holdings_many(CORP, USERS, NOW)
        uow.perms.expect(members.values(), NOW)
        with statements(db) as seen:
            got = {u: await uow.perms.holdings_of(members[u], NOW) for u in USERS}
        assert len(seen) == 1, seen
        assert got == expected
    # And the normal read is the right answer in the first place.
    tpl = TemplateIn("crm-basic", (VIEW, EDIT))
    assert expected["alice"] == Holdings(ADMIN, "sales", (GrantIn(EXPORT, None), GrantIn(REPORT, SOON)), ())
    assert expected["bob"] == Holdings(MEMBER, None, (GrantIn(REPORT, NOW + timedelta(days=7)),), (tpl,))
    assert expected["carol"] == Holdings(MEMBER, None, (), ())
    assert expected["dave"] == Holdings(MEMBER, None, (), (tpl,))


async def test_expected_members_are_read_at_the_first_ask_then_answered_from_memory(
        db: Database) -> None:
    await _seed_permissions(db)
    async with db.uow() as uow:
        members = await uow.members.upsert_many(CORP, [(u, None) for u in USERS], NOW)
        uow.perms.expect([members["alice"], members["bob"]], NOW)
        with statements(db) as seen:
            await uow.perms.holdings_of(members["bob"], NOW)
            n_first = len(seen)
            await uow.perms.holdings_of(members["alice"], NOW)
            await uow.perms.holdings_of(members["bob"], NOW)
        assert (n_first, len(seen)) == (1, 1), seen


async def test_expected_members_of_two_corps_are_read_per_corp(db: Database) -> None:
    await _seed_permissions(db)
    async with db.uow() as uow:
        mine = await uow.members.upsert_many(CORP, [("carol", None), ("dave", None)], NOW)
        theirs = await uow.members.upsert_many("other", [("carol", None), ("dave", None)], NOW)
        want_mine = await uow.perms.holdings_many(CORP, ["carol", "dave"], NOW)
        want_theirs = await uow.perms.holdings_many("other", ["carol", "dave"], NOW)
        assert want_mine != want_theirs
        uow.perms.expect([*mine.values(), *theirs.values()], NOW)
        with statements(db) as seen:
            got_mine = {u: await uow.perms.holdings_of(m, NOW) for u, m in mine.items()}
            got_theirs = {u: await uow.perms.holdings_of(m, NOW) for u, m in theirs.items()}
        assert (got_mine, got_theirs) == (want_mine, want_theirs)
        assert len(seen) == 2, seen


async def test_a_member_not_expected_falls_back_to_a_normal_read(db: Database) -> None:
    await _seed_permissions(db)
    async with db.uow() as uow:
        members = await uow.members.upsert_many(CORP, [(u, None) for u in USERS], NOW)
        expected = await uow.perms.holdings_many(CORP, USERS, NOW)
        uow.perms.expect([members["alice"], members["bob"]], NOW)
        with statements(db) as seen:
            dave = await uow.perms.holdings_of(members["dave"], NOW)
            carol = await uow.perms.holdings_of(members["carol"], NOW)
            after_fallbacks = len(seen)
            alice = await uow.perms.holdings_of(members["alice"], NOW)
        assert (dave, carol, alice) == (expected["dave"], expected["carol"], expected["alice"])
        # Each fallback is its own read, and it did not prime the expected ones.
        assert (after_fallbacks, len(seen)) == (2, 3), seen


async def test_another_now_than_expected_reads_afresh(db: Database) -> None:
    await _seed_permissions(db)
    later = SOON + timedelta(minutes=1)   # alice's report.view grant has ended by then
    async with db.uow() as uow:
        members = await uow.members.upsert_many(CORP, [(u, None) for u in USERS], NOW)
        at_now = await uow.perms.holdings_many(CORP, USERS, NOW)
        at_later = await uow.perms.holdings_many(CORP, USERS, later)
        assert at_now["alice"] != at_later["alice"]
        uow.perms.expect(members.values(), NOW)
        with statements(db) as seen:
            assert await uow.perms.holdings_of(members["alice"], later) == at_later["alice"]
            assert await uow.perms.holdings_of(members["bob"], later) == at_later["bob"]
            assert len(seen) == 2, seen
            # ... and the primed answer at the expected time is still there, one read for all.
            assert await uow.perms.holdings_of(members["alice"], NOW) == at_now["alice"]
            assert await uow.perms.holdings_of(members["dave"], NOW) == at_now["dave"]
            assert len(seen) == 3, seen


async def test_expect_again_replaces_what_was_expected(db: Database) -> None:
    await _seed_permissions(db)
    async with db.uow() as uow:
        members = await uow.members.upsert_many(CORP, [(u, None) for u in USERS], NOW)
        expected = await uow.perms.holdings_many(CORP, USERS, NOW)
        uow.perms.expect([members["alice"]], NOW)
        assert await uow.perms.holdings_of(members["alice"], NOW) == expected["alice"]
        uow.perms.expect([members["bob"], members["dave"]], NOW)
        with statements(db) as seen:
            assert await uow.perms.holdings_of(members["bob"], NOW) == expected["bob"]
            assert await uow.perms.holdings_of(members["dave"], NOW) == expected["dave"]
            assert await uow.perms.holdings_of(members["alice"], NOW) == expected["alice"]
        assert len(seen) == 2, seen   # bob and dave together, then alice alone
        # Expected again at another time: what was primed before is not answered any more.
        later = SOON + timedelta(minutes=1)
        at_later = await uow.perms.holdings_many(CORP, ["alice"], later)
        assert at_later["alice"] != expected["alice"]
        uow.perms.expect([members["alice"]], NOW)
        assert await uow.perms.holdings_of(members["alice"], NOW) == expected["alice"]
        uow.perms.expect([members["alice"]], later)
        assert await uow.perms.holdings_of(members["alice"], later) == at_later["alice"]


# ---- outbox.add_many -----------------------------------------------------------------------

async def _outbox(db: Database) -> list[OutboxMessage]:
    async with db.uow() as uow:
        found = list((await uow.session.execute(
            select(OutboxMessage).order_by(OutboxMessage.id))).scalars().all())
        uow.session.expunge_all()
        return found


async def test_add_many_queues_pending_rows_with_their_fields(db: Database) -> None:
    expires = NOW + timedelta(hours=1)
    rows: list[dict[str, Any]] = [
        {"kind": "reply", "conversation_key": "group:g", "payload": {"text": "one", "user_id": "u1"},
         "session_webhook": "https://hook/1", "webhook_expires_at": expires,
         "source_message_id": "msg-1"},
        {"kind": "card", "conversation_key": "user:u2",
         "payload": {"op": "create", "out_track_id": "t1", "body": {"k": [1, 2]}}},
        {"kind": "reply", "conversation_key": "group:g", "payload": {"text": "alert", "merge": "alert"},
         "not_before": NOW + timedelta(seconds=30), "source_message_id": "msg-3"},
    ]
    async with db.uow() as uow:
        with statements(db) as seen:
            await uow.outbox.add_many([], NOW)
        assert seen == []
        await uow.outbox.add_many(rows, NOW)
        await uow.commit()
    got = await _outbox(db)
    assert [(r.kind, r.conversation_key, r.payload) for r in got] == [
        (r["kind"], r["conversation_key"], r["payload"]) for r in rows]
    assert [r.next_attempt_at for r in got] == [NOW, NOW, NOW + timedelta(seconds=30)]
    assert [r.session_webhook for r in got] == ["https://hook/1", None, None]
    assert [r.webhook_expires_at for r in got] == [expires, None, None]
    assert [r.source_message_id for r in got] == ["msg-1", None, "msg-3"]
    for r in got:
        assert (r.status, r.attempts, r.created_at) == ("pending", 0, NOW)
        assert (r.claimed_until, r.sent_at, r.last_error) == (None, None, None)
    async with db.uow() as uow:
        assert await uow.outbox.depth() == 3
        assert await uow.outbox.next_due_at() == NOW


# ---- outbox.count_sent_since / sent_since --------------------------------------------------

async def _sent_history(db: Database) -> None:
    """group:a sent 50, 30, 10 and 5 s before NOW, one pending and one failed row;
    group:b sent 20 s before NOW."""
    async with db.uow() as uow:
        ids = {}
        for name, key in [("a50", "group:a"), ("a30", "group:a"), ("b20", "group:b"),
                          ("a10", "group:a"), ("a5", "group:a"), ("pending", "group:a"),
                          ("failed", "group:a")]:
            ids[name] = await uow.outbox.add("reply", key, {"text": name}, NOW - timedelta(minutes=5))
        # Sent out of id order: the window goes by sent_at, not by id.
        for name, ago in [("a10", 10), ("a50", 50), ("a5", 5), ("b20", 20), ("a30", 30)]:
            await uow.outbox.mark_sent(ids[name], NOW - timedelta(seconds=ago))
        await uow.outbox.mark_failed(ids["failed"], "gone")
        await uow.commit()


def ago(*seconds: int) -> list[datetime]:
    return [NOW - timedelta(seconds=s) for s in seconds]


async def test_count_sent_since_counts_sent_rows_of_the_conversation_up_to_cap(db: Database) -> None:
    await _sent_history(db)
    async with db.uow() as uow:
        count = uow.outbox.count_sent_since
        assert await count("group:a", NOW - timedelta(seconds=40), cap=10) == 3
        assert await count("group:a", NOW - timedelta(seconds=40), cap=3) == 3
        assert await count("group:a", NOW - timedelta(seconds=40), cap=2) == 2
        assert await count("group:a", NOW - timedelta(seconds=60), cap=100) == 4
        assert await count("group:a", NOW - timedelta(seconds=30), cap=10) == 2   # after, not at
        assert await count("group:a", NOW, cap=10) == 0
        assert await count("group:b", NOW - timedelta(seconds=40), cap=10) == 1
        assert await count("group:none", NOW - timedelta(days=1), cap=10) == 0


async def test_sent_since_gives_the_latest_send_times_oldest_first(db: Database) -> None:
    await _sent_history(db)
    async with db.uow() as uow:
        since = uow.outbox.sent_since
        assert await since("group:a", NOW - timedelta(seconds=60)) == ago(50, 30, 10, 5)
        assert await since("group:a", NOW - timedelta(seconds=60), limit=2) == ago(10, 5)
        assert await since("group:a", NOW - timedelta(seconds=60), limit=10) == ago(50, 30, 10, 5)
        assert await since("group:a", NOW - timedelta(seconds=40), limit=1) == ago(5)
        assert await since("group:a", NOW - timedelta(seconds=30)) == ago(10, 5)
        assert await since("group:b", NOW - timedelta(seconds=60)) == ago(20)
        assert await since("group:a", NOW) == []
        assert all(t.tzinfo is not None for t in await since("group:a", NOW - timedelta(hours=1)))


# ---- outbox.claim_due ----------------------------------------------------------------------

async def _queue_for_claims(db: Database) -> dict[str, int]:
    """r1 due a minute ago, r2 due now, r3 held back a minute, r4 and r5 due now, r6 sent,
    r7 failed."""
    async with db.uow() as uow:
        ids = {
            "r1": await uow.outbox.add("reply", "group:a", {"n": 1}, NOW - timedelta(minutes=1)),
            "r2": await uow.outbox.add("reply", "group:b", {"n": 2}, NOW),
            "r3": await uow.outbox.add("reply", "group:a", {"n": 3}, NOW,
                                       not_before=NOW + timedelta(minutes=1)),
            "r4": await uow.outbox.add("card", "group:a", {"op": "create"}, NOW),
            "r5": await uow.outbox.add("export", "user:u", {"n": 5}, NOW),
            "r6": await uow.outbox.add("reply", "group:a", {"n": 6}, NOW),
            "r7": await uow.outbox.add("reply", "group:a", {"n": 7}, NOW),
        }
        await uow.outbox.mark_sent(ids["r6"], NOW)
        await uow.outbox.mark_failed(ids["r7"], "bad")
        await uow.commit()
    return ids


async def test_claim_due_leases_due_rows_in_id_order_up_to_limit(db: Database) -> None:
    ids = await _queue_for_claims(db)
    r = ids

    async def claim(now: datetime, limit: int = 10) -> list[int]:
        async with db.uow() as uow:
            got = await uow.outbox.claim_due(now, LEASE, limit)
            assert all(m.claimed_until == now + LEASE for m in got)
            await uow.commit()
            return [m.id for m in got]

    assert await claim(NOW, limit=3) == [r["r1"], r["r2"], r["r4"]]
    leased = {m.id: m.claimed_until for m in await _outbox(db)}
    assert [leased[r[k]] for k in ("r1", "r2", "r4")] == [NOW + LEASE] * 3
    assert leased[r["r5"]] is None
    # Another transaction while the lease runs: none of those, only the one left due.
    assert await claim(NOW + timedelta(seconds=10)) == [r["r5"]]
    assert await claim(NOW + timedelta(seconds=20)) == []
    # The first lease has ended (r5's has not, r3 is not due yet): they come back.
    assert await claim(NOW + LEASE + timedelta(seconds=1)) == [r["r1"], r["r2"], r["r4"]]
    # Later still everything pending is due and free; the sent and failed rows never come.
    assert await claim(NOW + timedelta(minutes=5)) == [r[k] for k in ("r1", "r2", "r3", "r4", "r5")]


async def test_claim_due_returns_rows_with_their_fields(db: Database) -> None:
    await _queue_for_claims(db)
    async with db.uow() as uow:
        got = await uow.outbox.claim_due(NOW, LEASE, 2)
        assert [(m.kind, m.conversation_key, m.payload, m.status) for m in got] == [
            ("reply", "group:a", {"n": 1}, "pending"), ("reply", "group:b", {"n": 2}, "pending")]
        assert [m.next_attempt_at for m in got] == [NOW - timedelta(minutes=1), NOW]


@pytest.mark.pg
@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_claim_due_skips_rows_another_open_transaction_holds(db: Database) -> None:
    """PostgreSQL: a concurrent claimer skips locked rows; if the holder rolls back, the
    rows are free again (SQLite has one writer at a time: nothing to skip there)."""
    r = await _queue_for_claims(db)
    async with db.uow() as first:
        held = [m.id for m in await first.outbox.claim_due(NOW, LEASE, 2)]
        assert held == [r["r1"], r["r2"]]
        async with db.uow() as second:
            # Waiting on first's locks would never end (first waits for us): fail fast.
            await second.session.execute(text("SET LOCAL lock_timeout = '2s'"))
            other = [m.id for m in await second.outbox.claim_due(NOW, LEASE, 10)]
            await second.commit()
        assert other == [r["r4"], r["r5"]]
        # first rolls back (no commit): its lease never existed
    async with db.uow() as third:
        again = [m.id for m in await third.outbox.claim_due(NOW, LEASE, 10)]
    assert again == [r["r1"], r["r2"]]
