"""Artifact stores: where trained models are kept so that any replica can load them.

    artifacts = open_artifact_store(settings, engine)
    ref = artifacts.put("shop", model_id, directory, platform_id=key)   # ArtifactRef(uri, sha256)
    local = artifacts.fetch(ref)                                         # a directory load_model reads

The store is chosen by URL (`settings.artifact_store`):
- a directory ("/srv/shoprec/models"; a relative setting is resolved once, here): artifacts are directories
  under it and the reference is the absolute path. The default on SQLite (settings.model_dir).
- "database": the artifact's canonical tar in rows of 1 MiB (table model_artifacts), so replicas on
  different machines share models with no shared disk. The default on PostgreSQL / MySQL.
- an fsspec URL ("s3://bucket/prefix", "gs://...", "file:///...", "memory://..."): one tar object per
  artifact. fsspec is the interface every Python object-store client implements (s3fs, gcsfs, adlfs), so one
  code path covers them all; the protocol's package must be installed.

References are kept in models.path: an absolute directory, "database:<key>", an fsspec URL, or
"missing:<relative path>" (migration 0007 could not find a relative path). A reference is read by its own
kind whatever store is configured now, so changing the setting leaves older models loadable.

Every artifact's sha256 (of its canonical packing: shoprec.storage.artifacts) is recorded with the model.
Database and fsspec artifacts are fetched into a local cache (settings.artifact_cache_dir, one directory per
database, in it one directory per sha256), written atomically (a temporary directory renamed into place) and
verified by hash on every fetch: a corrupt or partial entry is fetched again; a source that does not match its
recorded hash is an ArtifactError naming the artifact. Directory artifacts are verified in place.
"""

from __future__ import annotations

import abc
import logging
import os
import re
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from shoprec.errors import ConfigError, DataError, StorageError
from shoprec.service.errors import ArtifactError
from shoprec.storage import Engine, describe_url, storage_errors
from shoprec.storage.artifacts import (
    CHUNK_BYTES,
    ArtifactRepo,
    HashWriter,
    artifact_chunks,
    artifact_hashes,
    artifact_sha256,
    delete_artifact,
    pack,
    unpack,
)

if TYPE_CHECKING:
    from shoprec.settings import Settings
    from shoprec.storage.repo import Executor

log = logging.getLogger(__name__)
DATABASE = "database"  # the setting's value, and the prefix of a database reference ("database:<key>")
MISSING_PREFIX = "missing:"  # a relative path migration 0007 could not resolve
_SHA = re.compile(r"[0-9a-f]{64}")


def platform_dir(model_dir: Path, platform: str, platform_id: int) -> Path:
    """model_dir/<platform> (characters outside [A-Za-z0-9._-] replaced, with the key appended then)."""
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", platform)
    return model_dir / (safe if safe == platform and safe not in (".", "..") else f"{safe}-{platform_id}")


@dataclass(frozen=True, slots=True)
class ArtifactRef:
    """A stored artifact: its reference (models.path) and the sha256 of its canonical packing (None: an older
    directory artifact whose hash was never recorded; it is loaded unverified)."""

    uri: str
    sha256: str | None = None

    @property
    def kind(self) -> str:
        """"directory", "database", "fsspec", "missing" (unresolved by migration 0007) or "relative"."""
        if self.uri.startswith(MISSING_PREFIX):
            return "missing"
        if self.uri.startswith(DATABASE + ":"):
            return "database"
        if "://" in self.uri:
            return "fsspec"
        return "directory" if Path(self.uri).is_absolute() else "relative"


