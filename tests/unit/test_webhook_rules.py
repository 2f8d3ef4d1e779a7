"""Webhooks, the pure parts: the signature (known vectors, verify(sign(x)), any flipped byte
refused), the retry and pause rule, the subscription filter, and the configuration."""

from __future__ import annotations

import hashlib
import hmac
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, load_settings
from bot.core.domain.webhooks import backoff, settle, sign, signature, verify, wants

T0 = 1_780_000_000


# --- signing ---------------------------------------------------------------------------------

@pytest.mark.parametrize(("secret", "t", "body"), [
    ("whsec_test", T0, b'{"id":"e1","seq":1}'),
    ("s", 0, b""),
    ("密钥", T0, '{"subject":"赵六"}'.encode()),
])
def test_signature_is_hmac_sha256_over_t_dot_body(secret: str, t: int, body: bytes) -> None:
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    assert signature(secret, t, body) == expected
    assert sign(secret, t, body) == f"t={t},v1={expected}"


def test_a_known_vector() -> None:
    # Fixed, so a change to the scheme shows here (and receivers in the wild would break).
    assert sign("whsec_test", 1700000000, b'{"a":1}') == (
        "t=1700000000,v1=" + hmac.new(b"whsec_test", b'1700000000.{"a":1}',
                                      hashlib.sha256).hexdigest())


@pytest.mark.parametrize(("header", "now", "ok"), [
    (sign("k", T0, b"x"), T0, True),
    (sign("k", T0, b"x"), T0 + 300, True),                      # at the tolerance's edge
    (sign("k", T0, b"x"), T0 + 301, False),                     # too old: a replay
    (sign("k", T0, b"x"), T0 - 301, False),                     # from the future
    (sign("other", T0, b"x"), T0, False),                       # another secret
    (f"t={T0},v1=00{signature('k', T0, b'x')[2:]}", T0, False),  # a wrong digest
    (f"v1={signature('k', T0, b'x')}", T0, False),              # no timestamp
    (f"t={T0}", T0, False),                                     # no signature
    ("", T0, False),
    ("garbage", T0, False),
    (f"t=abc,v1={signature('k', T0, b'x')}", T0, False),
    (f"t={T0},v1=dead,v1={signature('k', T0, b'x')}", T0, True),  # rotation: either may match
    (f" t={T0} , v1={signature('k', T0, b'x')} ", T0, True),      # spaces around parts
])
def test_verify(header: str, now: int, ok: bool) -> None:
    assert verify("k", header, b"x", now) is ok


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=300),
       t=st.integers(min_value=0, max_value=2**40))
def test_verify_accepts_what_sign_made(secret: str, body: bytes, t: int) -> None:
    assert verify(secret, sign(secret, t, body), body, t)


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(min_size=1, max_size=300),
       t=st.integers(min_value=0, max_value=2**40), data=st.data())
def test_any_flipped_byte_of_the_body_is_refused(secret: str, body: bytes, t: int,
                                                 data: st.DataObject) -> None:
    i = data.draw(st.integers(min_value=0, max_value=len(body) - 1))
    bit = data.draw(st.integers(min_value=0, max_value=7))
    tampered = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1:]
    assert not verify(secret, sign(secret, t, body), tampered, t)


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=100),
       t=st.integers(min_value=0, max_value=2**40), data=st.data())
def test_any_changed_character_of_the_header_is_refused(secret: str, body: bytes, t: int,
                                                        data: st.DataObject) -> None:
    header = sign(secret, t, body)
    digest_at = header.index("v1=") + 3
    i = data.draw(st.integers(min_value=digest_at, max_value=len(header) - 1))
    c = data.draw(st.sampled_from("0123456789abcdef").filter(lambda x: x != header[i]))
    assert not verify(secret, header[:i] + c + header[i + 1:], body, t)


@given(secret=st.text(min_size=1, max_size=40), body=st.binary(max_size=100),
       t=st.integers(min_value=1, max_value=2**40))
def test_a_signature_does_not_move_to_another_time(secret: str, body: bytes, t: int) -> None:
    header = sign(secret, t, body).replace(f"t={t},", f"t={t - 1},")
    assert not verify(secret, header, body, t)


# --- retries and pausing ---------------------------------------------------------------------

NOW = datetime(2026, 1, 5, 2, 0, tzinfo=UTC)


class Half(random.Random):
    def random(self) -> float:
        return 0.5   # no jitter: the delay is the nominal one


