"""`shoprec retrain policy|history|run` through the real entry point, on a SQLite file with a synthetic shop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from shoprec.cli.main import main
from shoprec.service import ServingConfig, build_services
from shoprec.service.testing import synthetic_platform
from shoprec.settings import Settings


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    services = build_services(Settings(database_url=url, model_dir=tmp_path / "models"), ServingConfig())
    synthetic_platform(services, "shop", users=80, items=40, model="popular")
    services.close()
    monkeypatch.setenv("SHOPREC_MODEL_DIR", str(tmp_path / "models"))
    return url


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(list(args))
        raise SystemExit(0)
    out = capsys.readouterr()
    return int(info.value.code or 0), out.out, out.err


def test_policy_show_set_and_off(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--db", db, "retrain", "policy", "-p", "shop")
    assert code == 0 and json.loads(out)["source"] == "default"
    code, out, _ = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--after-events", "100",
                       "--margin", "0.1")
    policy = json.loads(out)
    assert code == 0 and (policy["after_events"], policy["margin"], policy["enabled"]) == (100, 0.1, True)
    code, out, _ = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--every-hours", "24")
    policy = json.loads(out)  # the other fields stay
    assert (policy["every_hours"], policy["after_events"], policy["margin"]) == (24.0, 100, 0.1)
    code, out, _ = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--off")
    policy = json.loads(out)
    assert (policy["enabled"], policy["margin"], policy["source"]) == (False, 0.1, "platform")
    code, out, _ = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--default")
    assert json.loads(out)["source"] == "default"


def test_bad_policy_and_unknown_platform_are_clear_errors(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--after-events", "0")
    assert code == 2 and out == "" and "field after_events" in err and "Traceback" not in err
    code, _, err = run(capsys, "--db", db, "retrain", "policy", "-p", "shop", "--margin", "3")
    assert code == 2 and "field margin" in err
    code, _, err = run(capsys, "--db", db, "retrain", "history", "-p", "nope")
    assert code == 2 and "unknown platform 'nope'" in err


def test_run_then_history(db: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "--db", db, "retrain", "history", "-p", "shop")
    assert code == 0 and "no retraining decisions" in out
    code, out, err = run(capsys, "--db", db, "retrain", "run", "-p", "shop")
    decision = json.loads(out)
    assert code == 0 and decision["decision"] in ("promote", "keep") and "retraining popular" in err
    code, out, _ = run(capsys, "--db", db, "retrain", "history", "-p", "shop", "--json")
    assert [d["decision_id"] for d in json.loads(out)] == [decision["decision_id"]]
    code, out, _ = run(capsys, "--db", db, "retrain", "history", "-p", "shop")
    header, row = out.strip().splitlines()
    assert "decision" in header and decision["candidate_model_id"][:8] in row and decision["decision"] in row
