"""Batch export (shoprec.service.export): the serving path's lists for every user, resumable, never half-written."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

import shoprec.service.export as export_module
from shoprec.errors import ConfigError, DataError
from shoprec.service import Services
from shoprec.service.export import check_export, export_recommendations, read_user_file
from shoprec.service.recommend import Filters
from shoprec.service.testing import ReadyPlatform, synthetic_platform
from shoprec.worker import handlers


def test_export_lists_are_the_served_lists(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    out = tmp_path / "recs.parquet"
    result = export_recommendations(services, shop.name, 5, out)
    frame = pd.read_parquet(out)
    assert result.users == len(frame.user_id.unique()) == len(shop.user_ids)
    assert result.rows == len(frame) and result.model == "itemknn"
    assert list(frame.columns) == ["user_id", "rank", "item_id", "score", "reason", "level"]
    for user in shop.user_ids[:25]:
        served = services.recommend.recommend(shop.name, user, 5, filters=Filters())
        rows = frame[frame.user_id == user].sort_values("rank")
        assert rows.item_id.tolist() == served.item_ids, user
        assert rows.score.tolist() == pytest.approx([i.score for i in served.items], abs=1e-5)
        assert rows.level.tolist() == [i.reason.level for i in served.items]
    assert not Path(f"{out}.parts").exists()


def test_export_never_logs_an_exposure(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    def logged() -> int:
        services.recommend.log.flush()
        with services.engine.connect() as conn:
            return int(conn.exec_driver_sql("SELECT COUNT(*) FROM recommendations").scalar() or 0)

    before = logged()
    export_recommendations(services, shop.name, 3, tmp_path / "r.csv")
    assert logged() == before
    services.recommend.recommend(shop.name, shop.user_ids[0], 3)  # a served list is logged (the count works)
    assert logged() == before + 1


def test_listed_users_and_csv(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    users = tmp_path / "users.txt"
    users.write_text("user_id\n" + "\n".join([shop.user_ids[3], shop.user_ids[1], "someone-new"]) + "\n")
    out = tmp_path / "r.csv"
    result = export_recommendations(services, shop.name, 4, out, users=read_user_file(users))
    frame = pd.read_csv(out)
    assert frame.user_id.unique().tolist() == [shop.user_ids[3], shop.user_ids[1], "someone-new"]
    assert result.rows == len(frame) == 12
    assert set(frame[frame.user_id == "someone-new"].level) <= {"popular", "popular_category"}


def test_resume_continues_after_the_written_parts(services: Services, shop: ReadyPlatform, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "PART_USERS", 16)
    out = tmp_path / "recs.parquet"
    seen: list[int] = []

    def stop_after_two_parts(done: int, total: int) -> None:
        seen.append(done)
        if done > 32:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_recommendations(services, shop.name, 5, out, progress=stop_after_two_parts, batch_size=8)
    assert not out.exists()  # nothing half-written
    resumed = export_recommendations(services, shop.name, 5, out)
    assert resumed.resumed_users == 32
    fresh = export_recommendations(services, shop.name, 5, tmp_path / "fresh.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(out), pd.read_parquet(tmp_path / "fresh.parquet"))
    assert fresh.resumed_users == 0


def test_a_different_request_starts_over(services: Services, shop: ReadyPlatform, tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_module, "PART_USERS", 16)
    out = tmp_path / "recs.parquet"

    def stop(done: int, total: int) -> None:
        if done > 16:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        export_recommendations(services, shop.name, 5, out, progress=stop)
    again = export_recommendations(services, shop.name, 6, out)  # another k: the parts do not fit
    assert again.resumed_users == 0 and set(pd.read_parquet(out).groupby("user_id").size()) == {6}


def test_unknown_platform_and_bad_requests(services: Services, shop: ReadyPlatform, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="unknown platform 'nope'"):
        export_recommendations(services, "nope", 5, tmp_path / "r.parquet")
    with pytest.raises(DataError, match=r"\.parquet or \.csv"):
        export_recommendations(services, shop.name, 5, tmp_path / "r.xlsx")
    with pytest.raises(DataError, match="k must be between 1 and 100, got 0"):
        export_recommendations(services, shop.name, 0, tmp_path / "r.csv")
    assert not list(tmp_path.glob("r.*"))


def test_without_a_model_the_lists_are_popularity(services: Services, tmp_path: Path) -> None:
    bare = synthetic_platform(services, "bare", model=None)
    result = export_recommendations(services, bare.name, 3, tmp_path / "r.parquet")
    frame = pd.read_parquet(tmp_path / "r.parquet")
    assert result.model is None and set(frame.level) <= {"popular", "popular_category"}
    user = bare.user_ids[0]
    assert frame[frame.user_id == user].item_id.tolist() == services.recommend.recommend(bare.name, user, 3).item_ids


def test_export_job_kind(services: Services, shop: ReadyPlatform) -> None:
    assert check_export({"k": 3}, {}) == {"k": 3, "format": "parquet", "name": "recommendations"}
    for bad, message in (({"k": 0}, "k must be an integer"), ({"format": "xlsx"}, "format must be"),
                         ({"name": "../x"}, "name must be"), ({"path": "/etc"}, "unknown export job field 'path'")):
        with pytest.raises(ConfigError, match=message):
            services.jobs.submit(shop.name, "export", bad)
    params = check_export({"k": 2, "format": "csv", "name": "weekly", "users": shop.user_ids[:4]}, {})
    lines: list[str] = []
    result = handlers.export(services, shop.name, params, lines.append)
    path = Path(services.settings.model_dir) / "exports" / shop.name / "weekly.csv"
    assert result["path"] == str(path) and result["rows"] == 8 and len(pd.read_csv(path)) == 8
    assert lines[-1] == "exported 4 of 4 users"
    job = services.jobs.submit(shop.name, "export", {"k": 2})
    assert job.kind == "export"
