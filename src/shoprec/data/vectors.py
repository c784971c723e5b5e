"""The shop's own named item vectors: what a valid `vectors` field of an item is.

An item may carry `{"image": [...], "llm": [...]}`: per name (a lower-case identifier of at most
MAX_VECTOR_NAME_LENGTH characters) a list of 1..MAX_VECTOR_DIM finite numbers (as float32), or null to remove
the item's vector of that name. `parse_vectors` is the one check, used by the ingest pipeline for every item
record whatever its source (REST, JSONL, Parquet, CSV): a bad value raises VectorError naming the field
(`vectors` or `vectors.<name>`). Dimensions per platform and name are fixed by the database (shoprec.storage.vectors).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import numpy as np

MAX_VECTOR_NAME_LENGTH = 32
MAX_VECTOR_DIM = 4096
MAX_VECTOR_NAMES = 16  # names per item
FLOAT32_MAX = float(np.finfo(np.float32).max)
VECTOR_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")

Vectors = dict[str, np.ndarray | None]


class VectorError(ValueError):
    """A bad `vectors` value: `field` is "vectors" or "vectors.<name>", `reason` a snake_case code."""

    def __init__(self, field: str, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.field, self.reason, self.detail = field, reason, detail


def decode_vectors(raw: Any) -> Any:
    """A `vectors` cell as read: a JSON string (a CSV column) is decoded; empty / None is None; others as given."""
    if raw is None or (isinstance(raw, str) and not raw.strip()):
        return None
    if isinstance(raw, str):
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise VectorError("vectors", "bad_vectors", f"must be a JSON object of name -> list of numbers ({exc})"
                              ) from None
    return raw


def parse_vectors(raw: Any) -> Vectors | None:
    """`raw` (an object of name -> list of numbers or null) as name -> float32 vector (None: remove); None or
    {} for none. Raises VectorError naming the field for anything else (NaN and infinities included)."""
    raw = decode_vectors(raw)
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise VectorError("vectors", "bad_vectors", f"must be an object of name -> list of numbers, got "
                                                    f"{type(raw).__name__}")
    if len(raw) > MAX_VECTOR_NAMES:
        raise VectorError("vectors", "bad_vectors", f"{len(raw)} names (at most {MAX_VECTOR_NAMES} per item)")
    out: Vectors = {}
    for name, values in raw.items():
        if not isinstance(name, str) or not VECTOR_NAME.match(name):
            raise VectorError(f"vectors.{name}", "bad_vector_name",
                              "a vector name is a lower-case letter then up to 31 letters, digits or '_'")
        out[name] = None if values is None else _vector(name, values)
    return out


def _vector(name: str, values: Any) -> np.ndarray:
    field = f"vectors.{name}"
    if isinstance(values, np.ndarray):
        array = values
    else:
        if not isinstance(values, list | tuple) or any(type(v) not in (float, int) for v in values):
            raise VectorError(field, "bad_vector", "must be a list of numbers")
        array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or not 1 <= len(array) <= MAX_VECTOR_DIM:
        raise VectorError(field, "bad_vector", f"must hold 1..{MAX_VECTOR_DIM} numbers, got {array.shape}")
    if array.dtype.kind not in "fiu":
        raise VectorError(field, "bad_vector", f"must hold numbers, got {array.dtype}")
    with np.errstate(over="ignore"):  # beyond float32's range: inf, refused below
        vector = array.astype(np.float32)
    finite = np.isfinite(vector)
    if not finite.all():
        pos = int(np.argmin(finite))
        raise VectorError(field, "bad_vector", f"value {pos} is {array[pos]!r} (every value must be a finite "
                                               "number within float32's range)")
    return vector


def record_vectors(n: int, by_index: Mapping[int, Mapping[str, np.ndarray | None]]
                   ) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """name -> (n, dim) float32 matrix and name -> (n,) bool mask from item index -> vectors (the first vector
    of a name fixes its dimension; a vector of another dimension is left out)."""
    vectors: dict[str, np.ndarray] = {}
    masks: dict[str, np.ndarray] = {}
    for idx, named in by_index.items():
        for name, vec in named.items():
            if vec is None:
                continue
            if name not in vectors:
                vectors[name] = np.zeros((n, len(vec)), dtype=np.float32)
                masks[name] = np.zeros(n, dtype=bool)
            if len(vec) == vectors[name].shape[1]:
                vectors[name][idx] = vec
                masks[name][idx] = True
    return vectors, masks