@pytest.mark.parametrize(("cursor", "attempts", "reached", "error", "expect"), [
    # (cursor, attempts, reached, error, attempts after, delay s or None, paused)
    (5, 0, 9, None, (9, 0, None, False)),          # all delivered
    (5, 3, 9, None, (9, 0, None, False)),          # progress clears earlier failures
    (5, 0, 5, "x", (5, 1, 2.0, False)),            # first failure: base
    (5, 1, 5, "x", (5, 2, 4.0, False)),            # doubling
    (5, 2, 5, "x", (5, 3, 8.0, False)),
    (5, 8, 5, "x", (5, 9, 60.0, False)),           # capped
    (5, 9, 5, "x", (5, 10, 0.0, True)),            # the 10th failure at one event pauses
    (5, 9, 7, "x", (7, 1, 2.0, False)),            # failed at a later event: its first try
])
def test_settle(cursor: int, attempts: int, reached: int, error: str | None,
                expect: tuple[int, int, float | None, bool]) -> None:
    out = settle(cursor, attempts, reached, error, NOW, max_attempts=10, base=2.0, cap=60.0,
                 rng=Half())
    c, a, delay, paused = expect
    assert (out.cursor, out.attempts, out.paused, out.error) == (c, a, paused, error)
    assert out.next_attempt_at == NOW + timedelta(seconds=delay or 0)


@given(attempts=st.integers(min_value=1, max_value=60), seed=st.integers())
def test_backoff_stays_within_jitter_of_the_capped_exponential(attempts: int, seed: int) -> None:
    d = backoff(attempts, 1.5, 300.0, random.Random(seed))
    nominal = min(300.0, 1.5 * 2 ** (attempts - 1))
    assert 0.5 * nominal <= d <= 1.5 * nominal


def test_max_attempts_one_pauses_at_the_first_failure() -> None:
    out = settle(0, 0, 0, "HTTP 500", NOW, max_attempts=1, base=1, cap=1, rng=Half())
    assert out.paused and out.attempts == 1


@pytest.mark.parametrize(("events", "kind", "ok"), [
    (("*",), "grant.added", True),
    (("grant.added",), "grant.added", True),
    (("grant.added", "role.changed"), "grant.revoked", False),
])
def test_wants(events: tuple[str, ...], kind: str, ok: bool) -> None:
    assert wants(events, kind) is ok


# --- configuration ---------------------------------------------------------------------------

def cfg(tmp_path: Path, hooks: list[dict[str, object]], **delivery: object) -> Path:
    p = tmp_path / "baton.yaml"
    data: dict[str, object] = {"integrations": {"webhooks": hooks}}
    if delivery:
        data["integrations"] = {"webhooks": hooks, "webhook_delivery": delivery}
    p.write_text(yaml.safe_dump(data), encoding="utf-8")
    return p


HOOK = {"name": "crm", "url": "https://crm.example.com/hook", "secret": "${CRM_SECRET}"}


def test_a_webhook_with_its_secret_from_the_environment(tmp_path: Path) -> None:
    s = load_settings(cfg(tmp_path, [HOOK, {**HOOK, "name": "erp", "events": ["grant.added"],
                                            "max_attempts": 3, "timeout": 2}]),
                      env={"CRM_SECRET": "s3cret"})
    crm, erp = s.integrations.webhooks
    assert crm.secret.get_secret_value() == "s3cret" and crm.events == ("*",)
    assert (crm.max_attempts, crm.timeout) == (10, 10.0)
    assert erp.events == ("grant.added",) and (erp.max_attempts, erp.timeout) == (3, 2.0)
    assert "s3cret" not in repr(s.integrations)


@pytest.mark.parametrize(("hook", "env", "says"), [
    ({**HOOK, "secret": "literal-secret"}, {}, "secrets are read only from the environment"),
    (HOOK, {}, "CRM_SECRET is not set"),
    ({**HOOK, "url": "ftp://x/y"}, {"CRM_SECRET": "s"}, "is not an http(s) URL"),
    ({**HOOK, "url": "https://"}, {"CRM_SECRET": "s"}, "is not an http(s) URL"),
    ({**HOOK, "name": "CRM system"}, {"CRM_SECRET": "s"}, "is not a webhook name"),
    ({**HOOK, "events": ["grant.add"]}, {"CRM_SECRET": "s"}, "unknown event type(s) grant.add"),
    ({**HOOK, "events": []}, {"CRM_SECRET": "s"}, "events must be a list"),
    ({**HOOK, "max_attempts": 0}, {"CRM_SECRET": "s"}, "max_attempts"),
    ({**HOOK, "timeout": 40}, {"CRM_SECRET": "s"}, "must be under half of"),
])
def test_bad_webhooks_are_refused_in_plain_words(tmp_path: Path, hook: dict[str, object],
                                                 env: dict[str, str], says: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(cfg(tmp_path, [hook]), env=env)
    assert any(says in p for p in info.value.problems), info.value.problems
    assert "literal-secret" not in str(info.value)


def test_webhook_names_are_unique(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(cfg(tmp_path, [HOOK, {**HOOK, "url": "http://other/"}]),
                      env={"CRM_SECRET": "s"})
    assert "given twice: crm" in str(info.value)
