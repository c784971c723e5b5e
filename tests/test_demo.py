"""`shoprec demo` end to end on a temporary SQLite file: generated rows land in the database, cleaned."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from shoprec.cli.demo import STEPS, DemoOptions, DemoRun, Step, run_demo
from shoprec.cli.main import _register, cli
from shoprec.data.synthetic import NOISE_KINDS, generate
from shoprec.errors import DataError
from shoprec.storage import create_db, load_interactions

SMALL = ["--users", "30", "--items", "24", "--platforms", "2", "--seed", "3", "--noise", "0.1"]


@pytest.fixture(scope="module", autouse=True)
def _commands() -> None:
    _register()


def _demo(db: Path, *args: str) -> Result:
    return CliRunner().invoke(cli, ["demo", "--db-path", str(db), *SMALL, *args])


def _summary(result: Result) -> dict[str, Any]:
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # stdout holds the JSON alone; progress and reports went to stderr


def _stored_events(db: Path, platform: str) -> list[tuple[str, str, str, int]]:
    engine = create_db(f"sqlite:///{db}")
    try:
        inter, _ = load_interactions(engine, platform)
    finally:
        engine.dispose()
    return sorted(zip(inter.users.externals(inter.user), inter.items.externals(inter.item),
                      inter.event_type.tolist(), inter.timestamp.tolist(), strict=True))


def test_demo_stores_the_generated_rows_and_reports_what_cleaning_removed(tmp_path):
    db = tmp_path / "demo.db"
    summary = _summary(_demo(db, "--json"))
    data = generate(DemoOptions(users=30, items=24, platforms=2, seed=3, noise=0.1).synthetic_config())
    assert set(summary["platforms"]) == set(data.platforms) == {"shop-a", "shop-b"}
    for name, platform in data.platforms.items():
        stats = summary["platforms"][name]
        assert (stats["users"], stats["items"], stats["events"]) == (30, 24, len(platform.events))
        assert stats["events_by_type"] == platform.event_counts()
        assert set(stats["removed"]) == set(NOISE_KINDS)
        assert sum(stats["removed"].values()) == len(platform.noise)
        inter, _ = data.to_interactions(name)
        expected = sorted(zip(inter.users.externals(inter.user), inter.items.externals(inter.item),
                              inter.event_type.tolist(), inter.timestamp.tolist(), strict=True))
        assert _stored_events(db, name) == expected
    assert summary["shared_users"] == round(data.config.overlap * 30)


def test_each_run_starts_fresh_unless_reuse(tmp_path):
    db = tmp_path / "demo.db"
    first = _summary(_demo(db, "--json"))
    second = _summary(_demo(db, "--json"))
    assert second["platforms"]["shop-a"]["events"] == first["platforms"]["shop-a"]["events"]
    assert second["platforms"]["shop-a"]["removed"]["duplicate"] == first["platforms"]["shop-a"]["removed"]["duplicate"]
    reused = _summary(_demo(db, "--json", "--reuse"))
    shop = reused["platforms"]["shop-a"]
    assert shop["events"] == first["platforms"]["shop-a"]["events"]  # nothing added twice
    assert shop["removed"]["duplicate"] > first["platforms"]["shop-a"]["events"] // 2


def test_demo_refuses_to_replace_a_file_that_is_not_a_shoprec_database(tmp_path):
    precious = tmp_path / "notes.db"
    precious.write_text("not a database")
    result = _demo(precious, "--json")
    assert result.exit_code != 0
    assert isinstance(result.exception, DataError) and "not a shoprec database" in str(result.exception)
    assert precious.read_text() == "not a database"


def test_human_summary_goes_to_stdout_and_progress_to_stderr(tmp_path):
    result = _demo(tmp_path / "demo.db")
    assert result.exit_code == 0, result.output
    assert "shop-a" in result.stdout and "removed by cleaning" in result.stdout
    assert "generate" in result.stderr and "import into platform 'shop-a'" in result.stderr
    assert "import into platform" not in result.stdout


def test_steps_can_be_extended(tmp_path):
    seen: dict[str, int] = {}

    def count_imports(run: DemoRun) -> None:
        seen["imports"] = len(run.imports)
        run.summary["extra"] = "done"

    options = DemoOptions(db_path=tmp_path / "demo.db", users=10, items=12, platforms=1, noise=0.0)
    summary = run_demo(options, steps=[*STEPS, Step("extra", "an added step", count_imports)])
    assert seen == {"imports": 1}
    assert summary["extra"] == "done"
    assert list(summary["seconds"]) == [*(s.name for s in STEPS), "extra"]
    assert "removed" in summary["platforms"]["shop-a"] and not summary["platforms"]["shop-a"]["removed"]
