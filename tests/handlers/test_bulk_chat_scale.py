"""The bulk round trip through chat, on a smaller large organisation (300 members, 3,000
rows; tests/handlers/test_bulk_scale.py runs 10,000 through the CLI): the export imports
back with nothing to change; one row in ten edited gives a dry run that is a summary with the
first rows and the full per-row report as a file (never thousands of lines as messages);
approved, exactly those changes apply; ``import undo`` restores the table."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from bot.cli.sandbox import edit_file, org_catalog, org_shape
from handlers.bulk import send_export
from storage import bulk as store
from storage.demo import seed_org
from tests.handlers.conftest import CARD, GROUP, Harness, MakeHarness
from tests.handlers.test_bulk import deliver_exports, exported, send_file

MEMBERS = 300


@pytest.fixture
async def app(make_harness: MakeHarness) -> Harness:
    h = await make_harness(org={"admin_conversations": [GROUP]}, catalog=org_catalog(),
                           locale={"default": "en"})
    async with h.db.uow() as uow:
        await seed_org(uow, h.settings.org.corp_id, org_shape(MEMBERS, leaders=False),
                       h.clock.now())
        await uow.commit()
    return h


async def table(h: Harness) -> list[tuple[Any, ...]]:
    async with h.db.uow() as uow:
        entries, _ = await store.entries(uow, h.settings.org.corp_id, h.clock.now())
    return [(e.user_id, e.kind, e.value, e.expires_at) for e in entries]


async def test_the_round_trip_through_chat(app: Harness, tmp_path: Path) -> None:
    h = app
    before = await table(h)
    name, data = await exported(h, "lisi")
    rows = len([r for r in before if r[0].startswith("m")])
    assert rows == MEMBERS * 10

    text = await send_file(h, "lisi", name, data, "nothing to change")
    assert f"({len(before)} rows) matches the current permissions exactly" in text

    src, edited = tmp_path / name, tmp_path / "edited.xlsx"
    src.write_bytes(data)
    n = edit_file(str(src), "xlsx", str(edited))
    sent = await h.send_file("lisi", "edited.xlsx", edited.read_bytes())
    reply = h.reply_with(sent, "Import dry run", "user:lisi")
    m = re.search(r"(\d+) to create, (\d+) to update, (\d+) unchanged", reply)
    assert m is not None and int(m[1]) + int(m[2]) == n, reply
    assert int(m[3]) == len(before) - n
    assert "the full per-row dry run is sent to you as a file" in reply
    assert reply.count("\n") < 60                     # a summary, not thousands of lines
    # the report: every row of the file, with its status
    [(_name, report)] = [f for f in await deliver_exports(h, sent)
                               if f[0].startswith("baton-import-report")]
    ws = openpyxl.load_workbook(io.BytesIO(report), read_only=True)["report"]
    statuses = [r[1] for r in ws.iter_rows(min_row=2, values_only=True)]
    assert len(statuses) == len(before)
    assert len(statuses) - statuses.count("unchanged") == n

    await h.press("zhangsan", CARD.format(1) + "-group", "approve")
    await h.card_status(CARD.format(1), "applied")
    after = await table(h)
    assert len(set(after) - set(before)) == n

    await h.ask("lisi", "import undo B-1", "")
    await h.press("zhangsan", CARD.format(2) + "-group", "approve")
    await h.card_status(CARD.format(2), "applied")
    assert await table(h) == before


async def test_an_export_over_the_limits_says_so_in_chat(make_harness: MakeHarness) -> None:
    """The file is sent all the same, then a note naming the key to raise before it can be
    imported back; and that import is refused, naming it too."""
    h = await make_harness(catalog=org_catalog(), locale={"default": "en"},
                           bulk={"max_rows": 1000})
    async with h.db.uow() as uow:
        await seed_org(uow, h.settings.org.corp_id, org_shape(150, leaders=False),
                       h.clock.now())
        await uow.commit()
    sent = await h.say("lisi", "export xlsx")
    [row] = [s for s in sent if s.kind == "export"]
    await send_export(h.db, h.settings, h.dingtalk, row.payload, h.clock.now())  # type: ignore[arg-type]
    calls = h.dingtalk.called("oto_send")
    [(content, name, _)] = h.dingtalk.called("upload_media")
    assert calls[-2][1] == "sampleFile"
    to, key, param = calls[-1]
    assert to == ["lisi"] and key == "sampleMarkdown"
    assert "more than an import accepts (1000, bulk.max_rows)" in param["text"]
    text = await send_file(h, "lisi", name, content, "refused")
    assert "more than 1000 rows (bulk.max_rows)" in text
