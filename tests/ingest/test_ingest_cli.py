"""`shoprec import` / `shoprec stats`: output streams, exit status, and clear messages for bad input."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from shoprec.cli.main import _register, cli, main
from shoprec.storage import create_db, load_interactions

EVENTS = """user_id,item_id,event_type,timestamp,value,session_id
u1,i1,view,2024-01-01T10:00:00,,s1
u1,i2,purchase,1704103200,2,s1
u2,i1,cart,not-a-time,,s2
u2,i1,teleport,1704103200,,s2
u3,i3
u2,i2,rating,1704103300,4.5,
"""


@pytest.fixture
def db(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def run(*args: str) -> Result:
    _register()
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def run_main(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """The real entry point (error reporting included), in process."""
    with pytest.raises(SystemExit) as info:
        main([*args])
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_import_reports_json_on_stdout_and_people_on_stderr(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "ev.csv", EVENTS)
    report_file = tmp_path / "report.json"
    result = run("--db", db, "import", str(path), "--format", "events-csv", "--platform", "shop", "--json",
                 "--report-json", str(report_file))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)  # stdout holds the JSON alone
    assert report == json.loads(report_file.read_text())
    assert (report["platform"], report["read"], report["accepted"]) == ("shop", 6, 3)
    assert report["rejected"] == {"bad_event_type": 1, "bad_row": 1, "bad_timestamp": 1}
    assert report["examples"]["bad_timestamp"][0].startswith("ev.csv:4 field=timestamp: bad_timestamp")
    assert report["examples"]["bad_row"][0].startswith("ev.csv:6")
    assert "accepted 3 rows, rejected 3" in result.stderr and "--report-json is deprecated" in result.stderr


def test_stats_json_and_table(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "ev.csv", EVENTS)
    assert run("--db", db, "import", str(path), "-f", "events-csv", "-p", "shop").exit_code == 0
    result = run("--db", db, "stats", "--platform", "shop", "--json")
    assert result.exit_code == 0
    assert json.loads(result.stdout) == {"users": 2, "items": 2, "events": 3,
                                         "events_by_type": {"purchase": 1, "rating": 1, "view": 1}}
    every = json.loads(run("--db", db, "stats", "--json").stdout)
    assert list(every["platforms"]) == ["shop"]
    table = run("--db", db, "stats")
    assert table.exit_code == 0 and "shop" in table.stdout and "purchase 1" in table.stdout


def test_importing_the_same_file_twice_adds_nothing(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "ev.csv", EVENTS)
    run("--db", db, "import", str(path), "-f", "events-csv", "-p", "shop")
    again = run("--db", db, "import", str(path), "-f", "events-csv", "-p", "shop", "--json")
    assert again.exit_code == 0, again.output  # the rows are all there: not a failure
    assert json.loads(again.stdout)["rejected"]["duplicate"] == 3
    assert json.loads(run("--db", db, "stats", "-p", "shop", "--json").stdout)["events"] == 3


def test_items_then_events_make_a_catalog(tmp_path: Path, db: str) -> None:
    items = write(tmp_path, "items.jsonl",
                  '{"item_id": "i1", "title": "Mug", "category": "Home > Kitchen", "price": 7.5}\n'
                  '{"item_id": "i2", "title": "Pan", "available": false}\n'
                  '{"item_id": "i3", "title": 42, "price": "cheap"}\n'
                  'not json at all\n')
    result = run("--db", db, "import", str(items), "-f", "items-jsonl", "-p", "shop", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["accepted"] == 2 and sum(report["rejected"].values()) == 2
    assert any(e.startswith("items.jsonl:4") for ex in report["examples"].values() for e in ex)
    run("--db", db, "import", str(write(tmp_path, "ev.csv", EVENTS)), "-f", "events-csv", "-p", "shop")
    inter, catalog = load_interactions(create_db(db), "shop")
    assert catalog.items.to_list()[:2] == ["i1", "i2"]
    assert catalog.title[0] == "Mug" and catalog.category[0] == "Home > Kitchen"
    assert catalog.available.tolist()[:2] == [True, False] and len(inter) == 3


def test_nothing_importable_exits_non_zero(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    bad = write(tmp_path, "bad.csv", "user_id,item_id,event_type,timestamp\n,i1,view,1\nu1,i1,view,soon\n")
    code, out, err = run_main(capsys, "--db", db, "import", str(bad), "-f", "events-csv", "-p", "shop", "--json")
    assert code != 0
    assert json.loads(out)["accepted"] == 0  # the report is still written
    assert "error: nothing imported from" in err and "bad.csv:3 field=timestamp" in err
    assert "Traceback" not in err
    empty = write(tmp_path, "empty.csv", "user_id,item_id,event_type,timestamp\n")
    code, _, err = run_main(capsys, "--db", db, "import", str(empty), "-f", "events-csv", "-p", "shop")
    assert code != 0 and "no rows read" in err


@pytest.mark.parametrize(("args", "message"), [
    (["import", "{tmp}/missing.csv", "-f", "events-csv", "-p", "shop"], "missing.csv: no such file or directory"),
    (["import", "{tmp}/ev.csv", "-f", "excel", "-p", "shop"], "unknown format 'excel' (valid: events-csv"),
    (["import", "{tmp}/ev.csv", "-f", "events-csv", "-p", " spaced "], "platform name"),
    (["stats", "-p", "nowhere"], "unknown platform 'nowhere'"),
])
def test_bad_input_gives_a_clear_message(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    write(tmp_path, "ev.csv", EVENTS)
    code, out, err = run_main(capsys, "--db", db, *[a.format(tmp=tmp_path) for a in args])
    assert code != 0 and out == ""
    assert message in err and "Traceback" not in err


def test_malformed_jsonl_lines_name_file_line_and_field(tmp_path: Path, db: str) -> None:
    path = write(tmp_path, "ev.jsonl",
                 '{"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": 1700000000}\n'
                 '{"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": "yesterday"}\n'
                 '{"user_id": "u1", "item_id": "i1", "event_type": "view", "timestamp": 1700000000, "value": "x"}\n'
                 '{"user_id": "u1", "item_id": \n')
    result = run("--db", db, "import", str(path), "-f", "events-jsonl", "-p", "shop", "--json")
    assert result.exit_code == 0
    report = json.loads(result.stdout)
    assert report["read"] == 4 and report["accepted"] == 1
    examples = [e for ex in report["examples"].values() for e in ex]
    assert any(e.startswith("ev.jsonl:2 field=timestamp") for e in examples)
    assert any(e.startswith("ev.jsonl:3 field=value") for e in examples)
    assert any(e.startswith("ev.jsonl:4") for e in examples)


def test_default_database_is_shoprec_db_in_the_working_directory(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "ev.csv", EVENTS)
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SHOPREC_DATABASE_URL", raising=False)
    assert run("import", str(path), "-f", "events-csv", "-p", "shop").exit_code == 0
    assert (tmp_path / "shoprec.db").exists()
    other = tmp_path / "env.db"
    monkeypatch.setenv("SHOPREC_DATABASE_URL", f"sqlite:///{other}")
    assert run("import", str(path), "-f", "events-csv", "-p", "shop").exit_code == 0
    assert other.exists()


def test_unreachable_database_exits_with_a_message_and_no_traceback(tmp_path: Path) -> None:
    path = write(tmp_path, "ev.csv", EVENTS)
    proc = subprocess.run(
        [sys.executable, "-c", "from shoprec.cli.main import main; main()", "--db",
         "postgresql+psycopg://nobody@127.0.0.1:1/x", "import", str(path), "-f", "events-csv", "-p", "shop"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode != 0 and proc.stdout == ""
    assert "error: cannot connect: database postgresql+psycopg://nobody@127.0.0.1:1/x is unreachable" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_real_online_retail_sample(shared_data: Path, tmp_path: Path, db: str) -> None:
    """The first 3,000 lines of the real UCI file (copied to tmp only): the real dirt is counted by reason."""
    source = shared_data / "online-retail" / "online_retail.csv.gz"
    with gzip.open(source, "rt", encoding="utf-8") as f:
        head = [next(f) for _ in range(3001)]
    sample = tmp_path / "sample.csv.gz"
    with gzip.open(sample, "wt", encoding="utf-8") as f:
        f.writelines(head)
    result = run("--db", db, "import", str(sample), "-f", "online-retail", "-p", "retail", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["read"] == 3000 and report["read"] == report["accepted"] + sum(report["rejected"].values())
    assert {"missing_user", "non_product_code"} <= set(report["rejected"])
    stats = json.loads(run("--db", db, "stats", "-p", "retail", "--json").stdout)
    assert stats["events"] == report["stored"]["events"] > 1000
    assert set(stats["events_by_type"]) <= {"purchase", "return"}
    _, catalog = load_interactions(create_db(db), "retail")
    assert sum(bool(t) for t in catalog.title) == len(catalog)  # every stored item got its description


def test_parquet_events_with_a_timestamp_type(tmp_path: Path, db: str) -> None:
    import pandas as pd

    frame = pd.DataFrame({"user_id": ["u1", "u2", "u3"], "item_id": ["i1", "i1", ""],
                          "event_type": ["view", "purchase", "view"],
                          "timestamp": pd.to_datetime(["2024-01-01 10:00", "2024-01-01 11:00", "2024-01-01 12:00"]),
                          "value": [None, 2.0, None]})
    path = tmp_path / "ev.parquet"
    frame.to_parquet(path)
    result = run("--db", db, "import", str(path), "-f", "events-parquet", "-p", "shop", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["read"], report["accepted"]) == (3, 2)
    assert report["examples"]["missing_item"][0].startswith("ev.parquet:3 field=item_id")
    inter, _ = load_interactions(create_db(db), "shop")
    assert inter.timestamp.tolist() == [1704103200, 1704106800]


def test_truncated_or_corrupt_gzip_gives_a_message(tmp_path: Path, db: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = "".join(f"u{k % 50},i{k % 30},view,{1_700_000_000 + k},,\n" for k in range(20000))
    data = gzip.compress(("user_id,item_id,event_type,timestamp,value,session_id\n" + rows).encode())
    (tmp_path / "cut.csv.gz").write_bytes(data[: len(data) // 2])
    code, _, err = run_main(capsys, "--db", db, "import", str(tmp_path / "cut.csv.gz"), "-f", "events-csv", "-p", "s")
    assert code != 0 and "cut.csv.gz: cannot be read further" in err and "Traceback" not in err
    assert "accepted rows before were stored" in err
    (tmp_path / "junk.csv.gz").write_bytes(b"not gzip at all")
    code, _, err = run_main(capsys, "--db", db, "import", str(tmp_path / "junk.csv.gz"), "-f", "events-csv", "-p", "s")
    assert code != 0 and "junk.csv.gz" in err and "Traceback" not in err
