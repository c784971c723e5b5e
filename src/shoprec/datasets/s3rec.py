"""S3-Rec sequence files (e.g. Beauty.txt): one user per line, `user item1 item2 ...`, oldest first.

Events are implicit `purchase` events. The files have no times: the n-th item of a user (0-based) gets the
synthetic time 2000-01-01 + n hours, which keeps each user's order (a Note says so). Item attributes come from
`<stem>_item2attributes.json` beside the file (or the only `*_item2attributes.json` there) when present:
`{"item": [attribute ids]}` -> ItemRecord.attributes["attribute_ids"] (and ItemCatalog.attribute_ids). Item
text comes from `<stem>_item_text.tsv` beside the file (or the only `*_item_text.tsv` there) when present: a
tab-separated file with a header naming `item_id` and `title` (other columns, e.g. `asin`, become item
attributes) -> ItemRecord.title, which the models embed as the item's text. One ItemRecord per item carries
both. Item records follow the events, so the item map lists items in order of first appearance in the
sequences.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.data.records import EventRecord, ItemRecord, Note, Record, Rejected, Source
from shoprec.datasets._common import SYNTHETIC_EPOCH, SYNTHETIC_STEP, bad_encoding, check_file, open_text
from shoprec.datasets.dataset import EventTable, Irregular, RecordCollector, add_ids, clean_columns
from shoprec.preprocess.clean import CleaningConfig, EventColumns, RecordCleaner
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

NOTE = ("s3rec: the file has no timestamps; synthetic ones (2000-01-01 + 1 hour per position in each user's "
        "sequence) keep each user's order and mean nothing across users")


def _companion(path: Path, suffix: str) -> Path | None:
    """`<stem><suffix>` beside sequence file `path`, else the only `*<suffix>` there, else None."""
    own = path.with_name(f"{path.stem}{suffix}")
    if own.is_file():
        return own
    found = sorted(path.parent.glob(f"*{suffix}"))
    return found[0] if len(found) == 1 else None


def attributes_file(path: Path) -> Path | None:
    """The item-attribute JSON that belongs to sequence file `path`, if any."""
    return _companion(path, "_item2attributes.json")


def text_file(path: Path) -> Path | None:
    """The item-text TSV that belongs to sequence file `path`, if any."""
    return _companion(path, "_item_text.tsv")


def read_attributes(path: Path | None) -> tuple[dict[str, list[int]], list[Rejected]]:
    """{item id: attribute ids} from an item2attributes JSON, and a Rejected per unusable entry."""
    if path is None:
        return {}, []
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        return {}, [Rejected(Source(path.name, 1), "bad_json", None, f"unreadable attribute file: {exc}")]
    if not isinstance(data, dict):
        return {}, [Rejected(Source(path.name, 1), "bad_json", None, "expected an object {item: [attribute ids]}")]
    out, bad = {}, []
    for key, ids in data.items():
        if isinstance(ids, list) and all(isinstance(i, int) and not isinstance(i, bool) for i in ids):
            out[str(key).strip()] = ids
        else:
            bad.append(Rejected(Source(path.name, 1), "bad_value", str(key),
                                "attribute ids must be a list of integers"))
    return out, bad


def read_item_text(path: Path | None) -> tuple[dict[str, tuple[int, dict[str, str]]], list[Rejected]]:
    """{item id: (line, {column: value})} from an item-text TSV (header naming item_id and title), and a
    Rejected per unusable line (a missing header names line 1; a row with the wrong field count its line)."""
    if path is None:
        return {}, []
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as exc:
        return {}, [Rejected(Source(path.name, 1), "bad_encoding", None, f"unreadable item-text file: {exc}")]
    rows = list(csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = [h.strip() for h in rows[0]] if rows else []
    if "item_id" not in header or "title" not in header:
        return {}, [Rejected(Source(path.name, 1), "bad_row", None,
                             "expected a tab-separated header naming item_id and title")]
    out: dict[str, tuple[int, dict[str, str]]] = {}
    bad = []
    for n, row in enumerate(rows[1:], start=2):
        if not "".join(row).strip():
            continue
        if len(row) != len(header):
            bad.append(Rejected(Source(path.name, n), "bad_row", None,
                                f"expected {len(header)} tab-separated fields, found {len(row)}"))
            continue
        fields = {h: v.strip() for h, v in zip(header, row, strict=True)}
        item = fields.pop("item_id")
        if not item:
            bad.append(Rejected(Source(path.name, n), "missing_item", "item_id", "the line has no item id"))
            continue
        out[item] = (n, fields)
    return out, bad


def item_records(path: Path) -> list[ItemRecord | Rejected]:
    """One ItemRecord per item named by the attribute JSON or the text TSV beside sequence file `path`, with
    the Rejected lines of both files: the attribute file's first (its items cite its line 1), then the text
    file's records and rejections in line order (an item with text cites its text line)."""
    attr_path, text_path = attributes_file(path), text_file(path)
    attrs, bad = read_attributes(attr_path)
    texts, bad_text = read_item_text(text_path)
    records: dict[str, ItemRecord] = {item: ItemRecord(item_id=item, attributes={"attribute_ids": ids})
                                      for item, ids in attrs.items()}
    for item, (line, fields) in texts.items():
        rec = records.setdefault(item, ItemRecord(item_id=item))
        rec.title = fields.pop("title")
        rec.attributes.update({k: v for k, v in fields.items() if v})
        rec.source = Source(text_path.name if text_path else path.name, line)
    attr_only: list[ItemRecord | Rejected] = []
    for rec in records.values():
        if rec.source is None:
            rec.source = Source(attr_path.name if attr_path else path.name, 1)
            attr_only.append(rec)
    with_text: list[ItemRecord | Rejected] = [r for r in records.values() if r.item_id in texts]
    by_line = sorted([*with_text, *bad_text], key=lambda r: r.source.line if r.source else 0)
    return [*bad, *attr_only, *by_line]


