"""Dataset: a format loaded in memory (no database), and the one assembly path records/columns -> Dataset.

Id maps list users and items in order of first appearance in the cleaned record stream (event, item or
user record), so the in-memory path and a database snapshot of the same import agree on who exists.
After cleaning, the maps keep every id (indices stay valid) unless a k-core filter is on, in which case
users and items left without events are dropped from the maps, the catalog and the user attributes.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pandas as pd

from shoprec.data.catalog import ItemCatalog
from shoprec.data.idmap import IdMap
from shoprec.data.interactions import Interactions
from shoprec.data.records import Domain, EventRecord, ItemRecord, Note, Record, Rejected, UserRecord
from shoprec.data.vectors import record_vectors
from shoprec.preprocess.clean import (
    CleaningConfig,
    EventColumns,
    clean_interactions_index,
    event_reasons,
    report_rejections,
)
from shoprec.preprocess.kcore import compact_ids
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

SPLIT_NAMES: tuple[str, ...] = ("train", "valid", "test")
"""Values of an event's context["split"] that a source's own split uses (CDRIB)."""


class Irregular(Exception):
    """A fast in-memory loader met input that only the record-by-record reader handles (a bad line):
    `load` then falls back to the reader, which rejects that line and applies the same rules."""


class Fold(NamedTuple):
    """One official train/test pair (e.g. MovieLens u1.base / u1.test); both share the dataset's id maps."""

    train: Interactions
    test: Interactions


@dataclass(frozen=True)
class DomainSplit:
    """One domain's events under the source's own split; all parts share the dataset's id maps."""

    name: str
    train: Interactions
    valid: Interactions
    test: Interactions


@dataclass
class Dataset:
    """A source loaded in memory and cleaned: what the evaluation harness trains and tests on."""

    format: str
    path: Path
    interactions: Interactions
    catalog: ItemCatalog
    report: CleaningReport
    user_attributes: list[dict[str, Any]] = field(default_factory=list)
    folds: list[Fold] = field(default_factory=list)
    fold_names: list[str] = field(default_factory=list)
    domains: dict[str, DomainSplit] = field(default_factory=dict)
    synthetic_timestamps: bool = False

    def summary(self) -> dict[str, Any]:
        """Counts for people and JSON: events, users, items, events by type, what cleaning removed, notes."""
        inter = self.interactions
        codes, counts = np.unique(inter.event_type, return_counts=True)
        return {
            "format": self.format, "path": str(self.path), "events": len(inter),
            "users": len(np.unique(inter.user)), "items": len(np.unique(inter.item)),
            "user_ids": inter.n_users, "item_ids": inter.n_items,
            "events_by_type": {EventType.from_code(int(c)).value: int(n) for c, n in zip(codes, counts, strict=True)},
            "removed": self.report.counts(), "notes": list(self.report.notes),
            "folds": list(self.fold_names), "domains": list(self.domains),
            "synthetic_timestamps": self.synthetic_timestamps,
        }


# ----------------------------------------------------------------------------- tables
@dataclass
class EventTable:
    """Events that passed the record-level rules, as index columns, with id maps and content."""

    users: IdMap
    items: IdMap
    user: np.ndarray
    item: np.ndarray
    event_type: np.ndarray
    timestamp: np.ndarray  # float64 unix seconds
    value: np.ndarray
    catalog: ItemCatalog
    user_attributes: list[dict[str, Any]]
    domain: np.ndarray | None = None  # int8 index into domain_names, -1 outside any domain
    domain_names: list[str] = field(default_factory=list)
    split: np.ndarray | None = None  # int8 index into SPLIT_NAMES, -1 when the source has no split

    def interactions(self) -> Interactions:
        return Interactions(user=self.user, item=self.item, users=self.users, items=self.items,
                            value=self.value, timestamp=np.floor(self.timestamp).astype(np.int64),
                            event_type=self.event_type)

    def set_events(self, user: np.ndarray, item: np.ndarray, event_type: np.ndarray, timestamp: np.ndarray,
                   value: np.ndarray) -> EventTable:
        """Put vectorised event columns in place of the collected ones (values as float32, no source
        split); returns the table."""
        self.user, self.item = user, item
        self.event_type, self.timestamp = event_type, timestamp
        self.value = value.astype(np.float32)
        self.split = np.full(len(user), -1, dtype=np.int8)
        return self


