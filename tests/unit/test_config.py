"""Configuration: the example file, environment overrides, secrets, plain-words problems, and
``baton config check``."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.cli.main import main
from bot.config import ConfigError, Settings, load_settings

EXAMPLE = Path(__file__).resolve().parents[2] / "config.example.yaml"


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """No BATON_* or DINGTALK_* variable from the surrounding shell leaks into a test."""
    for k in list(os.environ):
        if k.upper().startswith(("BATON_", "DINGTALK_")):
            monkeypatch.delenv(k)
    yield


def write(tmp_path: Path, data: Any, name: str = "baton.yaml") -> Path:
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else yaml.safe_dump(data, allow_unicode=True),
                 encoding="utf-8")
    return p


def problems_of(path: Path | None, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(path, env=env or {})
    assert str(info.value) == "\n".join(info.value.problems)
    return info.value.problems


# --- the example file ----------------------------------------------------------------------


def test_example_loads_with_the_documented_defaults() -> None:
    s = load_settings(EXAMPLE, env={})
    d = s.dingtalk
    assert (d.robot_code, d.openapi_endpoint, d.oapi_endpoint) == (
        "", "https://api.dingtalk.com", "https://oapi.dingtalk.com")
    assert d.card_template_id == "baton-approval.schema" and d.exclusive_accounts is False
    assert (d.request_timeout, d.max_retries) == (5.0, 4)
    assert (d.stream.connect_timeout, d.stream.watchdog, d.stream.reconnect_max) == (10, 90, 30)
    assert not d.has_credentials
    assert s.database.url == "sqlite+aiosqlite:///baton.db"
    assert s.org.corp_id == "dingexamplecorp" and s.org.owner is None and s.org.admins == []
    assert s.locale.default == "zh-CN" and s.locale.lang == "zh" and s.locale.follow_user
    p = s.policy
    assert p.approvals_required == 1 and p.owner_candidates == "admins"
    assert p.approval_ttl == timedelta(hours=24)
    assert p.remind_every == timedelta(hours=4) and p.remind_max == timedelta(hours=24)
    assert p.escalate_after == timedelta(hours=12)
    assert p.post_transfer_review == timedelta(days=7)
    assert p.quiet_hours == "22:00-08:00" and p.timezone == "Asia/Shanghai"
    assert s.review.deadline == timedelta(days=14) and s.review.unreviewed == "keep"
    assert s.scheduler.poll_interval == timedelta(seconds=30)
    assert s.scheduler.lease == timedelta(minutes=2)
    o = s.outbox
    assert (o.per_conversation_per_minute, o.max_attempts, o.base_backoff, o.max_backoff) == (
        20, 8, 1.0, 300.0)
    assert set(s.catalog.permissions) == {"crm.customer.view", "crm.customer.edit", "crm.export",
                                          "crm.report.view"}
    assert s.catalog.sensitive == ["crm.export", "crm_admin"]
    # Member requests (section 13)
    assert p.approvers == ["owner", "admins"] and p.max_duration == timedelta(days=7)
    assert p.expiry_warning == timedelta(hours=1) and p.calendar is None
    assert p.break_glass.users == [] and p.break_glass.max == timedelta(hours=1)
    assert s.integrations.dingtalk_todo is False
    export = s.catalog.permissions["crm.export"].policy
    assert export is not None and export.max_duration == timedelta(hours=8)
    assert export.approvers == ["manager", "admins"]


@pytest.mark.parametrize(("policy", "problem"), [
    ({"approvers": ["boss"]}, "policy.approvers: 'boss' is not an approver"),
    ({"approvers": []}, "policy.approvers: must be a non-empty list"),
    ({"approvers": [{"role": "nope"}]}, "role 'nope' is not a role of the catalog"),
    ({"break_glass": {"permissions": ["zz"]}}, "'zz' is not a permission of the catalog"),
    ({"calendar": "us"}, "policy.calendar"),
    ({"max_duration": "soon"}, "policy.max_duration"),
])
def test_config_check_names_each_policy_problem(tmp_path: Path, policy: dict[str, Any],
                                                problem: str) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, {"policy": policy}), env={})
    assert problem in str(e.value)


@pytest.mark.parametrize(("own", "problem"), [
    ({"approvers": ["manager", {"users": []}]}, "users"),
    ({"auto_approve": {}}, "auto_approve needs departments, max_duration or both"),
    ({"auto_approve": {"departments": []}}, "auto_approve.departments is empty"),
    ({"approvals_required": 0}, "approvals_required"),
    ({"approvers": [{"role": "ghost"}]}, "role 'ghost' is not a role of the catalog"),
    ({"requestable": "sometimes"}, "requestable"),
])
def test_config_check_names_each_permission_policy_problem(
        tmp_path: Path, own: dict[str, Any], problem: str) -> None:
    catalog = {"permissions": {"crm.export": {"zh": "导出", "en": "Export", "policy": own}}}
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, {"catalog": catalog}), env={})
    assert problem in str(e.value)


def test_example_values_are_the_code_defaults_except_the_marked_examples() -> None:
    example = load_settings(EXAMPLE, env={}).model_dump()
    defaults = load_settings(None, env={}).model_dump()
    for section in defaults:
        if section == "catalog":  # example values
            continue
        if section == "org":  # corp_id is an example value
            example[section].pop("corp_id")
            defaults[section].pop("corp_id")
        assert example[section] == defaults[section], section


def test_the_example_survives_a_dump_and_validate_round_trip() -> None:
    """``baton sandbox --config`` re-validates a dump of the loaded settings: a permission
    policy's unset (None) durations must read back as None, not as a bad duration."""
    s = load_settings(EXAMPLE, env={})
    assert any(p.policy is not None and p.policy.max_duration is None
               for p in s.catalog.permissions.values())
    assert Settings.model_validate(s.model_dump()) == s


