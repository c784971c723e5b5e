"""Model artifacts as bytes: the canonical tar packing of an artifact directory, and the chunked rows of the
database artifact store (table model_artifacts).

An artifact is identified by the sha256 of its canonical packing: an uncompressed tar of the directory's
files in sorted order with every variable header field fixed (mtime 0, owner 0, mode 0644/0755, no user
names). The same directory always packs to the same bytes, wherever it was written, so the hash recorded in
the models table verifies a plain directory, a database copy, an object-store copy and a replica's unpacked
cache entry alike. (Uncompressed: the weights are floats, which barely compress, and the JSON parts are small.)

The database store keeps one artifact as rows of at most CHUNK_BYTES bytes (artifact_key, seq, data), so a
replica streams it without holding it whole in memory and no row nears a server's packet limit.
"""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import sqlalchemy as sa

from shoprec.errors import DataError
from shoprec.storage import tables as T
from shoprec.storage.repo import Executor, ScopedRepo

CHUNK_BYTES = 1 << 20  # one model_artifacts row


class HashWriter(io.RawIOBase):
    """A write-only stream that hashes what is written and passes it on to `sink` (when given)."""

    def __init__(self, sink: BinaryIO | None = None) -> None:
        self.hash = hashlib.sha256()
        self.sink = sink
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(data)
        self.hash.update(view)
        self.size += len(view)
        if self.sink is not None:
            self.sink.write(view)
        return len(view)

    def hexdigest(self) -> str:
        return self.hash.hexdigest()


def _files(directory: Path) -> list[Path]:
    return sorted(directory.rglob("*"), key=lambda p: p.relative_to(directory).as_posix())


def pack(directory: Path, out: BinaryIO) -> None:
    """Write the canonical tar of `directory` (files and sub-directories; links are refused) to `out`."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: no artifact directory there")
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as tar:
        for path in _files(directory):
            name = path.relative_to(directory).as_posix()
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                raise DataError(f"{path}: an artifact holds plain files and directories only")
            info = tarfile.TarInfo(name)
            info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "", ""
            if path.is_dir():
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
                continue
            info.mode, info.size = 0o644, path.stat().st_size
            with path.open("rb") as f:
                tar.addfile(info, f)


def artifact_sha256(directory: Path) -> str:
    """The sha256 of the canonical packing of `directory` (nothing is written)."""
    writer = HashWriter()
    pack(Path(directory), writer)  # type: ignore[arg-type]
    return writer.hexdigest()


def unpack(tar_file: Path, directory: Path) -> None:
    """Extract a packed artifact into `directory` (created); only plain members inside it are accepted."""
    directory.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(tar_file, mode="r:") as tar:
            if hasattr(tarfile, "data_filter"):
                tar.extractall(directory, filter="data")
            else:  # Python < 3.11.4 has no extraction filters: the same guard, by hand
                root = directory.resolve()
                for member in tar.getmembers():
                    inside = (root / member.name).resolve().is_relative_to(root)
                    if not (member.isfile() or member.isdir()) or not inside:
                        raise tarfile.TarError(f"member {member.name!r} is not a plain file or folder inside it")
                tar.extractall(directory)  # the members were checked above
    except (tarfile.TarError, OSError) as exc:
        raise DataError(f"{tar_file}: not a readable artifact archive ({exc})") from None


# ---------------------------------------------------------------------------- the database store's rows
class ArtifactRepo(ScopedRepo):
    """The artifact chunks of ONE platform (writes; reads go by the globally unique artifact key)."""

    def add_chunk(self, key: str, seq: int, data: bytes) -> None:
        self.conn.execute(sa.insert(T.model_artifacts), [{"platform_id": self.platform_id, "artifact_key": key,
                                                          "seq": seq, "data": data}])


def artifact_chunks(conn: Executor, key: str) -> Iterator[bytes]:
    """The chunks of artifact `key` in order, one row read at a time (none when there is no such artifact)."""
    a = T.model_artifacts
    seq = 0
    while True:
        row = conn.execute(sa.select(a.c.data).where(a.c.artifact_key == key, a.c.seq == seq)).first()
        if row is None:
            return
        yield bytes(row[0])
        seq += 1


def delete_artifact(conn: Executor, key: str) -> None:
    """Delete artifact `key`'s chunks (none: nothing happens)."""
    a = T.model_artifacts
    conn.execute(sa.delete(a).where(a.c.artifact_key == key))


def artifact_hashes(conn: Executor) -> set[str]:
    """The sha256 of every registered model (all platforms): what replicas' caches must keep."""
    m = T.models
    return {str(h) for (h,) in conn.execute(sa.select(m.c.sha256).where(m.c.sha256.is_not(None)))}