def item_catalog(items: IdMap, records: dict[int, ItemRecord]) -> ItemCatalog:
    """The catalog for `items` from the latest record of each item (items without a record stay empty)."""
    n = len(items)
    cat = ItemCatalog.empty(items)
    price = np.full(n, np.nan, dtype=np.float32)
    available = np.ones(n, dtype=bool)
    for idx, rec in records.items():
        cat.title[idx], cat.description[idx] = rec.title, rec.description
        cat.category[idx], cat.brand[idx] = rec.category, rec.brand
        price[idx] = math.nan if rec.price is None else rec.price
        available[idx] = rec.available
        attrs = dict(rec.attributes)
        if rec.currency:
            attrs["currency"] = rec.currency
        cat.attributes[idx] = attrs
        ids = attrs.get("attribute_ids")
        if isinstance(ids, list):
            cat.attribute_ids[idx] = np.asarray(ids, dtype=np.int32)
    cat.price, cat.available = price, available
    cat.vectors, cat.vector_mask = record_vectors(n, {i: r.vectors for i, r in records.items() if r.vectors})
    return cat


class RecordCollector:
    """Collects a cleaned record stream (the output of RecordCleaner) into an EventTable and a report."""

    def __init__(self, report: CleaningReport) -> None:
        self.report = report
        self.users, self.items = IdMap(), IdMap()
        self._cols: dict[str, list[Any]] = {k: [] for k in ("user", "item", "type", "ts", "value", "domain", "split")}
        self._item_records: dict[int, ItemRecord] = {}
        self._user_attrs: dict[int, dict[str, Any]] = {}
        self._domains: list[str] = []
        self._domain = -1

    def add_all(self, records: Iterable[Record]) -> RecordCollector:
        for rec in records:
            self.add(rec)
        return self

    def add(self, rec: Record) -> None:
        if isinstance(rec, EventRecord):
            self._add_event(rec)
        elif isinstance(rec, ItemRecord):
            self._item_records[self.items.add(rec.item_id)] = rec
        elif isinstance(rec, UserRecord):
            self._user_attrs[self.users.add(rec.user_id)] = dict(rec.attributes)
        elif isinstance(rec, Rejected):
            self.report.reject(rec)
        elif isinstance(rec, Note):
            self.report.note(rec.text)
        elif isinstance(rec, Domain):
            if rec.name not in self._domains:
                self._domains.append(rec.name)
            self._domain = self._domains.index(rec.name)

    def _add_event(self, rec: EventRecord) -> None:
        c = self._cols
        c["user"].append(self.users.add(rec.user_id))
        c["item"].append(self.items.add(rec.item_id))
        c["type"].append(rec.event_type.code)
        c["ts"].append(rec.timestamp)
        c["value"].append(math.nan if rec.value is None else rec.value)
        c["domain"].append(self._domain)
        split = (rec.context or {}).get("split")
        c["split"].append(SPLIT_NAMES.index(split) if split in SPLIT_NAMES else -1)

    def table(self) -> EventTable:
        c = self._cols
        attrs = [self._user_attrs.get(i, {}) for i in range(len(self.users))]
        return EventTable(
            users=self.users, items=self.items,
            user=np.asarray(c["user"], dtype=np.int32), item=np.asarray(c["item"], dtype=np.int32),
            event_type=np.asarray(c["type"], dtype=np.int8), timestamp=np.asarray(c["ts"], dtype=np.float64),
            value=np.asarray(c["value"], dtype=np.float32), catalog=item_catalog(self.items, self._item_records),
            user_attributes=attrs, domain=np.asarray(c["domain"], dtype=np.int8) if self._domains else None,
            domain_names=list(self._domains), split=np.asarray(c["split"], dtype=np.int8),
        )


def add_ids(idmap: IdMap, ids: np.ndarray) -> np.ndarray:
    """int32 indices of `ids` in `idmap`, adding new ids in order of first appearance (= IdMap.add_many, faster)."""
    if len(ids) == 0:
        return np.zeros(0, dtype=np.int32)
    codes, uniques = pd.factorize(ids)
    table = np.fromiter((idmap.add(str(u)) for u in uniques), dtype=np.int32, count=len(uniques))
    return table[codes]