def test_every_section_of_the_settings_is_in_the_example() -> None:
    raw = yaml.safe_load(EXAMPLE.read_text(encoding="utf-8"))
    assert set(raw) == set(Settings.model_fields)


# --- environment -----------------------------------------------------------------------------


def test_baton_env_overrides_the_file_with_nesting(tmp_path: Path) -> None:
    f = write(tmp_path, {
        "database": {"url": "sqlite+aiosqlite:///from-file.db", "pool_size": 9},
        "dingtalk": {"request_timeout": 7.0, "stream": {"watchdog": 45, "connect_timeout": 4}},
        "org": {"corp_id": "dingfile", "admins": ["a"]},
    })
    s = load_settings(f, env={
        "BATON_DATABASE__URL": "postgresql+asyncpg://baton@db/baton",
        "BATON_DINGTALK__STREAM__WATCHDOG": "12.5",
        "BATON_ORG__ADMINS": '["lisi", "wangwu"]',
        "BATON_POLICY__APPROVAL_TTL": "3d",
        "BATON_OUTBOX__PER_CONVERSATION_PER_MINUTE": "7",
    })
    assert s.database.url == "postgresql+asyncpg://baton@db/baton"
    assert s.database.pool_size == 9  # the rest of the section still from the file
    assert s.dingtalk.stream.watchdog == 12.5
    assert s.dingtalk.stream.connect_timeout == 4
    assert s.dingtalk.request_timeout == 7.0
    assert s.org.admins == ["lisi", "wangwu"] and s.org.corp_id == "dingfile"
    assert s.policy.approval_ttl == timedelta(days=3)
    assert s.outbox.per_conversation_per_minute == 7


