"""Is a prepared-cache file still what was written? Checked on every load, cheaply enough to keep the cache fast.

Each file's manifest record holds its size, SHA-256, the stamp it was written with (inode, modification and change
time in ns) and, for arrays, the shape and dtype of its header. On load:
- the size must match (one stat), and an array's header must give the recorded shape and dtype (read anyway to map
  the array), so a header edited to another shape of the same size is caught;
- small files (labels, lengths, ids: at most SMALL_FILE bytes) are always hashed in full: flipping labels is the
  cheapest edit that changes results, and these hash in microseconds;
- a large file is hashed in full only when its stamp changed. Any write through the file system sets the change
  time, which no user call can set back (``os.utime`` sets only access and modification time), so a large file
  whose stamp is unchanged has not been written since. Hashing every large file on every load would cost about as
  much as reading the pickle, which the cache exists to avoid.
A file whose stamp changed but whose content still hashes to the record (a copied or restored cache folder) is
accepted, and the caller may store the new stamp.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import numpy as np

SMALL_FILE = 1 << 20


class TamperedCache(ValueError):
    """A cache file differs from its manifest record; the message says which file and how."""


def stamp_of(stat: os.stat_result) -> list[int]:
    return [stat.st_ino, stat.st_mtime_ns, stat.st_ctime_ns]


def file_sha256(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def record_of(path: Path, array: np.ndarray | None = None) -> dict[str, Any]:
    """What the manifest keeps about a file just written (`array`: what an .npy file holds)."""
    stat = path.stat()
    record = {"size": stat.st_size, "sha256": file_sha256(path), "stamp": stamp_of(stat)}
    if array is not None:
        record.update(shape=list(array.shape), dtype=array.dtype.str)
    return record


def well_formed(record: Any) -> bool:
    """A record of this format (manifests written before per-file records make their entries stale)."""
    return (isinstance(record, dict) and isinstance(record.get("size"), int) and isinstance(record.get("sha256"), str)
            and isinstance(record.get("stamp"), list))


def verify_file(path: Path, record: dict[str, Any]) -> bool:
    """Raise TamperedCache unless the file matches `record`. True when its stamp changed (content verified), so the
    caller may record the new stamp."""
    stat = path.stat()
    if stat.st_size != record["size"]:
        raise TamperedCache(f"{path.name}: {stat.st_size} bytes, {record['size']} were written")
    stamp_changed = stamp_of(stat) != record["stamp"]
    if (stamp_changed or stat.st_size <= SMALL_FILE) and file_sha256(path) != record["sha256"]:
        raise TamperedCache(f"{path.name}: content changed since it was written")
    return stamp_changed


def verify_header(path: Path, array: np.ndarray, record: dict[str, Any]) -> None:
    if list(array.shape) != record.get("shape") or array.dtype.str != record.get("dtype"):
        raise TamperedCache(f"{path.name}: header says {array.dtype.str} {tuple(array.shape)}, "
                            f"{record.get('dtype')} {tuple(record.get('shape') or ())} was written")
