"""`shoprec export-recommendations`: the file, the JSON answer, errors, and the `export` job a worker runs."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from click.testing import CliRunner

from shoprec.cli import worker as worker_cli
from shoprec.cli.export import export_command
from shoprec.service import Services
from shoprec.service.testing import ReadyPlatform


def test_export_command_writes_the_file(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    out = tmp_path / "top.parquet"
    ran = CliRunner().invoke(export_command, ["-p", shop.name, "--k", "3", "--out", str(out)], obj=services.settings)
    assert ran.exit_code == 0, ran.output
    answer = json.loads(ran.stdout)
    assert answer["users"] == len(shop.user_ids) and answer["rows"] == len(pd.read_parquet(out))
    assert answer["model"] == "itemknn"


def test_export_command_refuses_bad_requests(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    runner = CliRunner()
    bad = runner.invoke(export_command, ["-p", shop.name, "--out", str(tmp_path / "x.json")], obj=services.settings)
    assert bad.exit_code != 0 and ".parquet or .csv" in str(bad.exception)
    unknown = runner.invoke(export_command, ["-p", "nope", "--out", str(tmp_path / "x.csv")], obj=services.settings)
    assert unknown.exit_code != 0 and "unknown platform 'nope'" in str(unknown.exception)
    assert not list(tmp_path.glob("x.*"))


def test_export_job_runs_on_a_worker(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    runner = CliRunner()
    users = tmp_path / "users.txt"
    users.write_text("\n".join(shop.user_ids[:5]))
    queued = runner.invoke(export_command, ["-p", shop.name, "--k", "2", "--out", "weekly.csv", "--users", str(users),
                                            "--job"], obj=services.settings)
    assert queued.exit_code == 0, queued.output
    job = json.loads(queued.stdout)
    assert job["kind"] == "export" and job["status"] == "queued"
    ran = runner.invoke(worker_cli.worker_command, ["--once"], obj=services.settings)
    assert json.loads(ran.stdout)["status"] == "succeeded", ran.output
    done = services.jobs.get(shop.name, job["job_id"])
    path = Path(services.settings.model_dir) / "exports" / shop.name / "weekly.csv"
    assert done.result is not None and done.result["rows"] == 10 and len(pd.read_csv(path)) == 10