def test_env_is_read_from_the_process_environment(
        clean_env: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BATON_DATABASE__URL", "sqlite+aiosqlite:///env.db")
    assert load_settings(None).database.url == "sqlite+aiosqlite:///env.db"


def test_a_misspelt_env_key_is_a_problem() -> None:
    problems = problems_of(None, {"BATON_DATABASE__URLL": "x"})
    assert problems == [
        "database.urll: is not a known setting (check the spelling against config.example.yaml)"]


def test_a_misspelt_env_section_is_a_problem_not_silence() -> None:
    # Otherwise a replica meant for PostgreSQL quietly runs on its own SQLite file.
    problems = problems_of(None, {"BATON_DATABSE__URL": "postgresql+asyncpg://db/baton"})
    assert any("databse" in p for p in problems)


def test_dingtalk_credentials_come_from_the_environment() -> None:
    s = load_settings(EXAMPLE, env={"DINGTALK_CLIENT_ID": "dingappkey",
                                    "DINGTALK_CLIENT_SECRET": "app-secret-value-123"})
    assert s.dingtalk.client_id == "dingappkey"
    assert s.dingtalk.client_secret.get_secret_value() == "app-secret-value-123"
    assert s.dingtalk.has_credentials and s.dingtalk.effective_robot_code == "dingappkey"
    assert "app-secret-value-123" not in repr(s) and "app-secret-value-123" not in str(s)


def test_dingtalk_openapi_endpoint_env_moves_the_new_api_host() -> None:
    s = load_settings(None, env={"DINGTALK_OPENAPI_ENDPOINT": "http://127.0.0.1:9999"})
    assert s.dingtalk.openapi_endpoint == "http://127.0.0.1:9999"
    assert s.dingtalk.oapi_endpoint == "https://oapi.dingtalk.com"


def test_dingtalk_openapi_endpoint_env_overrides_the_file() -> None:
    # config.example.yaml spells out the default host; the environment still wins.
    s = load_settings(EXAMPLE, env={"DINGTALK_OPENAPI_ENDPOINT": "http://127.0.0.1:9999"})
    assert s.dingtalk.openapi_endpoint == "http://127.0.0.1:9999"


def test_baton_endpoint_override_beats_the_sdk_variable() -> None:
    s = load_settings(None, env={"DINGTALK_OPENAPI_ENDPOINT": "http://127.0.0.1:1",
                                 "BATON_DINGTALK__OPENAPI_ENDPOINT": "http://127.0.0.1:2"})
    assert s.dingtalk.openapi_endpoint == "http://127.0.0.1:2"


# --- problems in plain words -------------------------------------------------------------------


@pytest.mark.parametrize("key", ["client_secret", "client_id"])
def test_secrets_in_the_file_are_refused(tmp_path: Path, key: str) -> None:
    f = write(tmp_path, {"dingtalk": {key: "very-secret-in-file"}})
    problems = problems_of(f, {"DINGTALK_CLIENT_ID": "id", "DINGTALK_CLIENT_SECRET": "s" * 8})
    assert len(problems) == 1
    assert "dingtalk.client_id / client_secret" in problems[0]
    assert "DINGTALK_CLIENT_SECRET" in problems[0] and "environment" in problems[0]
    assert "very-secret-in-file" not in problems[0]


@pytest.mark.parametrize(("data", "expect"), [
    ({"databse": {"url": "x"}}, "databse: is not a known setting"),
    ({"dingtalk": {"robotcode": "x"}}, "dingtalk.robotcode: is not a known setting"),
    ({"dingtalk": {"stream": {"watchdogg": 3}}}, "dingtalk.stream.watchdogg: is not a known setting"),
    ({"policy": {"approval_ttl": "3 fortnights"}},
     "policy.approval_ttl: '3 fortnights' is not a duration"),
    ({"review": {"deadline": "soon"}}, "review.deadline: 'soon' is not a duration"),
    ({"scheduler": {"poll_interval": "-5s"}}, "scheduler.poll_interval: '-5s' is not a duration"),
    ({"scheduler": {"lease": "soon"}}, "scheduler.lease: 'soon' is not a duration"),
    ({"scheduler": {"poll_interval": "5m", "lease": "2m"}},
     "scheduler.lease: 120s is not longer than poll_interval (300s)"),
    ({"scheduler": {"lease": "30s"}}, "scheduler.lease: 30s is not longer than poll_interval (30s)"),
    ({"policy": {"quiet_hours": "25:00-08:00"}}, "policy.quiet_hours: '25:00-08:00' is not a time range"),
    ({"policy": {"quiet_hours": "22:00"}}, "policy.quiet_hours: '22:00' is not a time range"),
    ({"policy": {"quiet_hours": "evenings"}}, "policy.quiet_hours: 'evenings' is not a time range"),
    ({"policy": {"timezone": "Mars/Olympus"}}, "policy.timezone: 'Mars/Olympus' is not a known time zone"),
    ({"catalog": {"permissions": {"a.b": {"zh": "甲", "en": "A"}}, "roles": {"r": ["c.*"]}}},
     "catalog: roles.r: 'c.*' matches no permission in the catalog"),
    ({"catalog": {"permissions": {"a.b": {"zh": "甲", "en": "A"}}, "roles": {"owner": ["a.b"]}}},
     "catalog: roles.owner: owner and admin are built in"),
    ({"catalog": {"sensitive": ["zz"]}}, "catalog: sensitive: 'zz' is neither a role nor a permission"),
    ({"review": {"cron": "every quarter"}}, "review.cron: 'every quarter' is not a crontab line"),
    ({"review": {"cron": "0 9 31 2 *"}}, "review.cron: '0 9 31 2 *' never fires"),
    ({"drift": {"sweep": "daily"}}, "drift.sweep: 'daily' is not a crontab line"),
    ({"drift": {"sweep": "0 9 31 2 *"}}, "drift.sweep: '0 9 31 2 *' never fires"),
    ({"log": {"level": "LOUD"}}, "log.level: is not a log level"),
    ({"bulk": {"max_rows": 0}}, "bulk.max_rows: Input should be greater than or equal to 1"),
    ({"bulk": {"max_rows": "lots"}}, "bulk.max_rows: Input should be a valid integer"),
    ({"bulk": {"max_file_mb": -1}}, "bulk.max_file_mb: Input should be greater than 0"),
    ({"bulk": {"max_file_mb": 4096}}, "bulk.max_file_mb: Input should be less than or equal"),
    ({"bulk": {"max_rowz": 5}}, "bulk.max_rowz: is not a known setting"),
])
def test_each_problem_names_its_key(tmp_path: Path, data: dict[str, Any], expect: str) -> None:
    problems = problems_of(write(tmp_path, data))
    assert len(problems) == 1, problems
    assert problems[0].startswith(expect), problems


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    problems = problems_of(write(tmp_path, {
        "databse": {"url": "x"},
        "policy": {"approval_ttl": "forever", "timezone": "Nowhere/City"},
        "outbox": {"per_conversation_per_minute": 0},
    }))
    joined = "\n".join(problems)
    assert len(problems) == 4, problems
    for key in ("databse", "policy.approval_ttl", "policy.timezone",
                "outbox.per_conversation_per_minute"):
        assert key in joined


@pytest.mark.parametrize(("text", "expect"), [
    ("- just\n- a list\n", "the top level must be a mapping of sections"),
    ("dingtalk: [unclosed\n", "not valid YAML"),
])
def test_unreadable_files_are_named(tmp_path: Path, text: str, expect: str) -> None:
    f = write(tmp_path, text)
    [problem] = problems_of(f)
    assert problem.startswith(str(f)) and expect in problem


def test_missing_file_is_named(tmp_path: Path) -> None:
    [problem] = problems_of(tmp_path / "nope.yaml")
    assert problem == f"{tmp_path / 'nope.yaml'}: no such file"


def test_an_empty_file_is_all_defaults(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, ""), env={})
    assert s.model_dump() == load_settings(None, env={}).model_dump()


