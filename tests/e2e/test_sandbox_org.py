"""``baton sandbox --org-size N``: the real command seeds a large demo organisation in its
store (once), the simulated directory holds its members, and an export carries its table."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tests.e2e.helpers import baton

pytestmark = pytest.mark.e2e


def test_a_large_organisation_is_seeded_once_and_exported(tmp_path: Path) -> None:
    script = tmp_path / "script.txt"
    script.write_text("/in dm\nexport csv\n", encoding="utf-8")

    def run() -> str:
        r = baton("sandbox", "--org-size", "250", "--lang", "en", "--db",
                  str(tmp_path / "sandbox.db"), "--script", str(script), "--files",
                  str(tmp_path / "files"), cwd=tmp_path, timeout=120)
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
        return r.stdout

    out = run()
    assert "a large organisation of 250 members (2500 permission rows added" in out
    [exported] = list((tmp_path / "files").glob("baton-permissions-*.csv"))
    rows = list(csv.DictReader(io.StringIO(exported.read_text(encoding="utf-8-sig"))))
    org = [r for r in rows if r["user_id"].startswith("m")]
    assert len(org) == 2500
    assert {r["type"] for r in org} == {"role", "grant", "template"}
    assert any(r["name"] == "成员00249" for r in org)
    # a second start finds it there: nothing added twice
    assert "(0 permission rows added" in run()
