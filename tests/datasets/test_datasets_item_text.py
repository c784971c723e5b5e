"""Item text on real-shop formats: `s3rec` with `<name>_item_text.tsv`, and `amazon-json` directories.

Small sources are written by each test; the real-data test reads ../shared (skipped, saying so, when absent).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from shoprec.cli.main import _register, cli
from shoprec.data.records import EventRecord, ItemRecord, Rejected
from shoprec.data.splits import leave_one_out
from shoprec.datasets import FORMATS, load, read_records
from shoprec.datasets._common import SYNTHETIC_EPOCH, SYNTHETIC_STEP
from shoprec.errors import DataError
from shoprec.storage import create_db, load_interactions


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def make_s3rec_text(root: Path, *, text: str | None = None) -> Path:
    """Toy.txt (3 users), attributes for items 1, 2, and a text file for items 1, 2, 3, 9."""
    seq = _write(root / "Toy.txt", "1 1 2 3\n2 3 1\n3 2 3 1\n")
    _write(root / "Toy_item2attributes.json", json.dumps({"1": [5], "2": [6]}))
    _write(root / "Toy_item_text.tsv", text if text is not None else (
        "item_id\tasin\ttitle\n1\tB001\tred nail polish\n2\tB002\tblue eye shadow\n3\tB003\t\n9\tB009\tlone soap\n"))
    return seq


INTER = {"0": [0, 1, 2, 3], "1": [2, 0, 4], "2": [1, 2, 4, 0, 3]}
ITEMS = {
    "0": {"title": "Steel staples 1/2 inch", "description": "Heavy-duty staples.", "brand": "Stanley",
          "categories": "Industrial & Scientific,Fasteners,Staples"},
    "1": {"title": "Duct tape", "description": "", "brand": "3M",
          "categories": "Industrial & Scientific,Tapes, Adhesives & Sealants,Duct Tape"},
    "2": {"title": "Nitrile gloves", "description": "Box of 100", "brand": "",
          "categories": ["Industrial & Scientific", "Lab & Scientific Products"]},
    "3": {"title": "Lab coat", "description": "White", "brand": "Fisher", "categories": "", "color": "white"},
    "4": {"title": "Goggles", "description": "", "brand": "Uvex", "categories": "Safety"},
}


def make_amazon_json(root: Path, inter: dict | None = None, items: dict | None = None) -> Path:
    _write(root / "Toy.inter.json", json.dumps(INTER if inter is None else inter))
    _write(root / "Toy.item.json", json.dumps(ITEMS if items is None else items))
    return root


def _items(records: list) -> dict[str, ItemRecord]:
    return {r.item_id: r for r in records if isinstance(r, ItemRecord)}


# ------------------------------------------------------------------------------------ s3rec
def test_s3rec_reads_item_text_beside_the_sequences(tmp_path: Path) -> None:
    records = list(read_records("s3rec", make_s3rec_text(tmp_path)))
    items = _items(records)
    assert items["1"].title == "red nail polish" and items["1"].attributes == {"attribute_ids": [5], "asin": "B001"}
    assert items["3"].title == "" and items["3"].attributes == {"asin": "B003"}
    assert items["9"].title == "lone soap"  # an item only the text names is still an item
    assert not [r for r in records if isinstance(r, Rejected)]
    ds = load("s3rec", tmp_path / "Toy.txt")
    cat = ds.catalog
    assert cat.title[cat.items.index("2")] == "blue eye shadow"
    assert cat.attribute_ids[cat.items.index("2")].tolist() == [6]
    assert cat.items.to_list()[:3] == ["1", "2", "3"]  # order of first appearance in the sequences


def test_s3rec_fast_and_record_paths_agree(tmp_path: Path) -> None:
    make_s3rec_text(tmp_path)
    fast, slow = load("s3rec", tmp_path / "Toy.txt"), load("s3rec", tmp_path / "Toy.txt", fast=False)
    assert fast.catalog.texts() == slow.catalog.texts() and fast.catalog.items == slow.catalog.items
    assert np.array_equal(fast.interactions.item, slow.interactions.item)


def test_s3rec_bad_item_text_lines_are_named(tmp_path: Path) -> None:
    seq = make_s3rec_text(tmp_path, text="item_id\tasin\ttitle\n1\tB001\tred nail polish\n2\tB002\n\tB3\tno id\n")
    bad = [(r.source.file, r.source.line, r.reason, r.field) for r in read_records("s3rec", seq)
           if isinstance(r, Rejected)]
    assert bad == [("Toy_item_text.tsv", 3, "bad_row", None), ("Toy_item_text.tsv", 4, "missing_item", "item_id")]
    assert load("s3rec", seq).catalog.title[0] == "red nail polish"
    headless = make_s3rec_text(tmp_path, text="1\tB001\tred nail polish\n")
    [only] = [r for r in read_records("s3rec", headless) if isinstance(r, Rejected)]
    assert (only.source.line, only.reason) == (1, "bad_row") and "item_id and title" in only.detail


# ------------------------------------------------------------------------------ amazon-json
def test_amazon_json_sequences_in_list_order_with_item_text(tmp_path: Path) -> None:
    assert "amazon-json" in FORMATS
    records = list(read_records("amazon-json", make_amazon_json(tmp_path)))
    events = [(e.user_id, e.item_id, e.timestamp) for e in records if isinstance(e, EventRecord)]
    assert [e[:2] for e in events if e[0] == "1"] == [("1", "2"), ("1", "0"), ("1", "4")]
    assert [e[2] for e in events if e[0] == "1"] == [SYNTHETIC_EPOCH + k * SYNTHETIC_STEP for k in range(3)]
    items = _items(records)
    assert items["1"].category == "Industrial & Scientific > Tapes, Adhesives & Sealants > Duct Tape"
    assert items["2"].category == "Industrial & Scientific > Lab & Scientific Products"
    assert (items["0"].title, items["0"].brand, items["0"].description) == (
        "Steel staples 1/2 inch", "Stanley", "Heavy-duty staples.")
    assert items["3"].attributes == {"color": "white"}
    ds = load("amazon-json", tmp_path)
    cat = ds.catalog
    text = cat.text(cat.items.index("0"))
    assert all(w in text for w in ("Steel staples", "Stanley", "Fasteners", "Heavy-duty"))
    assert ds.synthetic_timestamps and ds.report.counts() == {}


def test_amazon_json_leave_one_out_takes_each_lists_last_items(tmp_path: Path) -> None:
    ds = load("amazon-json", make_amazon_json(tmp_path))
    split = leave_one_out(ds.interactions)
    inter = ds.interactions
    test = {inter.users.external(int(u)): inter.items.external(int(i))
            for u, i in zip(split.test.user, split.test.item, strict=True)}
    valid = {inter.users.external(int(u)): inter.items.external(int(i))
             for u, i in zip(split.valid.user, split.valid.item, strict=True)}
    assert test == {u: str(items[-1]) for u, items in INTER.items()}
    assert valid == {u: str(items[-2]) for u, items in INTER.items()}


def test_amazon_json_fast_and_record_paths_agree(tmp_path: Path) -> None:
    make_amazon_json(tmp_path, inter={**INTER, "3": "nope", "4": [], "5": [1, True]})
    fast, slow = load("amazon-json", tmp_path), load("amazon-json", tmp_path, fast=False)
    for name in ("user", "item", "timestamp", "event_type"):
        assert np.array_equal(getattr(fast.interactions, name), getattr(slow.interactions, name))
    assert fast.catalog.texts() == slow.catalog.texts()
    assert fast.report.counts() == slow.report.counts() == {"bad_value": 2, "missing_item": 1}


def test_amazon_json_bad_input_is_named(tmp_path: Path) -> None:
    root = make_amazon_json(tmp_path, items={**ITEMS, "5": {"title": 7}, "6": "just text"})
    bad = [(r.source.file, r.source.line, r.reason, r.field) for r in read_records("amazon-json", root)
           if isinstance(r, Rejected)]
    assert bad == [("Toy.item.json", 6, "bad_value", "title"), ("Toy.item.json", 7, "bad_row", None)]
    _write(tmp_path / "broken" / "B.inter.json", '{"0": [1, 2')
    [broken] = [r for r in read_records("amazon-json", tmp_path / "broken") if isinstance(r, Rejected)]
    assert broken.reason == "bad_json"
    with pytest.raises(DataError, match=r"no \*\.inter\.json"):
        read_records("amazon-json", _write(tmp_path / "empty" / "x.txt", "").parent)
    with pytest.raises(DataError, match="directory"):
        read_records("amazon-json", tmp_path / "Toy.inter.json")


def test_import_and_evaluate_amazon_json(tmp_path: Path) -> None:
    root = make_amazon_json(tmp_path / "shop")
    db = f"sqlite:///{tmp_path / 'shop.db'}"
    _register()
    res = CliRunner().invoke(cli, ["import", str(root), "-f", "amazon-json", "-p", "sci", "--json", "--db", db])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["stored"]["events"] == sum(len(v) for v in INTER.values()) and report["read"] == report["accepted"]
    inter, catalog = load_interactions(create_db(db), "sci")
    assert len(inter) == 12 and catalog.brand[catalog.items.index("0")] == "Stanley"
    assert catalog.category[catalog.items.index("1")].endswith("Tapes, Adhesives & Sealants > Duct Tape")
    res = CliRunner().invoke(cli, ["evaluate", "--data", f"amazon-json:{root}", "--protocol", "loo",
                                   "--model", "popular"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout)["n_users_evaluated"] == 3


# ------------------------------------------------------------------------------ real data
@pytest.mark.realdata
def test_real_item_text(shared_data: Path) -> None:
    beauty = load("s3rec", shared_data / "amazon-beauty" / "Beauty.txt")
    cat = beauty.catalog
    assert sum(1 for t in cat.title if t) == 12_100 and beauty.report.counts() == {}
    assert cat.title[cat.items.index("1")] == "nail lacquer simmer and shimmer"
    assert cat.attributes[cat.items.index("1")]["asin"] == "B004756YJA" and len(cat.attribute_ids[0]) > 0
    sci = load("amazon-json", shared_data / "amazon-scientific")
    inter = sci.interactions
    assert (len(inter), inter.n_users, inter.n_items) == (58_492, 8_317, 4_344)
    assert sci.report.counts() == {} and all(sci.catalog.title)
    assert sum(1 for d in sci.catalog.description if d) == 4_221
    first = inter.users.index("0")
    assert inter.items.externals(inter.to_sequences()[first]) == [str(i) for i in range(9)]