# --- baton config check ----------------------------------------------------------------------


def test_config_check_ok_without_credentials_says_run_will_refuse(
        clean_env: None, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert f"{EXAMPLE}: OK" in out
    assert "DINGTALK_CLIENT_ID" in out and "refuse" in out


def test_config_check_ok_with_credentials(
        clean_env: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("DINGTALK_CLIENT_ID", "dingappkey")
    monkeypatch.setenv("DINGTALK_CLIENT_SECRET", "a-real-looking-secret")
    assert main(["config", "check", str(EXAMPLE)]) == 0
    out = capsys.readouterr().out
    assert out.strip() == f"{EXAMPLE}: OK"
    assert "a-real-looking-secret" not in out


def test_config_check_lists_problems_and_exits_1(
        clean_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, {"policy": {"timezone": "Mars/Olympus", "quiet_hours": "soon"},
                         "log": {"levle": "DEBUG"}})
    assert main(["config", "check", str(f)]) == 1
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == f"{f}: 3 problem(s):"
    assert sorted(x.split(":")[0].strip(" -") for x in lines[1:]) == [
        "log.levle", "policy.quiet_hours", "policy.timezone"]


def test_config_check_refuses_a_secret_without_echoing_it(
        clean_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = write(tmp_path, {"dingtalk": {"client_secret": "leaked-secret-xyz"}})
    assert main(["config", "check", str(f)]) == 1
    captured = capsys.readouterr()
    assert "DINGTALK_CLIENT_SECRET" in captured.out
    assert "leaked-secret-xyz" not in captured.out + captured.err


def test_config_check_missing_file(
        clean_env: None, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "absent.yaml")]) == 1
    assert "no such file" in capsys.readouterr().out


def test_config_check_without_a_file_checks_the_environment(
        clean_env: None, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("BATON_POLICY__TIMEZONE", "Nowhere/City")
    assert main(["config", "check"]) == 1
    assert "policy.timezone: 'Nowhere/City' is not a known time zone" in capsys.readouterr().out


@pytest.mark.parametrize("off", ["", "null", "None", "off"])
def test_quiet_hours_can_be_turned_off_from_the_environment(off: str) -> None:
    s = load_settings(None, env={"BATON_POLICY__QUIET_HOURS": off})
    assert s.policy.quiet_hours is None
    assert load_settings(None, env={}).policy.quiet_hours == "22:00-08:00"


def test_log_level_is_case_insensitive() -> None:
    assert load_settings(None, env={"BATON_LOG__LEVEL": "debug"}).log.level == "DEBUG"


def test_quiet_hours_off_in_yaml_is_read_as_none(tmp_path: Path) -> None:
    """YAML reads an unquoted off as false."""
    s = load_settings(write(tmp_path, "policy:\n  quiet_hours: off\n"), env={})
    assert s.policy.quiet_hours is None
    problems = problems_of(write(tmp_path, "policy:\n  quiet_hours: 22\n"))
    assert problems[0].startswith("policy.quiet_hours: 22 is not a time range")


# --- integrations.dingtalk_roles -------------------------------------------------------------


def test_role_sync_map_must_name_catalog_roles(tmp_path: Path) -> None:
    catalog = {"permissions": {"crm.view": {"zh": "看", "en": "view"}},
               "roles": {"sales": ["crm.view"]}}
    ok = load_settings(write(tmp_path, {"catalog": catalog, "integrations": {"dingtalk_roles": {
        "enabled": True, "map": {"sales": " 销售 "}}}}), env={})
    assert ok.integrations.dingtalk_roles.map == {"sales": "销售"}
    assert ok.integrations.dingtalk_roles.mode == "enforce"
    problems = problems_of(write(tmp_path, {"catalog": catalog, "integrations": {
        "dingtalk_roles": {"map": {"salse": "销售"}}}}))
    assert any("salse is not a role of catalog.roles (known: sales)" in p for p in problems)
    problems = problems_of(write(tmp_path, {"catalog": catalog, "integrations": {
        "dingtalk_roles": {"enabled": True}}}))
    assert any("enabled with an empty map" in p for p in problems)
    problems = problems_of(write(tmp_path, {"catalog": catalog, "integrations": {
        "dingtalk_roles": {"reconcile": "every night", "mode": "fix"}}}))
    assert any(p.startswith("integrations.dingtalk_roles.reconcile:") for p in problems)
    assert any(p.startswith("integrations.dingtalk_roles.mode:") for p in problems)
    problems = problems_of(write(tmp_path, {"dingtalk": {"monthly_call_budget": 0}}))
    assert any(p.startswith("dingtalk.monthly_call_budget:") for p in problems)


def test_bulk_limits_are_settings(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, {"bulk": {"max_rows": 500000, "max_file_mb": 50}}))
    assert (s.bulk.max_rows, s.bulk.max_bytes) == (500_000, 50 * 1024 * 1024)
    assert (Settings().bulk.max_rows, Settings().bulk.max_file_mb) == (200_000, 20)
    env = load_settings(env={"BATON_BULK__MAX_ROWS": "1000"})
    assert env.bulk.max_rows == 1000


def test_settings_survive_a_dump_and_validate_round_trip() -> None:
    """The sandbox and the tests rebuild settings from ``model_dump()``: every optional key
    left unset (None) must validate again (a per-permission policy without max_duration
    did not)."""
    s = load_settings(EXAMPLE, env={})
    catalog = {"permissions": {"crm.view": {"zh": "看", "en": "view",
                                            "policy": {"approvals_required": 1}}}}
    with_policy = Settings.model_validate({**s.model_dump(), "catalog": catalog})
    assert Settings.model_validate(with_policy.model_dump()) == with_policy