class ArtifactStore(abc.ABC):
    """Writes artifacts where the deployment keeps them (`put`: one subclass per kind); reads and deletes any
    reference by its own kind, fetching database and fsspec artifacts into the local cache."""

    kind = ""

    def __init__(self, engine: Engine | None, cache_dir: Path) -> None:
        """`cache_dir`: the machine's artifact cache; this deployment's entries live in a sub-directory named
        after its database, so that pruning (which keeps what this database's models reference) never
        removes another deployment's entries from a shared cache directory."""
        self.engine = engine
        base = Path(cache_dir).expanduser().resolve()
        self.cache_dir = base / _database_id(engine) if engine is not None else base

    # ---------------------------------------------------------------- writing (per kind)
    @abc.abstractmethod
    def put(self, platform: str, model_id: str, directory: Path, *, platform_id: int,
            conn: Executor | None = None) -> ArtifactRef:
        """Store the artifact in `directory` (which the store may move away) for model `model_id`; `conn`: the
        caller's transaction (the database store writes its rows there, so they commit or roll back with it)."""

    @abc.abstractmethod
    def describe(self) -> str:
        """The store in words (kind and place), for logs and `config show`."""

    def staging_root(self) -> Path:
        """Where a new artifact is written before `put` (on the store's file system when it is a directory)."""
        root = self.cache_dir / ".staging"
        root.mkdir(parents=True, exist_ok=True)
        return root

    # ---------------------------------------------------------------- reading (by the reference's kind)
    def fetch(self, ref: ArtifactRef) -> Path:
        """A local directory holding the artifact, verified against its sha256; ArtifactError saying why not."""
        kind = ref.kind
        if kind == "missing":
            raise ArtifactError(f"artifact missing: its path {ref.uri[len(MISSING_PREFIX):]!r} was relative to the "
                                "trainer's working directory and was not found when the database was migrated "
                                "(retrain the model)")
        if kind == "relative":
            raise ArtifactError(f"artifact path {ref.uri!r} is relative (the database was not migrated?)")
        if kind == "directory":
            return self._fetch_directory(ref)
        if not ref.sha256:
            raise ArtifactError(f"artifact {ref.uri}: no sha256 recorded, so a fetched copy cannot be verified")
        return self._fetch_packed(ref, ref.sha256)

    def _fetch_directory(self, ref: ArtifactRef) -> Path:
        path = Path(ref.uri)
        if not (path / "config.json").is_file():
            raise ArtifactError(f"artifact missing: no model artifact at {path}")
        if ref.sha256:
            try:
                got = artifact_sha256(path)
            except (OSError, DataError) as exc:
                raise ArtifactError(f"artifact at {path} is unreadable ({exc})") from None
            if got != ref.sha256:
                raise ArtifactError(f"artifact at {path} is corrupt or was modified: its sha256 is {got[:12]}..., "
                                    f"the registry recorded {ref.sha256[:12]}...")
        return path

    def peek(self, ref: ArtifactRef) -> Path | None:
        """A local directory of the artifact when one is at hand without fetching (a directory artifact, or
        this machine's cached copy), unverified: for displays such as the dashboard's training curves."""
        if ref.kind == "directory":
            return Path(ref.uri)
        if ref.kind in ("database", "fsspec") and ref.sha256 and self.cache_entry(ref.sha256).is_dir():
            return self.cache_entry(ref.sha256)
        return None

    def cache_entry(self, sha256: str) -> Path:
        return self.cache_dir / sha256

    def _fetch_packed(self, ref: ArtifactRef, sha256: str) -> Path:
        entry = self.cache_entry(sha256)
        if entry.is_dir():
            if _sha_or_none(entry) == sha256:
                return entry
            log.warning("artifact cache entry %s is corrupt or partial: fetching %s again", entry, ref.uri)
            shutil.rmtree(entry, ignore_errors=True)
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot create the artifact cache {self.cache_dir} ({exc.strerror or exc})") from None
        tmp = self.cache_dir / f".tmp-{uuid.uuid4().hex}"
        tar_path = tmp.with_name(tmp.name + ".tar")
        try:
            with tar_path.open("wb") as f:
                writer = HashWriter(f)
                for chunk in self._source(ref):
                    writer.write(chunk)
            if writer.size == 0:
                raise ArtifactError(f"artifact missing: {ref.uri} holds nothing")
            if writer.hexdigest() != sha256:
                raise ArtifactError(f"artifact {ref.uri} is corrupt at its source: its sha256 is "
                                    f"{writer.hexdigest()[:12]}..., the registry recorded {sha256[:12]}...")
            try:
                unpack(tar_path, tmp)
            except DataError as exc:
                raise ArtifactError(f"artifact {ref.uri} is unreadable: {exc}") from None
            try:
                os.rename(tmp, entry)
            except OSError:
                if not entry.is_dir():  # else another process of this machine placed it first: use theirs
                    raise
        except OSError as exc:
            raise ArtifactError(f"cannot cache artifact {ref.uri} in {self.cache_dir} ({exc})") from None
        finally:
            tar_path.unlink(missing_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
        return entry

    def _source(self, ref: ArtifactRef) -> Iterator[bytes]:
        """The packed artifact's bytes from where it is stored."""
        if ref.kind == "database":
            key = ref.uri[len(DATABASE) + 1:]
            if self.engine is None:
                raise ArtifactError(f"artifact {ref.uri}: no database to read it from")
            try:
                with storage_errors(self.engine, "read a model artifact"), self.engine.connect() as conn:
                    yield from artifact_chunks(conn, key)
            except StorageError as exc:
                raise ArtifactError(f"artifact {ref.uri}: {exc}") from None
            return
        fs, path = _filesystem(ref.uri)
        try:
            with fs.open(path, "rb") as f:
                while chunk := f.read(CHUNK_BYTES):
                    yield chunk
        except FileNotFoundError:
            raise ArtifactError(f"artifact missing: no object at {ref.uri}") from None
        except Exception as exc:  # any object-store client error: say which artifact and why
            raise ArtifactError(f"cannot read artifact {ref.uri}: {type(exc).__name__}: {exc}") from None

    # ---------------------------------------------------------------- deleting and the cache
    def delete(self, ref: ArtifactRef, *, conn: Executor | None = None) -> None:
        """Remove the artifact (and this machine's cached copy); a database artifact's rows in `conn` when given.
        A reference that holds nothing (missing, already deleted) is no error."""
        kind = ref.kind
        if ref.sha256 and kind in ("database", "fsspec"):
            shutil.rmtree(self.cache_entry(ref.sha256), ignore_errors=True)
        if kind == "directory":
            path = Path(ref.uri)
            if (path / "config.json").is_file():  # never anything but an artifact directory
                shutil.rmtree(path, ignore_errors=True)
        elif kind == "database" and (conn is not None or self.engine is not None):
            key = ref.uri[len(DATABASE) + 1:]
            if conn is not None:
                delete_artifact(conn, key)
            else:
                assert self.engine is not None
                with storage_errors(self.engine, "delete a model artifact"), self.engine.begin() as own:
                    delete_artifact(own, key)
        elif kind == "fsspec":
            fs, where = _filesystem(ref.uri)
            try:
                fs.rm(where)
            except FileNotFoundError:
                pass
            except Exception as exc:
                log.warning("cannot delete artifact %s: %s", ref.uri, exc)

    def prune_cache(self) -> int:
        """Remove cached artifacts no registered model has (replaced by an erasure, say); returns how many."""
        if self.engine is None or not self.cache_dir.is_dir():
            return 0
        with storage_errors(self.engine, "list model artifacts"), self.engine.connect() as conn:
            keep = artifact_hashes(conn)
        removed = 0
        for entry in self.cache_dir.iterdir():
            if _SHA.fullmatch(entry.name) and entry.name not in keep:
                shutil.rmtree(entry, ignore_errors=True)
                removed += 1
        return removed


class DirectoryStore(ArtifactStore):
    """Artifacts as directories under an absolute root: root/<platform>/<model_id>."""

    kind = "directory"

    def __init__(self, root: Path, engine: Engine | None, cache_dir: Path) -> None:
        super().__init__(engine, cache_dir)
        self.root = Path(root).expanduser().resolve()

    def describe(self) -> str:
        return f"directory {self.root}"

    def staging_root(self) -> Path:
        root = self.root / ".staging"  # on the root's file system: `put` renames
        try:
            root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ArtifactError(f"cannot write to the artifact directory {self.root} ({exc.strerror or exc})") from None
        return root

    def put(self, platform: str, model_id: str, directory: Path, *, platform_id: int,
            conn: Executor | None = None) -> ArtifactRef:
        target = platform_dir(self.root, platform, platform_id)
        dest = target / model_id
        if dest.exists():  # a rewritten artifact (erasure) beside the one it replaces
            dest = target / f"{model_id}.{uuid.uuid4().hex[:8]}"
        sha = artifact_sha256(directory)
        staged = target / f".{dest.name}.tmp"
        try:
            target.mkdir(parents=True, exist_ok=True)
            shutil.move(str(directory), str(staged))  # a rename on the same file system
            staged.rename(dest)
        except OSError as exc:
            shutil.rmtree(staged, ignore_errors=True)
            raise ArtifactError(f"cannot store the artifact of model {model_id} in {target} "
                                f"({exc.strerror or exc})") from None
        return ArtifactRef(str(dest), sha)


class DatabaseStore(ArtifactStore):
    """Artifacts as chunked rows of the database (table model_artifacts)."""

    kind = "database"

    def __init__(self, engine: Engine, cache_dir: Path) -> None:
        super().__init__(engine, cache_dir)
        self.db: Engine = engine

    def describe(self) -> str:
        return f"database (cache {self.cache_dir})"

    def put(self, platform: str, model_id: str, directory: Path, *, platform_id: int,
            conn: Executor | None = None) -> ArtifactRef:
        key = f"{model_id}.{uuid.uuid4().hex[:8]}"

        def write(c: Executor) -> str:
            sink = _ChunkSink(ArtifactRepo(c, platform_id), key)
            writer = HashWriter(sink)  # type: ignore[arg-type]
            pack(Path(directory), writer)  # type: ignore[arg-type]
            sink.close()
            return writer.hexdigest()

        if conn is not None:
            sha = write(conn)
        else:
            with storage_errors(self.db, "store a model artifact"), self.db.begin() as own:
                sha = write(own)
        return ArtifactRef(f"{DATABASE}:{key}", sha)


class FsspecStore(ArtifactStore):
    """Artifacts as one tar object each under an fsspec URL: <url>/<platform>/<model_id>.<nonce>.tar."""

    kind = "fsspec"

    def __init__(self, url: str, engine: Engine | None, cache_dir: Path) -> None:
        super().__init__(engine, cache_dir)
        self.url = url.rstrip("/")
        try:
            fs, root = _filesystem(self.url)
            if not fs.exists(root):
                fs.makedirs(root, exist_ok=True)
        except (ConfigError, ArtifactError):
            raise
        except Exception as exc:  # the client's own error for an unreachable or refused store
            raise ConfigError(f"setting artifact_store: cannot reach {self.url} "
                              f"({type(exc).__name__}: {exc})") from None

    def describe(self) -> str:
        return f"fsspec {self.url} (cache {self.cache_dir})"

    def put(self, platform: str, model_id: str, directory: Path, *, platform_id: int,
            conn: Executor | None = None) -> ArtifactRef:
        name = platform_dir(Path(), platform, platform_id).as_posix()
        uri = f"{self.url}/{name}/{model_id}.{uuid.uuid4().hex[:8]}.tar"
        fs, path = _filesystem(uri)
        with tempfile.TemporaryDirectory(dir=self.staging_root()) as tmp:
            packed = Path(tmp) / "artifact.tar"
            with packed.open("wb") as f:
                writer = HashWriter(f)
                pack(Path(directory), writer)  # type: ignore[arg-type]
            try:
                fs.makedirs(path.rsplit("/", 1)[0], exist_ok=True)
                fs.put_file(str(packed), path)
            except Exception as exc:
                raise ArtifactError(f"cannot store the artifact of model {model_id} at {uri} "
                                    f"({type(exc).__name__}: {exc})") from None
        return ArtifactRef(uri, writer.hexdigest())


class _ChunkSink:
    """A write-only stream that stores what is written as CHUNK_BYTES rows of one artifact."""

    def __init__(self, repo: ArtifactRepo, key: str) -> None:
        self.repo, self.key, self.seq, self.buffer = repo, key, 0, bytearray()

    def write(self, data: bytes | memoryview) -> int:
        self.buffer += data
        while len(self.buffer) >= CHUNK_BYTES:
            self._flush(CHUNK_BYTES)
        return len(data)

    def _flush(self, n: int) -> None:
        self.repo.add_chunk(self.key, self.seq, bytes(self.buffer[:n]))
        del self.buffer[:n]
        self.seq += 1

    def close(self) -> None:
        if self.buffer:
            self._flush(len(self.buffer))


def _filesystem(url: str) -> tuple[Any, str]:
    """(fsspec file system, path inside it) of a URL; ConfigError when its protocol is unknown or its client
    package is not installed."""
    import fsspec

    try:
        fs, path = fsspec.core.url_to_fs(url)
    except (ValueError, ImportError) as exc:
        raise ConfigError(f"setting artifact_store: cannot open {url} ({exc})") from None
    return fs, str(path)


def _database_id(engine: Engine) -> str:
    """A short name for the database `engine` reaches (its URL without the password, hashed)."""
    import hashlib

    return "db-" + hashlib.sha256(describe_url(engine.url).encode()).hexdigest()[:12]


def _sha_or_none(directory: Path) -> str | None:
    try:
        return artifact_sha256(directory)
    except (OSError, DataError):
        return None


def artifact_cache_dir(settings: Settings) -> Path:
    """settings.artifact_cache_dir, else <cache_dir>/artifacts (absolute)."""
    return Path(settings.artifact_cache_dir or Path(settings.cache_dir) / "artifacts").expanduser().resolve()


def open_artifact_store(settings: Settings, engine: Engine | None) -> ArtifactStore:
    """The store `settings.artifact_store` names: unset -> settings.model_dir on SQLite, the database on
    PostgreSQL / MySQL; "database"; an fsspec URL (scheme://...); else a directory (made absolute now)."""
    spec = (settings.artifact_store or "").strip()
    if not spec:
        spec = str(settings.model_dir) if settings.embedded else DATABASE
    cache = artifact_cache_dir(settings)
    if spec == DATABASE:
        if engine is None:
            raise ConfigError("setting artifact_store: 'database' needs the database (no engine given)")
        return DatabaseStore(engine, cache)
    if "://" in spec:
        return FsspecStore(spec, engine, cache)
    return DirectoryStore(Path(spec), engine, cache)
