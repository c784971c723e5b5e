"""Batch recommendations: every user's (or the listed users') top-k of a platform, written to Parquet or CSV.

The lists are the serving path's (shoprec.service.local.LocalRecommend.rank_users): the platform's active
model (scored for `batch_size` users per call), the popularity fallbacks, and the filters a request without
options gets (unservable items, the user's purchases unless repurchasable, dislikes and seen items left out).
User states come from one snapshot of the platform's events read at the start (UserStates' rules), not one
query per user. No list is logged and no experiment is consulted: an export records no exposure.

A platform without an active model is exported from popularity (as serving answers it: popular in the
category of the user's newest item, then popular), and the result says `model: null`.

Rows: user_id (as given in `users`; for every user, as stored: a pseudonym when the deployment pseudonymises),
rank (1-based), item_id, score, reason (history | popular_in_category | fallback_popular), level (personal |
session | popular_category | popular). A user with fewer servable items than k gets fewer rows.

Resumable, never half-written: users are ranked in parts of PART_USERS; each part is written to
`OUT.parts/part-NNNNN.parquet` (a temporary name, then renamed) and recorded in the sidecar
`OUT.parts/progress.json`. Run again with the same OUT, platform, k and user list, it continues after the
last recorded part (the sidecar also names the model: a different active model starts over). At the end the
parts are joined into a temporary file renamed to OUT, and `OUT.parts` is removed: OUT is either absent, the
previous complete export, or the new complete one.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprec.errors import ConfigError, DataError
from shoprec.service.local import LocalRecommend, states_from_events

if TYPE_CHECKING:
    from shoprec.service import Services
    from shoprec.service.chain import Ranked

FORMATS = ("parquet", "csv")
PART_USERS = 4096  # users per resumable part (one Parquet row group of the output each)
BATCH_USERS = 256  # users per model.score call
COLUMNS = ("user_id", "rank", "item_id", "score", "reason", "level")
Progress = Callable[[int, int], None]  # (users done, users in all)


@dataclass(frozen=True)
class ExportResult:
    """What an export wrote: the file, users and rows, the model (None: popularity), seconds, resumed users."""

    path: str
    platform: str
    k: int
    users: int
    rows: int
    model: str | None
    model_id: str | None
    seconds: float
    resumed_users: int = 0

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def output_format(out: Path) -> str:
    """'parquet' or 'csv' from the file name (DataError naming the file otherwise)."""
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in FORMATS:
        raise DataError(f"{out}: the output must end in .parquet or .csv")
    return fmt


def read_user_file(path: Path) -> list[str]:
    """User ids, one per line (blank lines skipped; a first line `user_id` is a header)."""
    try:
        lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    except OSError as exc:
        raise DataError(f"cannot read the users file {path}: {exc.strerror}") from None
    users = [u for u in lines if u]
    if users and users[0].lower() == "user_id":
        users = users[1:]
    if not users:
        raise DataError(f"{path}: no user ids (one per line)")
    return list(dict.fromkeys(users))  # each user once, in file order


def export_recommendations(services: Services, platform: str, k: int, out: Path, *,
                           users: Sequence[str] | None = None, batch_size: int = BATCH_USERS,
                           progress: Progress | None = None, fresh: bool = False) -> ExportResult:
    """Write the top-k of `users` (default: every user of the platform) to `out` (.parquet or .csv), resuming
    a stopped export of the same request unless `fresh` (see the module doc)."""
    from shoprec.storage import load_interactions

    started = time.perf_counter()
    out = Path(out)
    fmt = output_format(out)
    if not 1 <= k <= services.config.max_k:
        raise DataError(f"k must be between 1 and {services.config.max_k}, got {k}")
    services.platforms.platform_id(platform)  # an unknown platform fails here, by name
    view = services.catalogs.get(platform)
    served = services.models.get(platform)
    raw, _ = load_interactions(services.engine, platform)
    wanted = list(raw.users.to_list()) if users is None else [services.recommend.privacy.user_id(platform, u)
                                                               for u in users]
    labels = list(users) if users is not None else wanted  # the ids written: as given, else as stored
    states = states_from_events(raw, services.config.history_length, wanted)
    del raw
    ranker = LocalRecommend(services.config, view, served, states)
    request = {"platform": platform, "k": k, "model_id": served.model_id if served is not None else None,
               "users": _digest(wanted), "n_users": len(wanted)}
    parts = Path(f"{out}.parts")
    done = _resume(parts, request, fresh)
    resumed = done * PART_USERS if done else 0
    resumed = min(resumed, len(wanted))
    for start in range(resumed, len(wanted), PART_USERS):
        chunk = wanted[start:start + PART_USERS]
        base = start

        def report(n: int, base: int = base) -> None:
            if progress is not None:
                progress(base + n, len(wanted))

        lists = ranker.rank_users(chunk, k, batch_size=batch_size, progress=report)
        _write_part(parts, start // PART_USERS, labels[start:start + PART_USERS], lists)
        done = start // PART_USERS + 1
        _write_json_atomic(parts / "progress.json", {**request, "parts": done})
    if progress is not None:
        progress(len(wanted), len(wanted))
    rows = _join(parts, done if wanted else 0, out, fmt)
    shutil.rmtree(parts, ignore_errors=True)
    return ExportResult(str(out), platform, k, len(wanted), rows, served.name if served is not None else None,
                        served.model_id if served is not None else None,
                        round(time.perf_counter() - started, 3), resumed)


def _digest(users: Sequence[str]) -> str:
    h = hashlib.sha256()
    for u in users:
        h.update(u.encode("utf-8") + b"\x1f")
    return h.hexdigest()


def _resume(parts: Path, request: dict[str, Any], fresh: bool) -> int:
    """Parts of an earlier run of the same request to keep (0: start over, the directory emptied)."""
    sidecar = parts / "progress.json"
    if not fresh and sidecar.exists():
        try:
            state = json.loads(sidecar.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            state = {}
        if {key: state.get(key) for key in request} == request:
            return int(state.get("parts", 0))
    shutil.rmtree(parts, ignore_errors=True)
    parts.mkdir(parents=True)
    return 0


def _table(users: Sequence[str], lists: Sequence[Ranked]) -> Any:
    import pyarrow as pa

    cols: dict[str, list[Any]] = {c: [] for c in COLUMNS}
    for user, ranked in zip(users, lists, strict=True):
        n = len(ranked.items)
        cols["user_id"].extend([user] * n)
        cols["rank"].extend(range(1, n + 1))
        cols["item_id"].extend(ranked.items)
        cols["score"].extend(ranked.scores)
        cols["reason"].extend(r.type for r in ranked.reasons)
        cols["level"].extend(r.level for r in ranked.reasons)
    schema = pa.schema([("user_id", pa.string()), ("rank", pa.int16()), ("item_id", pa.string()),
                        ("score", pa.float32()), ("reason", pa.string()), ("level", pa.string())])
    return pa.table(cols, schema=schema)


def _write_part(parts: Path, n: int, users: Sequence[str], lists: Sequence[Ranked]) -> None:
    import pyarrow.parquet as pq

    final = parts / f"part-{n:05d}.parquet"
    tmp = parts / f".part-{n:05d}.parquet.tmp"
    pq.write_table(_table(users, lists), tmp)
    os.replace(tmp, final)


def _write_json_atomic(path: Path, doc: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(doc), encoding="utf-8")
    os.replace(tmp, path)


def _join(parts: Path, n_parts: int, out: Path, fmt: str) -> int:
    """The parts joined into `out` (a temporary file renamed over it); the number of rows."""
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq

    tables = (pq.read_table(parts / f"part-{n:05d}.parquet") for n in range(n_parts))
    tmp = out.with_name(f".{out.name}.tmp")
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = 0
    empty = _table([], [])
    try:
        if fmt == "parquet":
            with pq.ParquetWriter(tmp, empty.schema) as writer:
                for table in tables:
                    writer.write_table(table)
                    rows += table.num_rows
                if n_parts == 0:
                    writer.write_table(empty)
        else:
            with pcsv.CSVWriter(tmp, empty.schema) as writer:
                for table in tables:
                    writer.write_table(table)
                    rows += table.num_rows
        os.replace(tmp, out)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise DataError(f"cannot write {out}: {exc.strerror or exc}") from None
    return rows


# --------------------------------------------------------------------------- the job kind
def check_export(params: Any, limits: Any) -> dict[str, Any]:
    """An export job's parameters {k, format, name, users?}: k in 1..100, format parquet | csv, name (the file
    name under <model_dir>/exports/<platform>/, letters, digits, - and _), users (optional list of ids)."""
    unknown = sorted(set(params) - {"k", "format", "name", "users"})
    if unknown:
        raise ConfigError(f"unknown export job field {unknown[0]!r} (fields: k, format, name, users)")
    k = params.get("k", 10)
    if type(k) is not int or not 1 <= k <= 100:
        raise ConfigError(f"export job k must be an integer from 1 to 100, got {k!r}")
    fmt = params.get("format", "parquet")
    if fmt not in FORMATS:
        raise ConfigError(f"export job format must be 'parquet' or 'csv', got {fmt!r}")
    name = params.get("name", "recommendations")
    if not isinstance(name, str) or not name or len(name) > 64 or not all(c.isalnum() or c in "-_" for c in name):
        raise ConfigError(f"export job name must be 1-64 letters, digits, '-' or '_', got {name!r}")
    users = params.get("users")
    if users is not None and (not isinstance(users, list) or not all(isinstance(u, str) and u for u in users)):
        raise ConfigError("export job users must be a list of user ids")
    return {"k": k, "format": fmt, "name": name, **({"users": users} if users is not None else {})}


def export_path(services: Services, platform: str, params: dict[str, Any]) -> Path:
    """Where an export job writes: <model_dir>/exports/<platform>/<name>.<format> (on the worker's disk)."""
    return Path(services.settings.model_dir) / "exports" / platform / f"{params['name']}.{params['format']}"
