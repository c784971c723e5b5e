"""CDRIB cross-domain pairs: a directory with one folder per domain, `X_Y` holding domain X's files.

Each domain folder has `train.txt`, and usually `valid.txt` / `test.txt` (TSV `user<TAB>item`, implicit, no
times). The domain's name is the part of the folder name before "_" (game_video -> "game"). Records: a
`Domain(name)` before each domain's events, which are `purchase` events with context {"split": train|valid|test}.
- User ids below the shared count are the same people in every domain and keep their id; ids at or above it
  exist in one domain only and become "<domain>:<id>" so they never merge across domains. The shared count is
  1 + the largest user id in any valid/test file (CDRIB's cold-start users are the top shared ids, and CDRIB's
  own loader derives it the same way); without valid/test files every id counts as shared.
- Item ids are separate per domain and become "<domain>:<id>".
- No times: the n-th event (0-based) of a user within a domain, over train, valid, test in that order, gets
  the synthetic time 2000-01-01 + n hours (a Note says so).
`new_reindex.txt` / `common_new_reindex.txt` use another id space and are not read.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from shoprec.data.records import Domain, EventRecord, Note, Record, Rejected, Source
from shoprec.datasets._common import SYNTHETIC_EPOCH, SYNTHETIC_STEP, bad_encoding, check_dir, open_text
from shoprec.datasets.dataset import (
    SPLIT_NAMES,
    EventTable,
    Irregular,
    RecordCollector,
    add_ids,
    clean_columns,
    read_table,
)
from shoprec.errors import DataError
from shoprec.preprocess.clean import CleaningConfig, EventColumns
from shoprec.preprocess.report import CleaningReport
from shoprec.types import EventType


def domain_folders(root: Path) -> list[tuple[str, Path]]:
    """(domain name, folder) for every folder with a train.txt (the root itself when it is one), by name."""
    folders = [root] if (root / "train.txt").is_file() else sorted(
        p for p in root.iterdir() if p.is_dir() and (p / "train.txt").is_file())
    if not folders:
        raise DataError(f"{root}: no CDRIB domain folder (a folder X_Y with train.txt) found")
    out: list[tuple[str, Path]] = []
    for folder in folders:
        name = folder.name.split("_")[0] or folder.name
        if name in (n for n, _ in out):
            raise DataError(f"{folder}: a second folder for domain {name!r}")
        out.append((name, folder))
    return out


def shared_user_count(folders: list[tuple[str, Path]]) -> int | None:
    """1 + the largest integer user id in the valid/test files; None when there are none."""
    best = -1
    for _, folder in folders:
        for split in ("valid", "test"):
            path = folder / f"{split}.txt"
            if path.is_file():
                for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                    first = line.split()[:1]
                    if first and first[0].isdigit():
                        best = max(best, int(first[0]))
    return best + 1 if best >= 0 else None


def _note(shared: int | None) -> str:
    users = (f"user ids below {shared} are shared across domains; the others are renamed '<domain>:<id>'"
             if shared is not None else "no valid/test files: every user id counts as shared across domains")
    return (f"cdrib: {users}; items are renamed '<domain>:<id>'; the files have no timestamps: synthetic ones "
            "(2000-01-01 + 1 hour per position of a user's events in a domain) keep the file order")


def read_cdrib(path: str | Path) -> Iterator[Record]:
    """Records of a CDRIB pair directory (see the module docstring)."""
    folders = domain_folders(check_dir(path, "CDRIB directory"))
    return _records(folders, shared_user_count(folders))


def _records(folders: list[tuple[str, Path]], shared: int | None) -> Iterator[Record]:
    yield Note(_note(shared))
    for name, folder in folders:
        yield Domain(name)
        positions: dict[str, int] = {}
        for split in SPLIT_NAMES:
            path = folder / f"{split}.txt"
            if path.is_file():
                yield from _file(path, name, split, shared, positions)


def _file(path: Path, domain: str, split: str, shared: int | None, positions: dict[str, int]) -> Iterator[Record]:
    label = f"{path.parent.name}/{path.name}"
    with open_text(path) as f:
        for n, line in enumerate(f, start=1):
            fields = line.split()
            if not fields:
                continue
            source = Source(label, n)
            if bad_encoding(line):
                yield Rejected(source, "bad_encoding", None, "the line is not valid UTF-8")
            elif len(fields) < 2:
                yield Rejected(source, "bad_row", None, f"expected 'user<TAB>item', got {len(fields)} field(s)")
            elif not fields[0].isdigit():
                yield Rejected(source, "bad_value", "user", f"user ids are whole numbers, got {fields[0]!r}")
            else:
                user, item = fields[0], fields[1]
                k = positions.get(user, 0)
                positions[user] = k + 1
                yield EventRecord(user_id=user_id(user, domain, shared), item_id=f"{domain}:{item}",
                                  event_type=EventType.PURCHASE, timestamp=float(SYNTHETIC_EPOCH + k * SYNTHETIC_STEP),
                                  context={"split": split}, source=source)


def user_id(raw: str, domain: str, shared: int | None) -> str:
    return raw if shared is None or int(raw) < shared else f"{domain}:{raw}"


# ----------------------------------------------------------------------- in memory
def fast_table(path: Path, config: CleaningConfig, now: float, report: CleaningReport) -> EventTable:
    """The same result as cleaning `read_cdrib(path)` record by record, vectorised."""
    folders = domain_folders(path)
    shared = shared_user_count(folders)
    report.note(_note(shared))
    collector = RecordCollector(report)
    parts: dict[str, list[np.ndarray]] = {k: [] for k in ("user", "item", "ts", "domain", "split")}
    for d, (name, folder) in enumerate(folders):
        frames = [(s, _read_pairs(folder / f"{s}.txt")) for s in SPLIT_NAMES if (folder / f"{s}.txt").is_file()]
        for s, (frame, lines) in _with_positions(frames):
            cols = _columns(frame, name, shared)
            keep = clean_columns(cols, lines, f"{folder.name}/{s}.txt", config=config, now=now, report=report)
            parts["user"].append(add_ids(collector.users, cols.user_id[keep]))
            parts["item"].append(add_ids(collector.items, cols.item_id[keep]))
            parts["ts"].append(cols.timestamp[keep])
            parts["domain"].append(np.full(int(keep.sum()), d, dtype=np.int8))
            parts["split"].append(np.full(int(keep.sum()), SPLIT_NAMES.index(s), dtype=np.int8))
    table = collector.table()
    cat = {k: np.concatenate(v) if v else np.zeros(0) for k, v in parts.items()}
    n = len(cat["user"])
    table.user, table.item = cat["user"].astype(np.int32), cat["item"].astype(np.int32)
    table.event_type = np.full(n, EventType.PURCHASE.code, dtype=np.int8)
    table.timestamp, table.value = cat["ts"].astype(np.float64), np.full(n, np.nan, dtype=np.float32)
    table.domain, table.split = cat["domain"].astype(np.int8), cat["split"].astype(np.int8)
    table.domain_names = [name for name, _ in folders]
    return table


def _read_pairs(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    table, lines = read_table(path, 2)
    if len(table) and not all(u.isdigit() for u in pd.unique(table[:, 0])):
        raise Irregular(f"{path.name}: a user id is not a whole number")
    return pd.DataFrame(table, columns=["user", "item"], dtype=object), lines


def _with_positions(frames: list[tuple[str, tuple[pd.DataFrame, np.ndarray]]]
                    ) -> Iterator[tuple[str, tuple[pd.DataFrame, np.ndarray]]]:
    """Adds each row's position among its user's rows over the domain's files (in file order)."""
    if not frames:
        return
    allrows = pd.concat([f for _, (f, _) in frames], ignore_index=True)
    pos = allrows.groupby("user", sort=False).cumcount().to_numpy()
    start = 0
    for s, (frame, lines) in frames:
        frame = frame.assign(position=pos[start:start + len(frame)])
        start += len(frame)
        yield s, (frame, lines)


def _columns(frame: pd.DataFrame, domain: str, shared: int | None) -> EventColumns:
    users = frame["user"].to_numpy(dtype=object)
    if shared is not None:
        own = frame["user"].astype(np.int64).to_numpy() >= shared
        users = np.where(own, (domain + ":") + frame["user"], frame["user"]).astype(object)
    n = len(frame)
    return EventColumns(user_id=users, item_id=((domain + ":") + frame["item"]).to_numpy(dtype=object),
                        event_type=np.full(n, EventType.PURCHASE.code, dtype=np.int8),
                        timestamp=SYNTHETIC_EPOCH + frame["position"].to_numpy(dtype=np.float64) * SYNTHETIC_STEP,
                        value=np.full(n, np.nan), price=np.full(n, np.nan))
