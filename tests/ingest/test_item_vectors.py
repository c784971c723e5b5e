"""The shop's own named item vectors: item files (JSONL, Parquet, CSV) and the service write the same rows, a
name's dimension is fixed per platform, NaN and wrong dimensions are refused naming `vectors.<name>`, the
snapshot loads them into ItemCatalog.vectors, deleting an item deletes them, and its export shows them."""

from __future__ import annotations

import csv as std_csv
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import sqlalchemy as sa

from shoprec.data.records import ItemRecord, Record, Source
from shoprec.datasets import read_records
from shoprec.ingest.pipeline import ImportReport, ingest
from shoprec.service import Services
from shoprec.service.errors import NotFound, RecordErrors
from shoprec.storage import find_platform, load_interactions
from shoprec.storage.vectors import VectorRepo

IMAGE = {"a": [1.0, 0.0, 0.5], "b": [0.0, 2.0, -1.0]}
LLM = {"a": [0.25, 0.75], "b": [1.0, 1.0]}


def _stored(engine: sa.Engine, platform: str) -> dict[tuple[str, str], list[float]]:
    """(item id, name) -> vector of every stored vector of the platform."""
    _, catalog = load_interactions(engine, platform)
    out = {}
    for name, matrix in catalog.vectors.items():
        for idx in np.flatnonzero(catalog.vector_mask[name]):
            out[(catalog.items.external(int(idx)), name)] = matrix[idx].tolist()
    return out


def _examples(report: ImportReport, reason: str) -> list[str]:
    return report.cleaning.rules[reason].examples


def _rows() -> list[dict]:
    return [{"item_id": i, "title": f"Item {i}", "vectors": {"image": IMAGE[i], "llm": LLM[i]}} for i in "ab"]


def _write_files(tmp: Path) -> dict[str, Path]:
    jsonl = tmp / "items.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in _rows()))
    parquet = tmp / "items.parquet"
    pq.write_table(pa.Table.from_pylist(_rows()), parquet)
    csv = tmp / "items.csv"
    with csv.open("w", newline="") as f:  # the vectors column holds JSON text (quoted by the csv module)
        writer = std_csv.writer(f)
        writer.writerow(["item_id", "title", "vectors"])
        writer.writerows([r["item_id"], r["title"], json.dumps(r["vectors"])] for r in _rows())
    return {"items-jsonl": jsonl, "items-parquet": parquet, "items-csv": csv}


def _expected() -> dict[tuple[str, str], list[float]]:
    return {(i, n): v[i] for i in "ab" for n, v in (("image", IMAGE), ("llm", LLM))}


@pytest.mark.parametrize("fmt", ["items-jsonl", "items-parquet", "items-csv"])
def test_item_files_store_named_vectors(engine: sa.Engine, platform: str, tmp_path: Path, fmt: str) -> None:
    report = ingest(engine, platform, read_records(fmt, _write_files(tmp_path)[fmt]))
    assert report.accepted == 2 and not report.rejected
    assert _stored(engine, platform) == _expected()
    _, catalog = load_interactions(engine, platform)
    assert catalog.vectors["image"].dtype == np.float32 and catalog.vectors["image"].shape == (2, 3)
    assert catalog.title == ["Item a", "Item b"] and catalog.attributes == [{}, {}]  # vectors are no attribute


def test_rest_and_file_store_the_same_rows(services: Services, tmp_path: Path) -> None:
    services.platforms.create("rest")
    services.data.upsert_items("rest", [ItemRecord(**r) for r in _rows()])  # type: ignore[arg-type]
    ingest(services.engine, "file", read_records("items-jsonl", _write_files(tmp_path)["items-jsonl"]))
    assert _stored(services.engine, "rest") == _stored(services.engine, "file") == _expected()


def test_dimension_fixed_per_platform_and_name(engine: sa.Engine, platform: str) -> None:
    first = [ItemRecord("a", vectors={"image": [1.0, 2.0, 3.0]}, source=Source("items.jsonl", 1)),
             ItemRecord("b", vectors={"image": [1.0, 2.0]}, source=Source("items.jsonl", 2)),  # 2 != 3 (same import)
             ItemRecord("c", vectors={"image": [0.0, 1.0, 0.0], "llm": [1.0]}, source=Source("items.jsonl", 3))]
    report = ingest(engine, platform, first)
    assert report.accepted == 2 and report.rejected == {"bad_vector_dim": 1}
    (example,) = _examples(report, "bad_vector_dim")
    assert example.startswith("items.jsonl:2 field=vectors.image") and "have 3" in example
    later = ingest(engine, platform, [ItemRecord("d", vectors={"llm": [1.0, 2.0]}, source=Source("more.jsonl", 1))])
    assert later.rejected == {"bad_vector_dim": 1}  # the stored dimension (1) holds in a later import
    other = ingest(engine, platform + "-x", [ItemRecord("a", vectors={"image": [1.0] * 5})])
    assert not other.rejected  # another platform fixes its own dimension for the same name
    with engine.connect() as conn:
        assert VectorRepo(conn, find_platform(conn, platform) or 0).dims() == {"image": 3, "llm": 1}
        assert VectorRepo(conn, find_platform(conn, platform + "-x") or 0).dims() == {"image": 5}