def read_s3rec(path: str | Path) -> Iterator[Record]:
    """Records of a sequence file (see the module docstring)."""
    return _records(check_file(path, "sequence file"))


def _records(path: Path) -> Iterator[Record]:
    yield Note(NOTE)
    positions: dict[str, int] = {}
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            tokens = line.split()
            if not tokens:
                continue
            source = Source(path.name, n)
            if bad_encoding(line):
                yield Rejected(source, "bad_encoding", None, "the line is not valid UTF-8")
            elif len(tokens) < 2:
                yield Rejected(source, "missing_item", "items", f"user {tokens[0]!r} has no items")
            else:
                yield from _events(tokens, positions, source)
    yield from item_records(path)


def _events(tokens: list[str], positions: dict[str, int], source: Source) -> Iterator[EventRecord]:
    user = tokens[0]
    start = positions.get(user, 0)
    positions[user] = start + len(tokens) - 1
    for k, item in enumerate(tokens[1:], start=start):
        yield EventRecord(user_id=user, item_id=item, event_type=EventType.PURCHASE,
                          timestamp=float(SYNTHETIC_EPOCH + k * SYNTHETIC_STEP), source=source)


# ----------------------------------------------------------------------- in memory
def fast_table(path: Path, config: CleaningConfig, now: float, report: CleaningReport) -> EventTable:
    """The same result as cleaning `read_s3rec(path)` record by record, vectorised."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Irregular("not valid UTF-8") from None
    split = [line.split() for line in io.StringIO(text, newline="")]
    if any(len(t) == 1 for t in split):
        raise Irregular("a user without items")
    report.note(NOTE)
    cols, lines = _columns(split)
    keep = clean_columns(cols, lines, path.name, config=config, now=now, report=report)
    collector = RecordCollector(report)
    user = add_ids(collector.users, cols.user_id[keep])
    item = add_ids(collector.items, cols.item_id[keep])
    collector.add_all(RecordCleaner(config, now=now)(item_records(path)))
    return collector.table().set_events(user, item, cols.event_type[keep], cols.timestamp[keep], cols.value[keep])


def _columns(split: list[list[str]]) -> tuple[EventColumns, np.ndarray]:
    lengths = np.array([max(len(t) - 1, 0) for t in split], dtype=np.int64)
    lines = np.repeat(np.arange(1, len(split) + 1), lengths)
    users = np.repeat(np.array([t[0] if t else "" for t in split], dtype=object), lengths)
    items = np.array([i for t in split for i in t[1:]], dtype=object)
    position = pd.Series(users).groupby(users, sort=False).cumcount().to_numpy(dtype=np.float64)
    n = len(items)
    cols = EventColumns(user_id=users, item_id=items, event_type=np.full(n, EventType.PURCHASE.code, dtype=np.int8),
                        timestamp=SYNTHETIC_EPOCH + position * SYNTHETIC_STEP, value=np.full(n, np.nan),
                        price=np.full(n, np.nan))
    return cols, lines
