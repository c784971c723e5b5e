"""`amazon-json`: a directory with `<name>.inter.json` and `<name>.item.json`, the layout of several public
generative-recommendation codebases (LC-Rec, LETTER, CollisionGenRec; e.g. Amazon "Scientific").

- `<name>.inter.json`: `{"user": [item, item, ...]}`, each user's items oldest first (the list order IS the
  sequence order; the files have no times). Item ids are integers or strings.
- `<name>.item.json` (optional): `{"item": {"title", "description", "brand", "categories", ...}}`;
  `categories` is a comma-separated path ("A,B,C"; a comma followed by a space belongs to a name, as in
  "Tapes, Adhesives & Sealants") or a list; it becomes the catalog's category path "A > B > C". Other
  string fields become item attributes.

Events are implicit `purchase` events with the same synthetic times as `s3rec` (the n-th item of a user at
2000-01-01 + n hours), so leave-one-out takes each user's last list entry as the test target. "Lines" in the
report are entries of the JSON objects (the n-th user, the n-th item), which is how a bad one is named.
Item records follow the events, so the item map lists items in order of first appearance in the sequences.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from shoprec.data.records import EventRecord, ItemRecord, Note, Record, Rejected, Source
from shoprec.datasets._common import SYNTHETIC_EPOCH, SYNTHETIC_STEP, check_dir, parse_id
from shoprec.datasets.dataset import EventTable, RecordCollector, add_ids, clean_columns
from shoprec.errors import DataError
from shoprec.preprocess.clean import CleaningConfig, EventColumns, RecordCleaner
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

NOTE = ("amazon-json: the files have no timestamps; synthetic ones (2000-01-01 + 1 hour per position in each "
        "user's list) keep each user's order and mean nothing across users")
ITEM_FIELDS = ("title", "description", "brand")
_CATEGORY_SPLIT = re.compile(r",(?! )")


def files(root: Path) -> tuple[Path, Path | None]:
    """The interaction file of directory `root` (exactly one `*.inter.json`) and its item file
    (`<name>.item.json`, else the only `*.item.json`, else None)."""
    inters = sorted(root.glob("*.inter.json"))
    if not inters:
        raise DataError(f"{root}: no *.inter.json file (amazon-json directory)")
    if len(inters) > 1:
        raise DataError(f"{root}: several *.inter.json files ({', '.join(p.name for p in inters)}); "
                        "give a directory holding one")
    inter = inters[0]
    own = inter.with_name(inter.name[: -len(".inter.json")] + ".item.json")
    if own.is_file():
        return inter, own
    items = sorted(root.glob("*.item.json"))
    return inter, items[0] if len(items) == 1 else None


def _load_object(path: Path) -> dict[str, Any] | Rejected:
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as exc:
        return Rejected(Source(path.name, 1), "bad_encoding", None, f"the file is not valid UTF-8: {exc}")
    except json.JSONDecodeError as exc:
        return Rejected(Source(path.name, exc.lineno), "bad_json", None, f"invalid JSON: {exc.msg}")
    if not isinstance(data, dict):
        return Rejected(Source(path.name, 1), "bad_json", None,
                        f"expected a JSON object keyed by id, got {type(data).__name__}")
    return data


def sequences(path: Path) -> tuple[list[tuple[str, list[str], Source]], list[Rejected]]:
    """(user, item ids, source) per usable user entry of an inter file, and a Rejected per unusable one."""
    data = _load_object(path)
    if isinstance(data, Rejected):
        return [], [data]
    out, bad = [], []
    for n, (user, items) in enumerate(data.items(), start=1):
        source = Source(path.name, n)
        ids = _item_ids(items)
        if isinstance(ids, str):
            bad.append(Rejected(source, "bad_value", "items", f"user {user!r}: {ids}"))
        elif not ids:
            bad.append(Rejected(source, "missing_item", "items", f"user {user!r} has no items"))
        else:
            out.append((str(user).strip(), ids, source))
    return out, bad


def _item_ids(items: Any) -> list[str] | str:
    """Item ids of one user's list, or why the list is unusable."""
    if not isinstance(items, list):
        return f"expected a list of item ids, got {type(items).__name__}"
    if any(isinstance(i, bool) or not isinstance(i, int | str) for i in items):
        return "item ids must be integers or strings"
    ids = [parse_id(i) for i in items]
    return "an empty item id" if any(not i for i in ids) else ids