@pytest.mark.parametrize(("vectors", "field", "reason"), [
    ({"image": [1.0, float("nan"), 0.0]}, "vectors.image", "bad_vector"),
    ({"image": [1.0, float("inf"), 0.0]}, "vectors.image", "bad_vector"),
    ({"image": [1e39, 0.0, 0.0]}, "vectors.image", "bad_vector"),  # beyond float32
    ({"image": []}, "vectors.image", "bad_vector"),
    ({"image": ["1", 2.0, 3.0]}, "vectors.image", "bad_vector"),
    ({"Image!": [1.0]}, "vectors.Image!", "bad_vector_name"),
    ([1.0, 2.0], "vectors", "bad_vectors"),
])
def test_bad_vectors_are_refused_naming_the_field(sqlite_engine: sa.Engine, vectors: object, field: str,
                                                 reason: str) -> None:
    records: list[Record] = [ItemRecord("a", vectors=vectors, source=Source("items.jsonl", 1)),  # type: ignore[arg-type]
                             ItemRecord("b", vectors={"image": [1.0, 2.0, 3.0]}, source=Source("items.jsonl", 2))]
    report = ingest(sqlite_engine, "shop", records)
    assert report.rejected == {reason: 1} and report.accepted == 1
    assert _examples(report, reason)[0].startswith(f"items.jsonl:1 field={field}:")
    assert set(_stored(sqlite_engine, "shop")) == {("b", "image")}


def test_nan_in_a_jsonl_line_is_refused(sqlite_engine: sa.Engine, tmp_path: Path) -> None:
    path = tmp_path / "items.jsonl"
    path.write_text('{"item_id": "a", "vectors": {"image": [1.0, NaN]}}\n{"item_id": "b", "vectors": "oops"}\n')
    report = ingest(sqlite_engine, "shop", read_records("items-jsonl", path))
    assert report.rejected == {"bad_vector": 1, "bad_vectors": 1}
    assert "field=vectors.image" in _examples(report, "bad_vector")[0]


def test_service_refuses_a_batch_with_a_wrong_dimension_whole(services: Services) -> None:
    services.platforms.create("shop")
    services.data.upsert_items("shop", [ItemRecord("a", vectors={"image": [1.0, 0.0]})])
    with pytest.raises(RecordErrors) as err:
        services.data.upsert_items("shop", [ItemRecord("b", vectors={"image": [1.0, 0.0]}),
                                            ItemRecord("c", vectors={"image": [1.0, 0.0, 0.0]})])
    (e,) = err.value.errors
    assert (e.index, e.field, e.reason) == (1, "vectors.image", "bad_vector_dim")
    assert set(_stored(services.engine, "shop")) == {("a", "image")}  # nothing of the refused batch


def test_update_keeps_unnamed_vectors_and_null_removes(services: Services) -> None:
    services.platforms.create("shop")
    services.data.upsert_items("shop", [ItemRecord("a", vectors={"image": [1.0, 0.0], "llm": [0.5]})])
    services.data.upsert_items("shop", [ItemRecord("a", title="new", vectors={"image": [0.0, 1.0]})])
    assert services.data.get_item("shop", "a").vectors == {"image": [0.0, 1.0], "llm": [0.5]}
    services.data.upsert_items("shop", [ItemRecord("a", title="newer")])  # no vectors given: they stay
    services.data.upsert_items("shop", [ItemRecord("a", vectors={"llm": None})])
    assert services.data.get_item("shop", "a").vectors == {"image": [0.0, 1.0]}


def test_deleting_an_item_deletes_its_vectors(services: Services) -> None:
    services.platforms.create("shop")
    services.data.upsert_items("shop", [ItemRecord(**r) for r in _rows()])  # type: ignore[arg-type]
    assert services.data.get_item("shop", "a").vectors == {"image": IMAGE["a"], "llm": LLM["a"]}
    services.data.delete_item("shop", "a")
    with pytest.raises(NotFound):
        services.data.get_item("shop", "a")
    assert set(_stored(services.engine, "shop")) == {("b", "image"), ("b", "llm")}
    services.data.upsert_items("shop", [ItemRecord("a")])  # revived without vectors: none come back
    assert services.data.get_item("shop", "a").vectors == {}


def test_catalog_align_pads_named_vectors() -> None:
    from shoprec.data import IdMap, ItemCatalog

    items = IdMap(["a", "b"])
    catalog = ItemCatalog(items=items, vectors={"image": np.ones((2, 3), dtype=np.float32)},
                          vector_mask={"image": np.array([True, False])})
    items.add("c")  # an item added after the catalog was built
    catalog.align()
    assert catalog.vectors["image"].shape == (3, 3) and not catalog.vectors["image"][2].any()
    assert catalog.vector_mask["image"].tolist() == [True, False, False]
