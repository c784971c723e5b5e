"""Erasing users from stored model artifacts (config.json + weights.safetensors + idmaps.json + meta.json).

A user's entry in idmaps.json is replaced by a tombstone (the index stays, so every array keeps its shape
and no other user moves), and the user's rows are cleared in the weights: arrays named after users whose
first dimension is the number of users (factor rows, biases, embeddings) get a zero row, and a per-user
item list stored as `<name>_items` + `<name>_offsets` (n_users + 1) loses the user's segment. The new
artifact is written into a fresh directory beside the old one and only then swapped in (the caller points
the model registry at it and removes the old directory), so a crash leaves a complete artifact either way.
"""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Collection
from pathlib import Path

import numpy as np
from safetensors.numpy import load_file, save_file

from shoprec.errors import DataError

TOMBSTONE = "\x00erased:{index}"  # never a stored id: ids are stripped, and PostgreSQL refuses NUL in text


def users_in_artifact(path: Path, user_ids: Collection[str]) -> list[int]:
    """Indices of `user_ids` in the artifact's user id map (empty when none is there)."""
    ids = _read_idmaps(path)
    wanted = set(user_ids)
    return [i for i, u in enumerate(ids.get("users", [])) if u in wanted]


def _read_idmaps(path: Path) -> dict[str, list[str]]:
    try:
        data = json.loads((path / "idmaps.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the model's id maps ({exc})") from None
    return data if isinstance(data, dict) else {}


def erase_users(path: Path, user_ids: Collection[str]) -> Path | None:
    """Write a copy of the artifact at `path` without these users; returns the new directory (a sibling
    named <name>.e<hex>), or None when no such user is in the artifact (nothing written)."""
    rows = users_in_artifact(path, user_ids)
    if not rows:
        return None
    target = path.parent / f"{path.name.split('.e', 1)[0]}.e{uuid.uuid4().hex[:8]}"
    staging = path.parent / f".{target.name}.tmp"
    shutil.copytree(path, staging)
    try:
        ids = _read_idmaps(staging)
        n_users = len(ids["users"])
        for i in rows:
            ids["users"][i] = TOMBSTONE.format(index=i)
        (staging / "idmaps.json").write_text(json.dumps(ids, indent=1), encoding="utf-8")
        weights = staging / "weights.safetensors"
        if weights.exists():
            save_file(clear_user_rows(load_file(str(weights)), n_users, rows), str(weights))
        staging.rename(target)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return target


def clear_user_rows(arrays: dict[str, np.ndarray], n_users: int, rows: list[int]) -> dict[str, np.ndarray]:
    """The arrays with the rows of users `rows` cleared (see the module docstring for which arrays)."""
    out = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
    for name, a in arrays.items():
        if name.endswith("_offsets") and name[:-8] + "_items" in arrays and a.shape == (n_users + 1,):
            items_name = name[:-8] + "_items"
            out[items_name], out[name] = _drop_segments(arrays[items_name], a, rows)
        elif "user" in name.lower() and a.ndim >= 1 and a.shape[0] == n_users and not name.endswith("_items"):
            cleared = a.copy()
            cleared[rows] = 0
            out[name] = cleared
    return out


def _drop_segments(items: np.ndarray, offsets: np.ndarray, rows: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """A CSR-like (items, offsets) pair with the segments of `rows` emptied."""
    lengths = np.diff(offsets)
    keep = np.ones(len(items), dtype=bool)
    for r in rows:
        keep[offsets[r]:offsets[r + 1]] = False
    lengths = lengths.copy()
    lengths[rows] = 0
    new_offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(offsets.dtype)
    return np.ascontiguousarray(items[keep]), new_offsets
