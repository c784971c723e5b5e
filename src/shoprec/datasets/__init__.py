"""Readers for the import formats: each turns a file or directory into a stream of ingest records.

- `read_records(fmt, path)`: the records of a source, lazily (the ingest pipeline cleans them with
  `shoprec.preprocess.clean.RecordCleaner` and writes them). A missing path or an unknown format raises
  DataError at once; a bad line becomes a `Rejected` record naming file, line and field.
- `load(fmt, path, cleaning=None)`: the same source cleaned in memory (no database) as a `Dataset`:
  Interactions, ItemCatalog, user attributes, the CleaningReport, and MovieLens' official folds or CDRIB's
  per-domain splits. Large formats have a vectorised loader that applies the same rule functions; when it
  meets a line only the reader can reject, `load` uses the reader instead, so the result never differs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shoprec.data.records import Record
from shoprec.datasets._common import check_dir, check_file
from shoprec.datasets.amazon_json import fast_table as _amazon_json_fast
from shoprec.datasets.amazon_json import read_amazon_json
from shoprec.datasets.cdrib import fast_table as _cdrib_fast
from shoprec.datasets.cdrib import read_cdrib
from shoprec.datasets.dataset import Dataset, DomainSplit, EventTable, Fold, Irregular, RecordCollector, finish
from shoprec.datasets.events import (
    read_events_csv,
    read_events_jsonl,
    read_events_parquet,
    read_items_csv,
    read_items_jsonl,
)
from shoprec.datasets.movielens import add_folds, read_movielens
from shoprec.datasets.movielens import fast_table as _movielens_fast
from shoprec.datasets.online_retail import fast_table as _retail_fast
from shoprec.datasets.online_retail import read_online_retail
from shoprec.datasets.otto import read_otto
from shoprec.datasets.s3rec import fast_table as _s3rec_fast
from shoprec.datasets.s3rec import read_s3rec
from shoprec.datasets.users import read_users_jsonl
from shoprec.errors import DataError
from shoprec.preprocess.clean import CleaningConfig, RecordCleaner
from shoprec.preprocess.report import CleaningReport

__all__ = ["FORMATS", "Dataset", "DomainSplit", "Fold", "describe_formats", "load", "load_records", "read_records"]

log = logging.getLogger(__name__)

FastLoader = Callable[[Path, CleaningConfig, float, CleaningReport], EventTable]


@dataclass(frozen=True)
class FormatSpec:
    """How one import format is read: its reader, optional vectorised loader, and what its path is."""

    name: str
    read: Callable[[Path], Iterator[Record]]
    description: str
    directory: bool = False
    fast: FastLoader | None = None
    synthetic_timestamps: bool = False


_SPECS: dict[str, FormatSpec] = {s.name: s for s in (
    FormatSpec("events-csv", read_events_csv, "CSV: user_id,item_id,event_type,timestamp[,value][,session_id]"),
    FormatSpec("events-jsonl", read_events_jsonl, "JSON Lines with the events-csv fields"),
    FormatSpec("events-parquet", read_events_parquet, "Parquet with the events-csv columns"),
    FormatSpec("items-csv", read_items_csv,
               "CSV: item_id[,title,description,category,brand,price,currency,available]"),
    FormatSpec("items-jsonl", read_items_jsonl, "JSON Lines with the items-csv fields"),
    FormatSpec("users-jsonl", read_users_jsonl,
               'JSON Lines: user_id[, attributes][, identity {"type": "email"|"phone"|"loyalty", "value"}]'),
    FormatSpec("online-retail", read_online_retail, "UCI Online Retail transactions CSV (.csv or .csv.gz)",
               fast=_retail_fast),
    FormatSpec("movielens-100k", read_movielens, "MovieLens 100K directory (u.data, u.item, u.user, u1..u5)",
               directory=True, fast=_movielens_fast),
    FormatSpec("s3rec", read_s3rec,
               "S3-Rec sequences 'user item1 item2 ...' (+ *_item2attributes.json, *_item_text.tsv)",
               fast=_s3rec_fast, synthetic_timestamps=True),
    FormatSpec("amazon-json", read_amazon_json,
               "directory with NAME.inter.json {user: [items, oldest first]} + NAME.item.json "
               "{item: {title, description, brand, categories}}",
               directory=True, fast=_amazon_json_fast, synthetic_timestamps=True),
    FormatSpec("otto", read_otto, "OTTO sessions, JSON Lines"),
    FormatSpec("cdrib", read_cdrib, "CDRIB cross-domain pair directory (X_Y/ and Y_X/ with train/valid/test.txt)",
               directory=True, fast=_cdrib_fast, synthetic_timestamps=True),
)}

FORMATS: tuple[str, ...] = tuple(_SPECS)
"""Every import format name, for `--format` choices."""


def describe_formats() -> dict[str, str]:
    return {name: spec.description for name, spec in _SPECS.items()}


def _spec(fmt: str) -> FormatSpec:
    spec = _SPECS.get(fmt)
    if spec is None:
        raise DataError(f"unknown format {fmt!r} (known: {', '.join(FORMATS)})")
    return spec


def _path(spec: FormatSpec, path: str | Path) -> Path:
    if spec.directory:
        return check_dir(path, f"{spec.name} directory")
    return check_file(path, f"{spec.name} file")


def read_records(fmt: str, path: str | Path) -> Iterator[Record]:
    """The records of `path` read as format `fmt` (see the module docstring)."""
    spec = _spec(fmt)
    return spec.read(_path(spec, path))


def _config(cleaning: CleaningConfig | Mapping[str, Any] | None) -> CleaningConfig:
    if cleaning is None:
        return CleaningConfig()
    if isinstance(cleaning, CleaningConfig):
        return cleaning
    return CleaningConfig.from_dict(dict(cleaning))


def load(fmt: str, path: str | Path, *, cleaning: CleaningConfig | Mapping[str, Any] | None = None,
         now: float | None = None, fast: bool = True) -> Dataset:
    """`path` read as `fmt` and cleaned in memory: record-level rules, then the Interactions-level ones.

    `now` (unix seconds, default the current time) is the reference for future timestamps; `fast=False`
    forces the record-by-record path (tests compare both)."""
    spec = _spec(fmt)
    p = _path(spec, path)
    config = _config(cleaning)
    now = time.time() if now is None else float(now)
    report = CleaningReport()
    table = None
    if fast and spec.fast is not None:
        try:
            table = spec.fast(p, config, now, report)
        except Irregular as exc:
            log.info("%s: %s; reading it record by record", p, exc)
            report = CleaningReport()
    if table is None:
        table = RecordCollector(report).add_all(RecordCleaner(config, now=now)(spec.read(p))).table()
    dataset = finish(table, fmt=fmt, path=p, config=config, report=report,
                     synthetic_timestamps=spec.synthetic_timestamps)
    if fmt == "movielens-100k":
        add_folds(dataset, config, now)
    return dataset


def load_records(records: Iterable[Record], *, fmt: str = "records", path: str | Path = "",
                 cleaning: CleaningConfig | Mapping[str, Any] | None = None, now: float | None = None,
                 synthetic_timestamps: bool = False) -> Dataset:
    """A Dataset from any record stream (e.g. records built in a test or received by the API)."""
    config = _config(cleaning)
    report = CleaningReport()
    cleaner = RecordCleaner(config, now=now)
    table = RecordCollector(report).add_all(cleaner(records)).table()
    return finish(table, fmt=fmt, path=Path(path), config=config, report=report,
                  synthetic_timestamps=synthetic_timestamps)