def item_records(path: Path | None) -> list[ItemRecord | Rejected]:
    """One ItemRecord per entry of an item file (title, description, brand, category path, other string
    fields as attributes), or a Rejected naming the entry and field."""
    if path is None:
        return []
    data = _load_object(path)
    if isinstance(data, Rejected):
        return [data]
    out: list[ItemRecord | Rejected] = []
    for n, (item, fields) in enumerate(data.items(), start=1):
        out.append(_item(str(item).strip(), fields, Source(path.name, n)))
    return out


def _item(item: str, fields: Any, source: Source) -> ItemRecord | Rejected:
    if not isinstance(fields, dict):
        return Rejected(source, "bad_row", None, f"item {item!r}: expected an object, got {type(fields).__name__}")
    for name in (*ITEM_FIELDS, "categories"):
        value = fields.get(name)
        if value is not None and not isinstance(value, str) and not (name == "categories" and isinstance(value, list)):
            return Rejected(source, "bad_value", name, f"item {item!r}: expected text, got {type(value).__name__}")
    return ItemRecord(item_id=item, title=fields.get("title") or "", description=fields.get("description") or "",
                      brand=(fields.get("brand") or "").strip(), category=category_path(fields.get("categories")),
                      attributes={k: v for k, v in fields.items()
                                  if k not in (*ITEM_FIELDS, "categories") and isinstance(v, str) and v},
                      source=source)


def category_path(raw: str | list[Any] | None) -> str:
    """"A,B, C,D" (or ["A", "B, C", "D"]) -> "A > B, C > D"."""
    if not raw:
        return ""
    parts = [str(p) for p in raw] if isinstance(raw, list) else _CATEGORY_SPLIT.split(raw)
    return " > ".join(p.strip() for p in parts if p.strip())


# --------------------------------------------------------------------------- records
def read_amazon_json(path: str | Path) -> Iterator[Record]:
    """Records of an amazon-json directory (see the module docstring)."""
    return _records(*files(check_dir(path, "amazon-json directory")))


def _records(inter: Path, items: Path | None) -> Iterator[Record]:
    yield Note(NOTE)
    users, bad = sequences(inter)
    yield from bad
    for user, ids, source in users:
        for k, item in enumerate(ids):
            yield EventRecord(user_id=user, item_id=item, event_type=EventType.PURCHASE,
                              timestamp=float(SYNTHETIC_EPOCH + k * SYNTHETIC_STEP), source=source)
    yield from item_records(items)


# ------------------------------------------------------------------------- in memory
def fast_table(path: Path, config: CleaningConfig, now: float, report: CleaningReport) -> EventTable:
    """The same result as cleaning `read_amazon_json(path)` record by record, vectorised."""
    inter, items_path = files(path)
    users, bad = sequences(inter)
    report.note(NOTE)
    collector = RecordCollector(report)
    collector.add_all(bad)
    lengths = np.array([len(ids) for _, ids, _ in users], dtype=np.int64)
    user_col = np.repeat(np.array([u for u, _, _ in users], dtype=object), lengths)
    item_col = np.array([i for _, ids, _ in users for i in ids], dtype=object)
    lines = np.repeat(np.array([s.line for _, _, s in users], dtype=np.int64), lengths)
    starts = np.cumsum(lengths) - lengths
    position = np.arange(len(item_col)) - np.repeat(starts, lengths)
    n = len(item_col)
    cols = EventColumns(user_id=user_col, item_id=item_col,
                        event_type=np.full(n, EventType.PURCHASE.code, dtype=np.int8),
                        timestamp=SYNTHETIC_EPOCH + position.astype(np.float64) * SYNTHETIC_STEP,
                        value=np.full(n, np.nan), price=np.full(n, np.nan))
    keep = clean_columns(cols, lines, inter.name, config=config, now=now, report=report)
    user = add_ids(collector.users, cols.user_id[keep])
    item = add_ids(collector.items, cols.item_id[keep])
    collector.add_all(RecordCleaner(config, now=now)(item_records(items_path)))
    return collector.table().set_events(user, item, cols.event_type[keep], cols.timestamp[keep], cols.value[keep])
