"""The permission index answers exactly what ``sources_of`` computes from the same
holdings: for random companies, after random replacements, every member's sources, every
permission's holders, and holders read a page at a time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.domain.index import CorpIndex, Entry, PermissionIndex
from bot.core.domain.permissions import Catalog, GrantIn, Holdings, TemplateIn, sources_of

NOW = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
CAT = Catalog(
    {"a.x": ("甲", "A x"), "a.y": ("乙", "A y"), "b.z": ("丙", "B z"), "c.w": ("丁", "C w"),
     "owner.transfer": ("转让", "Transfer")},
    {"r1": ("a.*",), "r2": ("b.z", "a.y")}, frozenset({"b.z"}))
PERMS = ["a.x", "a.y", "b.z", "c.w", "owner.transfer"]
NAMES = ["a.x", "a.y", "b.z", "c.w", "r1", "r2", "a.*", "nothing.*"]
TEMPLATES = ["t1", "t2", "t3"]
USERS = [f"u{i}" for i in range(8)]

expiries = st.sampled_from([None, NOW - timedelta(seconds=1), NOW, NOW + timedelta(days=1)])
grants = st.lists(st.builds(GrantIn, st.sampled_from(NAMES), expiries), max_size=4,
                  unique_by=lambda g: g.name).map(tuple)
entries = st.builds(Entry, st.sampled_from(["member", "admin", "owner"]),
                    st.sampled_from([None, "r1", "r2", "ghost"]), grants,
                    st.lists(st.sampled_from(TEMPLATES), unique=True, max_size=2).map(tuple))
templates = st.dictionaries(st.sampled_from(TEMPLATES),
                            st.lists(st.sampled_from(NAMES), max_size=3).map(tuple), max_size=3)
# A history of replacements: (user, entry or None) and (template, items or None).
steps = st.lists(st.one_of(
    st.tuples(st.just("user"), st.sampled_from(USERS), st.one_of(st.none(), entries)),
    st.tuples(st.just("template"), st.sampled_from(TEMPLATES),
              st.one_of(st.none(), st.lists(st.sampled_from(NAMES), max_size=3).map(tuple)))),
    max_size=30)


def direct(users: dict[str, Entry], tpls: dict[str, tuple[str, ...]], uid: str,
           at: datetime = NOW) -> dict:  # type: ignore[type-arg]
    e = users.get(uid)
    if e is None:
        return {}
    h = Holdings(e.level, e.role, e.grants,
                 tuple(TemplateIn(t, tpls[t]) for t in e.templates if t in tpls))
    return sources_of(h, CAT, at)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(USERS), entries), templates, steps)
def test_index_answers_what_sources_of_computes(start: dict[str, Entry],
                                                tpls: dict[str, tuple[str, ...]],
                                                history: list[tuple]) -> None:  # type: ignore[type-arg]
    idx = PermissionIndex(CAT)
    idx.load("c", start, tpls)
    c = idx.corp("c")
    users, tpls = dict(start), dict(tpls)
    for kind, key, value in history:
        for uid in USERS:               # answers kept between changes must not go stale
            c.sources(uid, NOW)
        if kind == "user":
            c.put(key, value)
            if value is None:
                users.pop(key, None)
            else:
                users[key] = value
        else:
            c.put_template(key, value)
            if value is None:
                tpls.pop(key, None)
            else:
                tpls[key] = value
    for uid in USERS:
        assert c.sources(uid, NOW) == direct(users, tpls, uid)
    # Kept answers follow the clock: a grant that expires stops counting, an earlier time
    # is computed afresh.
    for at in (NOW + timedelta(hours=1), NOW + timedelta(days=2), NOW - timedelta(days=1)):
        for uid in USERS:
            assert c.sources(uid, at) == direct(users, tpls, uid, at)
    for perm in PERMS:
        want = {u: s[perm] for u in sorted(USERS) if perm in (s := direct(users, tpls, u))}
        assert c.holders(perm, NOW) == want
        for size in (1, 3):
            got, after, more = [], None, True
            while more:
                page, more = c.holders_page(perm, NOW, after=after, limit=size)
                assert len(page) <= size and (page or not more)
                got += page
                after = page[-1][0] if page else after
            assert dict(got) == want
    # The reverse map names nobody who holds nothing there any more.
    for name, holders in c.by_name.items():
        for uid in holders:
            assert name in set(c.entries[uid].names())


def test_an_expired_grant_stops_counting_at_its_expiry_without_an_event() -> None:
    c = CorpIndex(CAT)
    c.put("mia", Entry(grants=(GrantIn("a.x", NOW + timedelta(hours=1)),)))
    assert c.check("mia", "a.x", NOW)
    assert c.check("mia", "a.x", NOW + timedelta(hours=1)) == ()
    assert c.holders("a.x", NOW + timedelta(hours=2)) == {}


def test_unknown_member_holds_nothing_and_roles_have_holders_by_level_role_and_grant() -> None:
    c = CorpIndex(CAT)
    c.put("boss", Entry(level="owner"))
    c.put("ann", Entry(level="admin"))
    c.put("bo", Entry(role="r1", grants=(GrantIn("r2", None),)))
    assert c.sources("nobody", NOW) == {}
    assert set(c.holders("owner", NOW)) == {"boss"}
    assert set(c.holders("admin", NOW)) == {"ann"}
    assert set(c.holders("r1", NOW)) == {"bo"} and set(c.holders("r2", NOW)) == {"bo"}
    assert set(c.holders("owner.transfer", NOW)) == {"boss"}
