"""The import report counts what was stored: users and items that events create, rows vs events (issue 21)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shoprec.cli.data import count_lines
from shoprec.cli.main import _register, cli
from shoprec.data.records import EventRecord, ItemRecord, Source
from shoprec.ingest.pipeline import ingest
from shoprec.storage import create_db
from shoprec.types import EventType

T0 = 1_700_000_000.0


def run(*args: str) -> Result:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def test_events_count_the_users_and_items_they_create(tmp_path: Path) -> None:
    engine = create_db(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        events = [EventRecord("u1", "i1", EventType.VIEW, T0, source=Source("f", 2)),
                  EventRecord("u1", "i2", EventType.VIEW, T0 + 1, source=Source("f", 3)),
                  EventRecord("u2", "i1", EventType.VIEW, T0 + 2, source=Source("f", 4))]
        report = ingest(engine, "shop", events)
        out = report.to_dict()
        assert out["stored"] == {"events": 3, "items": 2, "users": 2}
        assert out["created"] == {"items": 2, "users": 2} and out["updated"] == {"items": 0, "users": 0}
        assert "stored in 'shop': 3 events, 2 new users, 2 new items" in report.render()
        again = ingest(engine, "shop", events)  # everything is there already
        assert again.to_dict()["stored"] == {"events": 0, "items": 0, "users": 0}
        items = [ItemRecord("i1", title="Mug", source=Source("g", 2)),
                 ItemRecord("i9", title="New", source=Source("g", 3))]
        catalog = ingest(engine, "shop", items)
        assert catalog.to_dict()["created"]["items"] == 1 and catalog.to_dict()["updated"]["items"] == 1
        assert catalog.to_dict()["stored"]["items"] == 2
        assert "1 new items (+1 updated)" in catalog.render()
    finally:
        engine.dispose()


def test_otto_report_says_rows_and_events(tmp_path: Path) -> None:
    sessions = [{"session": s, "events": [{"aid": 10 + i, "ts": 1659304800000 + 1000 * i + s, "type": "clicks"}
                                          for i in range(3)]} for s in range(2)]
    path = tmp_path / "otto.jsonl"
    path.write_text("\n".join(json.dumps(s) for s in sessions) + "\n", encoding="utf-8")
    db = f"sqlite:///{tmp_path / 'o.db'}"
    result = run("import", str(path), "-f", "otto", "-p", "otto", "--json", "--db", db)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["read"], report["events_read"], report["stored"]["events"]) == (2, 6, 6)
    assert report["stored"]["users"] == 2 and report["stored"]["items"] == 3
    assert "read 2 rows holding 6 events" in result.stderr and "accepted 2 rows" in result.stderr
    assert "6 events, 2 new users, 3 new items" in result.stderr


def test_progress_knows_the_size_of_plain_and_gzip_files(tmp_path: Path) -> None:
    import gzip

    plain = tmp_path / "e.csv"
    plain.write_text("a\nb\nc", encoding="utf-8")  # no final newline: still 3 lines
    assert count_lines(plain) == 3
    assert count_lines(tmp_path) is None  # a directory: spinner without percentage
    gz = tmp_path / "e.csv.gz"
    gz.write_bytes(gzip.compress(b"a\nb\nc\nd\n"))
    assert count_lines(gz) == 4  # counted through the decompressed stream
    assert count_lines(gz, gz_limit_bytes=1) is None  # too large to count first: spinner
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(b"not gzip at all")
    assert count_lines(broken) is None  # the import itself reports the damaged archive


def test_progress_on_a_terminal_shows_percentage_and_eta(monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from shoprec.cli import data as data_cli

    buffer = io.StringIO()
    monkeypatch.setattr(data_cli, "_stderr", lambda: Console(file=buffer, force_terminal=True, width=120))
    with data_cli._progress("importing e.csv", 200) as update:
        update(50)
    shown = buffer.getvalue()
    assert "25%" in shown and "ETA" in shown and "50/200 rows" in shown
    buffer.truncate(0)
    with data_cli._progress("importing e.csv", 200, enabled=False) as update:  # --quiet
        update(50)
    assert "%" not in buffer.getvalue()


@pytest.mark.parametrize("quiet", [[], ["--quiet"]])
def test_no_progress_bar_without_a_terminal(tmp_path: Path, quiet: list[str]) -> None:
    path = tmp_path / "e.csv"
    path.write_text("user_id,item_id,event_type,timestamp\nu1,i1,view,1704103200\n", encoding="utf-8")
    result = run("--db", f"sqlite:///{tmp_path / 'q.db'}", "import", str(path), "-f", "events-csv", "-p", "s", *quiet)
    assert result.exit_code == 0, result.output
    assert "ETA" not in result.stderr and "importing e.csv" not in result.stderr
