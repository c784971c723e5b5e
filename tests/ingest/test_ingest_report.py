"""ImportReport: the JSON shape, the human text, and when an import counts as failed."""

from __future__ import annotations

import json

from shoprec.data.records import Rejected, Source
from shoprec.ingest.report import ImportReport


def _report() -> ImportReport:
    report = ImportReport(platform="shop", source="f.csv", format="events-csv", read=5, accepted=2, seconds=2.0)
    for line, reason in ((3, "missing_user"), (4, "missing_user"), (6, "duplicate")):
        report.reject(Rejected(Source("f.csv", line), reason, "user_id" if reason != "duplicate" else None, "empty"))
    report.note("timestamps are synthetic")
    report.note("timestamps are synthetic")
    report.add_stored("shop", "events", 2)
    report.add_stored("shop", "items", 1)
    return report


def test_to_dict_shape() -> None:
    out = _report().to_dict()
    assert {"platform", "read", "accepted", "rejected", "examples", "notes", "stored", "platforms"} <= set(out)
    assert out["rejected"] == {"duplicate": 1, "missing_user": 2}
    assert out["read"] == out["accepted"] + sum(out["rejected"].values())
    assert out["examples"]["missing_user"] == ["f.csv:3 field=user_id: missing_user: empty",
                                               "f.csv:4 field=user_id: missing_user: empty"]
    assert out["notes"] == ["timestamps are synthetic"]
    assert out["stored"] == {"events": 2, "items": 1, "users": 0}
    assert json.loads(json.dumps(out)) == out


def test_render_for_people() -> None:
    text = _report().render()
    assert "read 5 rows in 2.0 s" in text and "accepted 2 rows, rejected 3" in text
    assert "missing_user" in text and "f.csv:3 field=user_id" in text
    assert "note: timestamps are synthetic" in text


def test_ok_unless_nothing_could_be_imported() -> None:
    assert _report().ok
    nothing = ImportReport(platform="p")
    assert not nothing.ok
    nothing.read = 1
    nothing.reject(Rejected(Source("f", 1), "bad_row"))
    assert not nothing.ok
    already = ImportReport(platform="p", read=1)
    already.reject(Rejected(Source("f", 1), "duplicate"))
    assert already.ok  # the row is in the database already