def read_table(path: Path, n_fields: int) -> tuple[np.ndarray, np.ndarray]:
    """A whitespace-separated file of exactly `n_fields` fields per non-blank line, as an (n, n_fields) object
    array of str, with each row's line number. Raises Irregular for anything else (then the reader decides)."""
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        raise Irregular(f"{path.name}: not valid UTF-8") from None
    try:
        frame = pd.read_csv(io.StringIO(text), sep=r"\s+", header=None, names=list(range(n_fields)), dtype=str,
                            keep_default_na=False, na_filter=False, engine="c", quoting=csv.QUOTE_NONE)
    except (pd.errors.ParserError, ValueError) as exc:
        raise Irregular(f"{path.name}: {exc}") from None
    table = frame.to_numpy(dtype=object)
    if len(table) and ((table == "").any() or len(text.split()) != table.size):
        raise Irregular(f"{path.name}: a line with fewer than {n_fields} fields")
    lines = np.arange(1, len(table) + 1)
    if len(table) != sum(1 for line in io.StringIO(text, newline="") if line.strip()):
        raise Irregular(f"{path.name}: unexpected line structure")
    if len(table) != len(io.StringIO(text, newline="").readlines()):  # blank lines: number rows the slow way
        lines = np.array([i for i, line in enumerate(io.StringIO(text, newline=""), start=1) if line.strip()])
    return table, lines


def clean_columns(cols: EventColumns, lines: np.ndarray, file: str, *, config: CleaningConfig, now: float,
                  report: CleaningReport) -> np.ndarray:
    """The record-level rules on event columns (as RecordCleaner applies them): the mask of kept rows."""
    reasons = event_reasons(cols, config, now)
    report_rejections(report, reasons, cols, file, lines, now)
    return np.asarray(reasons == 0)


# ---------------------------------------------------------------------------- finish
def finish(table: EventTable, *, fmt: str, path: Path, config: CleaningConfig, report: CleaningReport,
           synthetic_timestamps: bool = False) -> Dataset:
    """Apply the Interactions-level rules to `table` and assemble the Dataset (domains split when present)."""
    inter = table.interactions()
    keep = clean_interactions_index(inter, config, report)
    inter = inter.subset(keep) if len(keep) != len(inter) else inter
    catalog, user_attrs = table.catalog, table.user_attributes
    if config.kcore_users or config.kcore_items:
        inter, old_users, old_items = compact_ids(inter)
        catalog = subset_catalog(catalog, inter.items, old_items)
        user_attrs = [user_attrs[int(u)] for u in old_users]
        report.note(f"k-core: {len(old_users)} users and {len(old_items)} items remain in the id maps")
    dataset = Dataset(format=fmt, path=path, interactions=inter, catalog=catalog, report=report,
                      user_attributes=user_attrs, synthetic_timestamps=synthetic_timestamps)
    if table.domain is not None:
        split = table.split[keep] if table.split is not None else np.full(len(keep), -1, dtype=np.int8)
        dataset.domains = domain_splits(inter, table.domain[keep], table.domain_names, split)
    return dataset


def domain_splits(inter: Interactions, domain: np.ndarray, names: list[str], split: np.ndarray
                  ) -> dict[str, DomainSplit]:
    """Per domain, its train / valid / test events (events without a split tag count as train)."""
    out = {}
    for d, name in enumerate(names):
        mine = domain == d
        train = mine & ((split == 0) | (split < 0))
        out[name] = DomainSplit(name, inter.subset(train), inter.subset(mine & (split == 1)),
                                inter.subset(mine & (split == 2)))
    return out


def subset_catalog(catalog: ItemCatalog, items: IdMap, old_index: np.ndarray) -> ItemCatalog:
    """The catalog rows `old_index` (aligned with the new map `items`)."""
    idx = [int(i) for i in old_index]
    return ItemCatalog(
        items=items, title=[catalog.title[i] for i in idx], description=[catalog.description[i] for i in idx],
        category=[catalog.category[i] for i in idx], brand=[catalog.brand[i] for i in idx],
        price=catalog.price[old_index], available=catalog.available[old_index],
        attributes=[catalog.attributes[i] for i in idx], attribute_ids=[catalog.attribute_ids[i] for i in idx],
        vectors={n: v[old_index] for n, v in catalog.vectors.items()},
        vector_mask={n: m[old_index] for n, m in catalog.vector_mask.items()},
    )
