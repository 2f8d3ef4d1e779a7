"""The import dry run (pure): row validation, plans in add and replace mode, undo."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.cli.sandbox import DEMO_CATALOG
from bot.config import CatalogSettings
from bot.core.domain.bulk import (
    Change,
    Entry,
    change_from_json,
    change_to_json,
    inverse,
    plan,
    read_rows,
)
from bot.core.domain.permissions import Catalog

NOW = datetime(2026, 11, 23, 2, 0, tzinfo=UTC)
CAT = Catalog.from_settings(CatalogSettings.model_validate(DEMO_CATALOG))
MEMBERS = {"a": "member", "b": "member", "boss": "owner"}
TEMPLATES = {"base"}


def rows(*cells: tuple[str, str, str, str]) -> list[tuple[int, dict[str, str]]]:
    return [(i + 2, {"user_id": u, "type": k, "value": v, "expires_at": x})
            for i, (u, k, v, x) in enumerate(cells)]


@pytest.mark.parametrize(("cells", "code"), [
    (("", "grant", "crm.export", ""), "no_user"),
    (("a b", "grant", "crm.export", ""), "bad_user"),
    (("=1+1", "grant", "crm.export", ""), "bad_user"),
    (("zz", "grant", "crm.export", ""), "unknown_user"),
    (("a", "perm", "crm.export", ""), "bad_type"),
    (("a", "grant", "", ""), "no_value"),
    (("a", "grant", "crm.nope", ""), "unknown_permission"),
    (("a", "role", "crm.export", ""), "unknown_role"),
    (("a", "role", "owner", ""), "builtin_role"),
    (("a", "template", "nope", ""), "unknown_template"),
    (("a", "level", "admin", ""), "level_differs"),
    (("a", "grant", "crm.export", "tomorrow"), "bad_time"),
    (("a", "grant", "crm.export", "2020-01-01"), "expired"),
    (("a", "role", "sales", "2030-01-01"), "expiry_not_grant"),
])
def test_row_errors(cells: tuple[str, str, str, str], code: str) -> None:
    good, errors = read_rows(rows(cells), catalog=CAT, members=MEMBERS, templates=TEMPLATES,
                             now=NOW)
    assert good == [] and [(e.row, e.code) for e in errors] == [(2, code)]


def test_duplicates_and_two_roles_name_the_other_row() -> None:
    _good, errors = read_rows(rows(("a", "grant", "crm.export", ""), ("a", "授权", "crm.export", ""),
                                   ("a", "role", "sales", ""), ("a", "角色", "analyst", "")),
                              catalog=CAT, members=MEMBERS, templates=TEMPLATES, now=NOW)
    assert [(e.row, e.code, dict(e.params)) for e in errors] == [
        (3, "duplicate", {"other": "2"}), (5, "two_roles", {"other": "4"})]


def test_times_and_aliases() -> None:
    good, errors = read_rows(rows(("a", "授权", "crm.export", "2026-12-01"),
                                  ("boss", "身份", "owner", ""),
                                  ("b", "模板", "base", "")),
                             catalog=CAT, members=MEMBERS, templates=TEMPLATES, now=NOW)
    assert errors == []
    assert good[0][1] == Entry("a", "grant", "crm.export", datetime(2026, 12, 1, tzinfo=UTC))


CURRENT = [Entry("a", "role", "sales"), Entry("a", "grant", "crm.export", NOW + timedelta(days=1)),
           Entry("b", "template", "base"), Entry("boss", "level", "owner")]


def test_plan_add_and_replace() -> None:
    file = [(2, Entry("a", "role", "analyst")), (3, Entry("a", "grant", "crm.export",
                                                            NOW + timedelta(days=1))),
            (4, Entry("b", "grant", "crm.report.view")), (5, Entry("boss", "level", "owner"))]
    p = plan(file, [], CURRENT, "add")
    assert [r.status for r in p.rows] == ["update", "unchanged", "create", "unchanged"]
    assert [c.op for c in p.changes] == ["update", "create"]
    assert p.changes[0].before == Entry("a", "role", "sales")
    p = plan(file, [], CURRENT, "replace")
    assert [c.op for c in p.changes] == ["update", "create", "remove"]
    assert p.changes[-1].entry == Entry("b", "template", "base")


def test_any_error_means_no_changes() -> None:
    from bot.core.domain.bulk import RowError

    p = plan([(2, Entry("b", "grant", "crm.report.view"))], [RowError(3, "bad_type")],
             CURRENT, "add")
    assert p.changes == () and [r.status for r in p.rows] == ["create", "error"]


entries = st.builds(
    Entry, st.sampled_from(["a", "b", "c"]), st.sampled_from(["grant", "template"]),
    st.sampled_from(["crm.export", "crm.report.view", "base", "t2"]),
    st.sampled_from([None, NOW + timedelta(days=1), NOW + timedelta(days=2)]))


def _apply(state: dict[tuple[str, str, str], Entry], changes: list[Change]) -> None:
    for c in changes:
        if c.op == "remove":
            state.pop(c.entry.key)
        else:
            state[c.entry.key] = c.entry


@given(st.lists(entries, unique_by=lambda e: e.key), st.lists(entries, unique_by=lambda e: e.key),
       st.sampled_from(["add", "replace"]))
def test_plan_reaches_the_file_and_inverse_restores(current: list[Entry], wanted: list[Entry],
                                                    mode: str) -> None:
    p = plan([(i + 2, e) for i, e in enumerate(wanted)], [], current, mode)  # type: ignore[arg-type]
    state = {e.key: e for e in current}
    _apply(state, list(p.changes))
    for e in wanted:                                       # the file's rows now hold exactly
        assert state[e.key] == e and state[e.key].expires_at == e.expires_at
    if mode == "replace":
        assert set(state) == {e.key for e in wanted}
    # Round trip through the request payload, then undo.
    back = [change_from_json(change_to_json(c)) for c in p.changes]
    _apply(state, inverse(back))
    assert {k: (v, v.expires_at) for k, v in state.items()} == \
        {e.key: (e, e.expires_at) for e in current}


def test_an_import_is_about_everyone_whose_rows_it_changes() -> None:
    """No one approves an import (or its undo) that changes their own rows (product.md §4)."""
    from bot.core.domain.bulk import Change, Entry, change_to_json
    from handlers.bulk import ImportRequest, ImportUndoRequest

    changes = [change_to_json(c) for c in (
        Change("create", Entry("lisi", "grant", "crm.export")),
        Change("remove", Entry("wangwu", "role", "sales")),
        Change("update", Entry("lisi", "level", "admin"), Entry("lisi", "level", "member")))]
    for kind in (ImportRequest(), ImportUndoRequest()):
        assert kind.affected(None, {"changes": changes}) == ("lisi", "wangwu")


def test_basis_is_what_an_import_was_planned_against_but_for_lapses() -> None:
    from datetime import UTC, datetime, timedelta

    from bot.core.domain.bulk import Entry, basis, same_basis

    at = datetime(2026, 12, 1, tzinfo=UTC)
    soon, later = at + timedelta(hours=2), at + timedelta(days=30)
    a = [Entry("lisi", "grant", "crm.export", soon), Entry("lisi", "grant", "crm.x", later),
         Entry("wangwu", "role", "sales"), Entry("lisi", "level", "admin")]
    saved = basis(a)
    assert saved == basis(list(reversed(a))) == basis(a[:3])          # order, levels: none
    assert same_basis(saved, a, None, at)
    # Three hours on the 2-hour grant has lapsed: the store reads without it. Same basis.
    assert same_basis(saved, a[1:], None, at + timedelta(hours=3))
    # But removed before it lapsed, it is an edit.
    assert not same_basis(saved, a[1:], None, at + timedelta(hours=1))
    moved = [Entry("lisi", "grant", "crm.x", later + timedelta(days=1)), *a[2:]]
    assert not same_basis(saved, [a[0], *moved], None, at)           # an expiry changed
    assert not same_basis(saved, a[:2], None, at)                    # a role removed
    assert not same_basis(saved, [*a, Entry("wangwu", "grant", "crm.y")], None, at)  # added
    # With users: others' entries do not count.
    mine = basis(a, ["wangwu"])
    assert same_basis(mine, [*a, Entry("zhaoliu", "role", "sales")], ["wangwu"], at)
    assert not same_basis(mine, a[:2], ["wangwu"], at)


@pytest.mark.parametrize(("cells", "code", "hints"), [
    (("a", "grant", "crm.exprot", ""), "unknown_permission", ("crm.export",)),
    (("a", "grant", "crm.report.veiw", ""), "unknown_permission", ("crm.report.view",)),
    (("a", "role", "analist", ""), "unknown_role", ("analyst",)),
    (("a", "template", "bsae", ""), "unknown_template", ("base",)),
    (("bos", "grant", "crm.export", ""), "unknown_user", ("boss",)),
    (("a", "grant", "zzzzzz", ""), "unknown_permission", ()),
])
def test_unknown_names_come_with_the_chat_commands_did_you_mean(
        cells: tuple[str, str, str, str], code: str, hints: tuple[str, ...]) -> None:
    _good, errors = read_rows(rows(cells), catalog=CAT, members=MEMBERS, templates=TEMPLATES,
                              now=NOW)
    assert [(e.code, e.hints[:1]) for e in errors] == [(code, hints)]


def test_an_unknown_user_id_is_matched_by_the_rows_name() -> None:
    """The name column is informational, but names the member the admin meant."""
    cells = [(2, {"user_id": "zs01", "name": "张三", "type": "grant", "value": "crm.export"})]
    _good, errors = read_rows(cells, catalog=CAT, members={**MEMBERS, "zhangsan": "member"},
                              templates=TEMPLATES, now=NOW, names={"zhangsan": "张三"})
    assert [(e.code, e.hints) for e in errors] == [("unknown_user", ("zhangsan",))]


@pytest.mark.parametrize(("lang", "said"), [
    ("en", "there is no “crm.exprot” in the catalog. Did you mean `crm.export`, "),
    ("zh", "权限目录中没有「crm.exprot」。你是不是想写：`crm.export`、")])
def test_the_dry_run_says_did_you_mean(lang: str, said: str) -> None:
    from handlers.bulk import dry_run_lines

    good, errors = read_rows(rows(("a", "grant", "crm.exprot", "")), catalog=CAT,
                             members=MEMBERS, templates=TEMPLATES, now=NOW)
    lines = dry_run_lines(plan(good, errors, [], "add"), lang, "UTC")  # type: ignore[arg-type]
    assert len(lines) == 1 and said in lines[0], lines
