"""Business permissions, pure: the catalog, effective permissions and their sources, expiry,
revocation through one source, and the impact of a change."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Literal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config import CatalogSettings
from bot.core.domain.permissions import (
    BUILTIN_PERMISSIONS,
    TRANSFER_PERMISSION,
    Catalog,
    GrantIn,
    Holdings,
    Source,
    TemplateIn,
    effective,
    expiry,
    impact,
    live,
    longest,
    sources_of,
    ways_to_remove,
)

NOW = datetime(2026, 1, 1, tzinfo=UTC)
PAST = NOW - timedelta(hours=1)
SOON = NOW + timedelta(hours=1)
LATER = NOW + timedelta(days=1)
TICK = NOW + timedelta(microseconds=1)

VIEW, EDIT, EXPORT = "crm.customer.view", "crm.customer.edit", "crm.export"
SALARY, REPORT, TRANSFER = "hr.salary.view", "report.view", "owner.transfer"

SETTINGS = CatalogSettings.model_validate({
    "permissions": {
        VIEW: {"zh": "查看客户", "en": "View customers"},
        EDIT: {"zh": "编辑客户", "en": "Edit customers"},
        EXPORT: {"zh": "导出数据", "en": "Export data"},
        SALARY: {"zh": "查看薪资", "en": "View salaries"},
        REPORT: {"zh": "查看报表", "en": "View reports"},
    },
    "roles": {
        "sales": [VIEW, EDIT],
        "crm_admin": ["crm.*"],
        "viewer": ["crm.customer.*"],          # a pattern that must not reach crm.export
        "auditor": [REPORT, EXPORT],           # bundles a sensitive permission, not listed
    },
    "sensitive": [EXPORT, "crm_admin"],
})
CAT = Catalog.from_settings(SETTINGS)
ALL = frozenset({VIEW, EDIT, EXPORT, SALARY, REPORT, TRANSFER})


def lvl(name: str) -> Source:
    return Source("level", name)


def role(name: str) -> Source:
    return Source("role", name)


def grant(name: str, at: datetime | None = None) -> Source:
    return Source("grant", name, at)


def tpl(name: str) -> Source:
    return Source("template", name)


# ---- effective permissions, with their sources -------------------------------------------

EFFECTIVE = [
    ("nothing", Holdings(), {}),
    ("role expands", Holdings(role="sales"), {EDIT: (role("sales"),), VIEW: (role("sales"),)}),
    ("wildcard role", Holdings(role="crm_admin"),
     {EDIT: (role("crm_admin"),), EXPORT: (role("crm_admin"),), VIEW: (role("crm_admin"),)}),
    ("pattern role matches nothing beyond", Holdings(role="viewer"),
     {EDIT: (role("viewer"),), VIEW: (role("viewer"),)}),
    ("unknown role", Holdings(role="ghost"), {}),
    ("direct grant", Holdings(grants=(GrantIn(EXPORT),)), {EXPORT: (grant(EXPORT),)}),
    ("grant of a role", Holdings(grants=(GrantIn("sales", SOON),)),
     {EDIT: (grant("sales", SOON),), VIEW: (grant("sales", SOON),)}),
    ("grant of a pattern", Holdings(grants=(GrantIn("crm.customer.*"),)),
     {EDIT: (grant("crm.customer.*"),), VIEW: (grant("crm.customer.*"),)}),
    ("grant of an unknown name", Holdings(grants=(GrantIn("crm.nope"),)), {}),
    ("template: permission, wildcard, role",
     Holdings(templates=(TemplateIn("T", (EXPORT, "hr.*", "auditor")),)),
     {EXPORT: (tpl("T"),), REPORT: (tpl("T"),), SALARY: (tpl("T"),)}),
    ("two templates", Holdings(templates=(TemplateIn("A", (VIEW,)), TemplateIn("B", (VIEW, REPORT)))),
     {REPORT: (tpl("B"),), VIEW: (tpl("A"), tpl("B"))}),
    ("owner holds everything plus owner.transfer", Holdings(level="owner"),
     {p: (lvl("owner"),) for p in sorted(ALL)}),
    ("admin holds nothing by itself", Holdings(level="admin"), {}),
    ("admin with a role holds the role", Holdings(level="admin", role="sales"),
     {EDIT: (role("sales"),), VIEW: (role("sales"),)}),
    ("grant expiring exactly now is gone", Holdings(grants=(GrantIn(EXPORT, NOW),)), {}),
    ("grant expired an hour ago is gone", Holdings(grants=(GrantIn("sales", PAST),)), {}),
    ("grant expiring a microsecond later is live", Holdings(grants=(GrantIn(EXPORT, TICK),)),
     {EXPORT: (grant(EXPORT, TICK),)}),
    ("expired and live grant of the same name",
     Holdings(grants=(GrantIn(EXPORT, PAST), GrantIn(EXPORT, SOON))), {EXPORT: (grant(EXPORT, SOON),)}),
    ("overlapping sources, sorted level < role < grant < template",
     Holdings(level="owner", role="sales", grants=(GrantIn(VIEW, LATER), GrantIn("crm.*", SOON)),
              templates=(TemplateIn("T", ("viewer",)),)),
     {EDIT: (lvl("owner"), role("sales"), grant("crm.*", SOON), tpl("T")),
      EXPORT: (lvl("owner"), grant("crm.*", SOON)),
      REPORT: (lvl("owner"),),
      SALARY: (lvl("owner"),),
      TRANSFER: (lvl("owner"),),
      VIEW: (lvl("owner"), role("sales"), grant("crm.*", SOON), grant(VIEW, LATER), tpl("T"))}),
    ("same grant twice with different expiries, earlier first",
     Holdings(grants=(GrantIn(VIEW, LATER), GrantIn(VIEW, SOON))),
     {VIEW: (grant(VIEW, SOON), grant(VIEW, LATER))}),
    ("grant of owner.transfer to an admin", Holdings(level="admin", grants=(GrantIn(TRANSFER),)),
     {TRANSFER: (grant(TRANSFER),)}),
]


@pytest.mark.parametrize(("holdings", "expected"), [(h, e) for _, h, e in EFFECTIVE],
                         ids=[i for i, _, _ in EFFECTIVE])
def test_sources_of(holdings: Holdings, expected: dict[str, tuple[Source, ...]]) -> None:
    got = sources_of(holdings, CAT, NOW)
    assert got == expected
    assert list(got) == sorted(expected)
    assert effective(holdings, CAT, NOW) == frozenset(expected)


EXPIRY = [
    ("one time-bound grant", Holdings(grants=(GrantIn(EXPORT, SOON),)), {EXPORT: SOON}),
    ("the longest of two grants",
     Holdings(grants=(GrantIn("sales", SOON), GrantIn(VIEW, LATER))), {EDIT: SOON, VIEW: LATER}),
    ("longest regardless of order",
     Holdings(grants=(GrantIn(VIEW, LATER), GrantIn("sales", SOON))), {EDIT: SOON, VIEW: LATER}),
    ("a permanent grant makes it permanent",
     Holdings(grants=(GrantIn(VIEW, SOON), GrantIn("viewer"))), {EDIT: None, VIEW: None}),
    ("a role makes it permanent", Holdings(role="sales", grants=(GrantIn(VIEW, SOON),)),
     {EDIT: None, VIEW: None}),
    ("a template makes it permanent",
     Holdings(grants=(GrantIn(EXPORT, SOON),), templates=(TemplateIn("T", ("crm.export",)),)),
     {EXPORT: None}),
    ("the owner level makes it permanent", Holdings(level="owner", grants=(GrantIn(EXPORT, SOON),)),
     {p: None for p in ALL}),
    ("an expired grant does not extend", Holdings(grants=(GrantIn(EXPORT, SOON), GrantIn(EXPORT, PAST))),
     {EXPORT: SOON}),
]


@pytest.mark.parametrize(("holdings", "expected"), [(h, e) for _, h, e in EXPIRY],
                         ids=[i for i, _, _ in EXPIRY])
def test_expiry_of_each_permission(holdings: Holdings, expected: dict[str, datetime | None]) -> None:
    got = {p: expiry(s) for p, s in sources_of(holdings, CAT, NOW).items()}
    assert got == expected


REVOKE = [
    # holdings, index of the grant revoked, {perm: remaining sources} of what is still held
    ("role still justifies", Holdings(role="sales", grants=(GrantIn(VIEW, LATER),)), 0,
     {EDIT: (role("sales"),), VIEW: (role("sales"),)}),
    ("another grant still justifies part",
     Holdings(grants=(GrantIn("sales"), GrantIn(VIEW, SOON))), 0, {VIEW: (grant(VIEW, SOON),)}),
    ("template still justifies",
     Holdings(grants=(GrantIn(EXPORT),), templates=(TemplateIn("T", ("crm.*",)),)), 0,
     {EDIT: (tpl("T"),), EXPORT: (tpl("T"),), VIEW: (tpl("T"),)}),
    ("owner level still justifies", Holdings(level="owner", grants=(GrantIn(TRANSFER, SOON),)), 0,
     {p: (lvl("owner"),) for p in sorted(ALL)}),
    ("the same name granted twice", Holdings(grants=(GrantIn(EXPORT), GrantIn(EXPORT, SOON))), 0,
     {EXPORT: (grant(EXPORT, SOON),)}),
    ("the only source: lost", Holdings(role="viewer", grants=(GrantIn(EXPORT),)), 0,
     {EDIT: (role("viewer"),), VIEW: (role("viewer"),)}),
    ("revoking the expired one changes nothing",
     Holdings(grants=(GrantIn(EXPORT, SOON), GrantIn(EXPORT, PAST))), 1, {EXPORT: (grant(EXPORT, SOON),)}),
]


@pytest.mark.parametrize(("holdings", "index", "expected"), [(h, i, e) for _, h, i, e in REVOKE],
                         ids=[n for n, _, _, _ in REVOKE])
def test_revoking_one_grant_keeps_what_others_justify(
        holdings: Holdings, index: int, expected: dict[str, tuple[Source, ...]]) -> None:
    grants = holdings.grants[:index] + holdings.grants[index + 1:]
    after = replace(holdings, grants=grants)
    assert sources_of(after, CAT, NOW) == expected


def test_pattern_role_that_matches_nothing() -> None:
    cat = Catalog({VIEW: ("查看客户", "View customers")},
                  {"ghosts": ("ghost.*",), "mixed": ("ghost.*", VIEW)})
    assert cat.expand("ghosts") == frozenset()
    assert effective(Holdings(role="ghosts"), cat, NOW) == frozenset()
    assert sources_of(Holdings(role="mixed"), cat, NOW) == {VIEW: (role("mixed"),)}


def test_permissions_read_live_at_now() -> None:
    h = Holdings(grants=(GrantIn(EXPORT, SOON),))
    assert effective(h, CAT, NOW) == {EXPORT}
    assert effective(h, CAT, SOON - timedelta(microseconds=1)) == {EXPORT}
    assert effective(h, CAT, SOON) == frozenset()
    assert effective(h, CAT, LATER) == frozenset()


def test_live_and_longest() -> None:
    assert live(None, NOW)
    assert live(TICK, NOW)
    assert not live(NOW, NOW)
    assert not live(PAST, NOW)
    assert longest(SOON, LATER) == LATER
    assert longest(LATER, SOON) == LATER
    assert longest(None, LATER) is None
    assert longest(SOON, None) is None


def test_expiry_needs_a_source() -> None:
    with pytest.raises(ValueError, match="no sources"):
        expiry([])


# ---- the catalog -------------------------------------------------------------------------

EXPAND = [
    ("sales", {VIEW, EDIT}),
    ("crm_admin", {VIEW, EDIT, EXPORT}),
    ("viewer", {VIEW, EDIT}),
    ("auditor", {REPORT, EXPORT}),
    ("owner", ALL),
    ("admin", set()),
    (EXPORT, {EXPORT}),
    (TRANSFER, {TRANSFER}),
    ("crm.*", {VIEW, EDIT, EXPORT}),
    ("*.view", {VIEW, SALARY, REPORT}),
    ("hr.*", {SALARY}),
    ("nope", set()),
    ("crm.nope", set()),
    ("ghost.*", set()),
    ("", set()),
]


@pytest.mark.parametrize(("name", "expected"), EXPAND)
def test_expand(name: str, expected: set[str]) -> None:
    assert CAT.expand(name) == frozenset(expected)
    assert CAT.expand(name) == frozenset(expected)  # the cached answer is the same


SENSITIVE = [
    (EXPORT, True),            # listed permission
    ("crm_admin", True),       # listed role
    ("auditor", True),         # a role that bundles crm.export, not listed itself
    ("crm.*", True),           # a pattern reaching crm.export
    (TRANSFER, True),          # always
    ("owner", True),           # bundles owner.transfer
    ("sales", False),
    ("viewer", False),
    ("crm.customer.*", False),
    (VIEW, False),
    (REPORT, False),
    ("admin", False),
    ("nope", False),
]


@pytest.mark.parametrize(("name", "expected"), SENSITIVE)
def test_is_sensitive(name: str, expected: bool) -> None:
    assert CAT.is_sensitive(name) is expected


def test_sensitive_in() -> None:
    assert CAT.sensitive_in(["sales", "auditor", EXPORT, VIEW, "auditor"]) == ["auditor", EXPORT]
    assert CAT.sensitive_in([]) == []


def test_owner_transfer_sensitive_even_when_nothing_is_listed() -> None:
    cat = Catalog.from_settings(CatalogSettings.model_validate(
        {"permissions": {VIEW: {"zh": "查看客户", "en": "View customers"}}}))
    assert cat.is_sensitive(TRANSFER)
    assert cat.sensitive == frozenset({TRANSFER})
    assert not cat.is_sensitive(VIEW)
    assert cat.expand("owner") == {VIEW, TRANSFER}


@pytest.mark.parametrize(("typo", "roles", "first"), [
    ("crm.exprot", True, EXPORT),
    ("CRM.EXPORT", True, EXPORT),
    ("sale", True, "sales"),
    ("crm.customer.veiw", True, VIEW),
    ("crm_admn", True, "crm_admin"),
])
def test_suggest(typo: str, roles: bool, first: str) -> None:
    got = CAT.suggest(typo, roles=roles)
    assert got[0] == first
    assert len(got) <= 3


def test_suggest_limits() -> None:
    assert "sales" not in CAT.suggest("sale", roles=False)
    assert CAT.suggest("zzzzzzzz") == []
    assert CAT.suggest("crm.customer.veiw", n=1) == [VIEW]
    assert set(CAT.suggest("crm.customer.veiw")) <= set(CAT.permissions)


@pytest.mark.parametrize(("perm", "lang", "expected"), [
    (EXPORT, "zh", "crm.export 导出数据"),
    (EXPORT, "en", "crm.export Export data"),
    (VIEW, "zh", "crm.customer.view 查看客户"),
    (TRANSFER, "zh", "owner.transfer 转让主管理员"),
    (TRANSFER, "en", "owner.transfer Transfer the main administrator"),
    ("nope", "zh", "nope"),
    ("nope", "en", "nope"),
])
def test_label(perm: str, lang: Literal["zh", "en"], expected: str) -> None:
    assert CAT.label(perm, lang) == expected


def test_from_settings() -> None:
    assert dict(CAT.permissions) == {
        VIEW: ("查看客户", "View customers"),
        EDIT: ("编辑客户", "Edit customers"),
        EXPORT: ("导出数据", "Export data"),
        SALARY: ("查看薪资", "View salaries"),
        REPORT: ("查看报表", "View reports"),
        TRANSFER: BUILTIN_PERMISSIONS[TRANSFER],
    }
    assert dict(CAT.roles) == {
        "sales": (VIEW, EDIT), "crm_admin": ("crm.*",), "viewer": ("crm.customer.*",),
        "auditor": (REPORT, EXPORT),
    }
    assert CAT.sensitive == frozenset({EXPORT, "crm_admin", TRANSFER_PERMISSION})


def test_from_empty_settings() -> None:
    cat = Catalog.from_settings(CatalogSettings())
    assert set(cat.permissions) == {TRANSFER}
    assert dict(cat.roles) == {}
    assert cat.expand("owner") == {TRANSFER}
    assert effective(Holdings(level="owner"), cat, NOW) == {TRANSFER}


@pytest.mark.parametrize(("name", "is_role", "is_permission", "is_pattern", "known"), [
    ("sales", True, False, False, True),
    ("owner", True, False, False, True),
    ("admin", True, False, False, True),
    (EXPORT, False, True, False, True),
    (TRANSFER, False, True, False, True),
    ("crm.*", False, False, True, False),
    ("ghost.*", False, False, False, False),
    ("nope", False, False, False, False),
])
def test_name_kinds(name: str, is_role: bool, is_permission: bool, is_pattern: bool, known: bool) -> None:
    assert CAT.is_role(name) is is_role
    assert CAT.is_permission(name) is is_permission
    assert CAT.is_pattern(name) is is_pattern
    assert CAT.known(name) is known


# ---- impact ------------------------------------------------------------------------------

def test_impact_gains_and_losses_per_user() -> None:
    before = {"u1": frozenset({VIEW, EDIT}), "u2": frozenset({VIEW}), "u4": frozenset({REPORT})}
    after = {"u1": frozenset({VIEW, EXPORT}), "u3": frozenset({EXPORT}), "u4": frozenset({REPORT})}
    got = impact(before, after)
    assert dict(got.gains) == {EXPORT: ("u1", "u3")}
    assert dict(got.losses) == {EDIT: ("u1",), VIEW: ("u2",)}
    assert got.people() == 3
    assert not got.empty


def test_impact_of_a_role_edit() -> None:
    old, new = CAT, Catalog(CAT.permissions, {**CAT.roles, "sales": (VIEW, REPORT)}, CAT.sensitive)
    members = {"a": Holdings(role="sales"), "b": Holdings(role="sales", grants=(GrantIn(EDIT),)),
               "c": Holdings(role="viewer")}
    got = impact({u: effective(h, old, NOW) for u, h in members.items()},
                 {u: effective(h, new, NOW) for u, h in members.items()})
    assert dict(got.gains) == {REPORT: ("a", "b")}
    assert dict(got.losses) == {EDIT: ("a",)}
    assert got.people() == 2


@pytest.mark.parametrize(("before", "after"), [
    ({}, {}),
    ({"u1": frozenset({VIEW})}, {"u1": frozenset({VIEW})}),
    ({"u1": frozenset()}, {}),
    ({}, {"u2": frozenset()}),
])
def test_impact_empty(before: dict[str, frozenset[str]], after: dict[str, frozenset[str]]) -> None:
    got = impact(before, after)
    assert got.empty
    assert dict(got.gains) == {} and dict(got.losses) == {}
    assert got.people() == 0


# ---- properties --------------------------------------------------------------------------

PERMS = sorted(CAT.permissions)
ROLES = sorted(CAT.roles)
PATTERNS = ["crm.*", "crm.customer.*", "hr.*", "*.view", "ghost.*"]
NAMES = PERMS + ROLES + ["owner", "admin", "nope"]
ITEMS = PERMS + ROLES + PATTERNS + ["owner", "admin", "nope"]

expiries = st.one_of(st.none(), st.integers(-5, 5).map(lambda k: NOW + timedelta(minutes=k)))
grants_st = st.lists(st.builds(GrantIn, st.sampled_from(NAMES), expiries), max_size=5).map(tuple)
templates_st = st.lists(
    st.builds(TemplateIn, st.sampled_from(["t1", "t2", "t3"]),
              st.lists(st.sampled_from(ITEMS), max_size=4).map(tuple)),
    max_size=3).map(tuple)
holdings_st = st.builds(
    Holdings,
    level=st.sampled_from(["owner", "admin", "member"]),
    role=st.one_of(st.none(), st.sampled_from(ROLES)),
    grants=grants_st,
    templates=templates_st,
)


def live_sources(h: Holdings, now: datetime) -> list[tuple[Source, frozenset[str]]]:
    """Each live source with what it stands for, computed without sources_of."""
    out: list[tuple[Source, frozenset[str]]] = []
    if h.level == "owner":
        out.append((Source("level", "owner"), CAT.expand("owner")))
    if h.role is not None:
        out.append((Source("role", h.role), CAT.expand(h.role)))
    for g in h.grants:
        if g.expires_at is None or g.expires_at > now:
            out.append((Source("grant", g.name, g.expires_at), CAT.expand(g.name)))
    for t in h.templates:
        out.append((Source("template", t.name), frozenset().union(*(CAT.expand(i) for i in t.items))))
    return out


def union(sources: list[tuple[Source, frozenset[str]]]) -> frozenset[str]:
    return frozenset().union(*(perms for _, perms in sources))


KIND_ORDER = {"level": 0, "role": 1, "grant": 2, "template": 3}


@settings(max_examples=300, deadline=None)
@given(holdings_st)
def test_effective_is_the_union_of_live_sources(h: Holdings) -> None:
    assert effective(h, CAT, NOW) == union(live_sources(h, NOW))


@settings(max_examples=300, deadline=None)
@given(holdings_st)
def test_every_source_justifies_its_permission(h: Holdings) -> None:
    expected = live_sources(h, NOW)
    for perm, srcs in sources_of(h, CAT, NOW).items():
        assert srcs, perm
        # exactly the live sources that stand for perm, no more, no less
        assert set(srcs) == {s for s, perms in expected if perm in perms}
        assert len(set(srcs)) == len(srcs)
        assert [KIND_ORDER[s.kind] for s in srcs] == sorted(KIND_ORDER[s.kind] for s in srcs)
        for s in srcs:
            if s.kind == "level":
                assert h.level == "owner" and s.name == "owner"
            elif s.kind == "role":
                assert s.name == h.role
            elif s.kind == "grant":
                assert GrantIn(s.name, s.expires_at) in h.grants
                assert live(s.expires_at, NOW)
            else:
                assert s.expires_at is None
                assert any(perm in CAT.expand(i) for t in h.templates if t.name == s.name for i in t.items)
            if s.kind != "template":
                assert perm in CAT.expand(s.name)
        # a permission lasts as long as its longest source
        ends = [s.expires_at for s in srcs]
        assert expiry(srcs) == (None if None in ends else max(e for e in ends if e is not None))


@settings(max_examples=300, deadline=None)
@given(holdings_st, st.data())
def test_revoking_one_grant_keeps_what_the_rest_justify(h: Holdings, data: st.DataObject) -> None:
    if not h.grants:
        return
    i = data.draw(st.integers(0, len(h.grants) - 1))
    after = replace(h, grants=h.grants[:i] + h.grants[i + 1:])
    before_perms, after_perms = effective(h, CAT, NOW), effective(after, CAT, NOW)
    still = union(live_sources(after, NOW))
    for perm in before_perms & still:
        assert perm in after_perms
    assert after_perms <= before_perms
    assert after_perms == still
    lost = before_perms - after_perms
    revoked = h.grants[i]
    assert lost <= CAT.expand(revoked.name)
    if not live(revoked.expires_at, NOW):
        assert lost == frozenset()


sources_st = st.builds(
    Source,
    st.sampled_from(["level", "role", "grant", "template"]),
    st.sampled_from(["owner", "sales", "crm.export", "t1"]),
    st.one_of(st.none(), st.integers(-10_000, 10_000).map(lambda k: NOW + timedelta(minutes=k))),
)


@given(st.lists(sources_st, min_size=1, max_size=6))
def test_expiry_is_permanent_or_the_latest(srcs: list[Source]) -> None:
    got = expiry(srcs)
    ends = [s.expires_at for s in srcs]
    if any(e is None for e in ends):
        assert got is None
    else:
        assert got is not None
        assert got == max(e for e in ends if e is not None)
    assert expiry(reversed(srcs)) == got


# ---- what removes a permission that is not a direct grant -----------------------------------

def test_ways_to_remove_name_the_role_the_granted_role_and_the_template() -> None:
    srcs = [Source("template", "base"), Source("grant", "sales"), Source("grant", VIEW),
            Source("role", "viewer"), Source("level", "owner"), Source("role", "viewer")]
    assert ways_to_remove(srcs, CAT) == (("role", "viewer"), ("role_grant", "sales"),
                                         ("template", "base"))
    assert ways_to_remove([Source("grant", VIEW), Source("level", "owner")], CAT) == ()
