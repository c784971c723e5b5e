"""MovieLens 100K (a directory like ml-100k): u.item, u.user, u.data, and the official folds u1..u5.

- Items (u.item, Latin-1, `id|title|release date|video release date|IMDb URL|19 genre flags`): title as given,
  category = the genres joined with "|" (genres are a set, not a path), attributes year, genres, release_date,
  imdb_url. Genre names come from u.genre when present.
- Users (u.user, `id|age|gender|occupation|zip`): attributes age, gender, occupation, zip.
- Events (u.data, TSV `user item rating timestamp`): `rating` events, value = the rating.
Records come in that order, so the id maps list items and users in the files' order.
`load` also reads u1..u5.base/.test into `Dataset.folds` (same id maps; the record-level rules apply,
the Interactions-level ones do not, so the official folds stay exact).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from shoprec.data.interactions import Interactions
from shoprec.data.records import EventRecord, ItemRecord, Note, Record, Rejected, Source, UserRecord
from shoprec.datasets._common import bad_encoding, check_dir, check_file, open_text, parse_id
from shoprec.datasets.dataset import (
    Dataset,
    EventTable,
    Fold,
    Irregular,
    RecordCollector,
    add_ids,
    clean_columns,
    read_table,
)
from shoprec.errors import DataError
from shoprec.preprocess.clean import CleaningConfig, EventColumns, RecordCleaner
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType

DEFAULT_GENRES = (
    "unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
    "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War", "Western",
)
RATING_FIELDS = ("user_id", "item_id", "rating", "timestamp")
FOLDS = tuple(f"u{k}" for k in range(1, 6))


def read_movielens(path: str | Path) -> Iterator[Record]:
    """Items, users, then rating events of an ml-100k directory (see the module docstring)."""
    root = check_dir(path, "MovieLens directory")
    check_file(root / "u.data", "MovieLens ratings file u.data")
    return _records(root)


def _records(root: Path) -> Iterator[Record]:
    yield from _items(root)
    yield from _users(root)
    yield from _ratings(root / "u.data")


def _genres(root: Path) -> tuple[str, ...]:
    path = root / "u.genre"
    if not path.is_file():
        return DEFAULT_GENRES
    pairs = [line.rsplit("|", 1) for line in path.read_text(encoding="latin-1").splitlines() if "|" in line]
    try:
        names = sorted((int(i), name) for name, i in pairs)
    except ValueError:
        return DEFAULT_GENRES
    return tuple(name for _, name in names)


def _items(root: Path) -> Iterator[Record]:
    path = root / "u.item"
    if not path.is_file():
        yield Note("movielens-100k: no u.item, items have no titles or genres")
        return
    genres = _genres(root)
    with open_text(path, encoding="latin-1") as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield _item(line.rstrip("\r\n").split("|"), genres, Source(path.name, n))


def _item(fields: list[str], genres: tuple[str, ...], source: Source) -> Record:
    if len(fields) != 5 + len(genres):
        return Rejected(source, "bad_row", None, f"expected {5 + len(genres)} '|'-separated fields, got {len(fields)}")
    flags = fields[5:]
    if any(f not in ("0", "1") for f in flags):
        return Rejected(source, "bad_value", "genres", "genre flags must be 0 or 1")
    names = [g for g, f in zip(genres, flags, strict=True) if f == "1"]
    release = fields[2].strip()
    attrs: dict[str, object] = {"genres": names, "release_date": release, "imdb_url": fields[4].strip()}
    if release[-4:].isdigit():
        attrs["year"] = int(release[-4:])
    return ItemRecord(item_id=fields[0].strip(), title=fields[1].strip(), category="|".join(names),
                      attributes=attrs, source=source)


def _users(root: Path) -> Iterator[Record]:
    path = root / "u.user"
    if not path.is_file():
        return
    with open_text(path, encoding="latin-1") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            fields = line.rstrip("\r\n").split("|")
            source = Source(path.name, n)
            if len(fields) != 5:
                yield Rejected(source, "bad_row", None, f"expected 5 '|'-separated fields, got {len(fields)}")
            elif not fields[1].strip().isdigit():
                yield Rejected(source, "bad_value", "age", f"age must be a whole number, got {fields[1]!r}")
            else:
                yield UserRecord(fields[0].strip(), {"age": int(fields[1]), "gender": fields[2].strip(),
                                                     "occupation": fields[3].strip(), "zip": fields[4].strip()},
                                 source=source)


def _ratings(path: Path) -> Iterator[Record]:
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            if line.strip():
                yield _rating(line.split(), Source(path.name, n), line)


def _rating(fields: list[str], source: Source, line: str) -> Record:
    if len(fields) != 4:
        return Rejected(source, "bad_row", None, f"expected 4 tab-separated fields, got {len(fields)}")
    if bad_encoding(line):
        return Rejected(source, "bad_encoding", None, "the line is not valid UTF-8")
    for name, raw in zip(RATING_FIELDS[2:], fields[2:], strict=True):
        if not _is_number(raw):
            reason = "bad_timestamp" if name == "timestamp" else "bad_value"
            return Rejected(source, reason, name, f"not a number: {raw!r}")
    return EventRecord(user_id=parse_id(fields[0]), item_id=parse_id(fields[1]), event_type=EventType.RATING,
                       timestamp=float(fields[3]), value=float(fields[2]), source=source)


def _is_number(raw: str) -> bool:
    try:
        return np.isfinite(float(raw))
    except ValueError:
        return False


# ----------------------------------------------------------------------- in memory
def _rating_columns(path: Path) -> tuple[EventColumns, np.ndarray]:
    """u.data-like file as columns; Irregular when any line is not 4 fields with numeric rating and time."""
    table, lines = read_table(path, 4)
    try:
        rating, ts = table[:, 2].astype(np.float64), table[:, 3].astype(np.float64)
    except ValueError:
        raise Irregular(f"{path.name}: a rating or timestamp is not a number") from None
    if not (np.isfinite(rating).all() and np.isfinite(ts).all()):
        raise Irregular(f"{path.name}: a rating or timestamp is not a number")
    n = len(table)
    return EventColumns(user_id=table[:, 0].copy(), item_id=table[:, 1].copy(),
                        event_type=np.full(n, EventType.RATING.code, dtype=np.int8), timestamp=ts, value=rating,
                        price=np.full(n, np.nan)), lines


def fast_table(path: Path, config: CleaningConfig, now: float, report: CleaningReport) -> EventTable:
    """Items and users through the record path (small files), ratings vectorised with the same rules."""
    root = path
    cols, lines = _rating_columns(root / "u.data")
    collector = RecordCollector(report)
    collector.add_all(RecordCleaner(config, now=now)(_items_and_users(root)))
    keep = clean_columns(cols, lines, "u.data", config=config, now=now, report=report)
    table = collector.table()
    user = add_ids(table.users, cols.user_id[keep])
    item = add_ids(table.items, cols.item_id[keep])
    table.catalog.align()
    table.user_attributes.extend({} for _ in range(len(table.users) - len(table.user_attributes)))
    return table.set_events(user, item, cols.event_type[keep], cols.timestamp[keep], cols.value[keep])


def _items_and_users(root: Path) -> Iterator[Record]:
    yield from _items(root)
    yield from _users(root)


def add_folds(dataset: Dataset, config: CleaningConfig, now: float) -> None:
    """Dataset.folds from u1..u5.base/.test (present ones); ids unknown to the maps are added to them."""
    root = dataset.path
    for name in FOLDS:
        base, test = root / f"{name}.base", root / f"{name}.test"
        if not (base.is_file() and test.is_file()):
            continue
        dataset.folds.append(Fold(_fold_part(base, dataset, config, now), _fold_part(test, dataset, config, now)))
        dataset.fold_names.append(name)
    dataset.catalog.align()
    n_missing = dataset.interactions.n_users - len(dataset.user_attributes)
    dataset.user_attributes.extend({} for _ in range(n_missing))


def _fold_part(path: Path, dataset: Dataset, config: CleaningConfig, now: float) -> Interactions:
    try:
        cols, lines = _rating_columns(path)
    except Irregular as exc:
        raise DataError(f"{path}: cannot read the official fold: {exc}") from None
    report = CleaningReport()
    keep = clean_columns(cols, lines, path.name, config=config, now=now, report=report)
    if report.total:
        dataset.report.note(f"fold {path.name}: {report.total} rows removed ({report.counts()})")
    users, items = dataset.interactions.users, dataset.interactions.items
    return Interactions(user=add_ids(users, cols.user_id[keep]), item=add_ids(items, cols.item_id[keep]),
                        users=users, items=items, value=cols.value[keep],
                        timestamp=np.floor(cols.timestamp[keep]).astype(np.int64), event_type=cols.event_type[keep])
