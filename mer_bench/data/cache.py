"""The prepared cache: a dataset converted once into plain .npy arrays that later runs memory-map.

Layout: ``<root>/<dataset>-<sha256[:16]>/`` holds one ``<split>.<field>.npy`` per tensor (saved without pickle),
``ids.json``, and ``manifest.json``, which records the source file's SHA-256, the fingerprints (resolved path, size,
modification time in ns) the source was seen under, the spec it was validated against, the notes, and for each
file its size, SHA-256, write stamp and (arrays) header shape and dtype.

Loading verifies every file against its record (see cache_integrity.py): a cache file edited after it was written
(labels flipped, a NaN planted, a header reshaped) is never used; the caller warns, reads the source instead and
writes the entry again. Manifests of the earlier format, without these records, are stale: re-prepared, not errors.

Freshness is decided by the fingerprint, not by hashing: hashing a 1.2 GB source on every load would cost more than
the cache saves. A source whose fingerprint is unknown is hashed once; if a cache with that checksum exists (a copied
or touched file) its manifest learns the new fingerprint. A file rewritten in place with the same size and
modification time would go unnoticed; `mer-bench data prepare --rebuild` and `data check` (which always hashes)
cover that case.

An entry is written into a temporary folder, its manifest last, then renamed into place in one step, so a reader
sees either a complete entry or none. Folders without a readable manifest are never used.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mer_bench.data import cache_integrity
from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, TENSOR_FIELDS, MERData, Split
from mer_bench.fileio import make_temp_dir, write_json_atomic

CACHE_VARIABLE = "MER_BENCH_CACHE"
FORMAT_VERSION = 2                   # 2: per-file records (size, SHA-256, stamp, header) verified on load
TEMP_PREFIX = ".tmp-"
STALE_TEMP_SECONDS = 24 * 3600       # temporary folders older than this were left by a killed process


def cache_root() -> Path | None:
    """$MER_BENCH_CACHE (the value 'off' disables the cache), else $XDG_CACHE_HOME/mer-bench/prepared, else
    ~/.cache/mer-bench/prepared."""
    configured = os.environ.get(CACHE_VARIABLE)
    if configured:
        return None if configured.lower() == "off" else Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "mer-bench" / "prepared"


@dataclass(frozen=True)
class Fingerprint:
    """What identifies a source file cheaply: resolved path, size and modification time."""

    path: str
    size: int
    mtime_ns: int

    @classmethod
    def of(cls, path: Path) -> Fingerprint:
        stat = Path(path).stat()
        return cls(str(Path(path).resolve()), stat.st_size, stat.st_mtime_ns)


@dataclass(frozen=True)
class Entry:
    folder: Path
    manifest: dict[str, Any]

    @property
    def sha256(self) -> str:
        return self.manifest["source"]["sha256"]

    def fingerprints(self) -> list[Fingerprint]:
        return [Fingerprint(**fingerprint) for fingerprint in self.manifest["fingerprints"]]

    def total_size(self) -> int:
        """Bytes of the entry's files."""
        return sum(record["size"] for record in self.manifest["files"].values())


def spec_key(spec: DatasetSpec) -> dict[str, Any]:
    """The spec fields that validation and conversion depend on: a change makes old entries stale."""
    return {"name": spec.name, "style": spec.style, "has_unimodal_labels": spec.has_unimodal_labels,
            "feature_dims": list(spec.feature_dims), "seq_lens": list(spec.seq_lens),
            "split_sizes": list(spec.split_sizes) if spec.split_sizes else None, "sha256": spec.sha256}


def entries(root: Path, spec: DatasetSpec) -> list[Entry]:
    """Complete entries built for this spec (same dataset, same spec fields, intact array files)."""
    return [entry for entry in _all_entries(root, spec.name)
            if entry.manifest.get("format") == FORMAT_VERSION and entry.manifest.get("spec") == spec_key(spec)
            and _intact(entry)]


def _all_entries(root: Path, dataset: str) -> list[Entry]:
    """Every folder of this dataset with a readable manifest, whatever its format or spec (none while `root` does
    not exist, so callers need not check it)."""
    found = []
    for manifest_path in sorted(Path(root).glob(f"{dataset}-*/manifest.json")):
        try:
            manifest = json.loads(manifest_path.read_text())
        except (OSError, ValueError):
            continue
        if _well_formed(manifest):
            found.append(Entry(manifest_path.parent, manifest))
    return found


def _well_formed(manifest: Any) -> bool:
    """The fields lookups read, with the types they expect (a damaged manifest is skipped, not trusted)."""
    try:
        [Fingerprint(**fingerprint) for fingerprint in manifest["fingerprints"]]
        return isinstance(manifest["source"]["sha256"], str) and isinstance(manifest["files"], dict)
    except (KeyError, TypeError):
        return False


def _intact(entry: Entry) -> bool:
    """Every file is there with the size written (one stat each; the content is verified when it is read)."""
    try:
        return all(cache_integrity.well_formed(record) and (entry.folder / name).stat().st_size == record["size"]
                   for name, record in entry.manifest["files"].items())
    except (OSError, KeyError, AttributeError, TypeError):
        return False


def find_fresh(root: Path, spec: DatasetSpec, fingerprint: Fingerprint) -> Entry | None:
    return next((entry for entry in entries(root, spec) if fingerprint in entry.fingerprints()), None)


def find_by_checksum(root: Path, spec: DatasetSpec, sha256: str) -> Entry | None:
    return next((entry for entry in entries(root, spec) if entry.sha256 == sha256), None)


def entries_for_path(root: Path, spec: DatasetSpec, path: Path) -> list[Entry]:
    """Entries that list this path among their fingerprints, whatever its content or the spec was then. A prepared
    path stays prepared: when its source changes these are the entries to replace."""
    resolved = str(Path(path).resolve())
    return [entry for entry in _all_entries(root, spec.name) if any(fp.path == resolved for fp in entry.fingerprints())]


def forget_path(root: Path, entry: Entry, path: Path) -> None:
    """Drop this path's fingerprint from an entry; an entry no path refers to any more is deleted."""
    kept = _other_paths(entry, str(Path(path).resolve()))
    if kept:
        _with_fingerprints(entry, kept)
    elif entry.folder.parent.resolve() == Path(root).resolve():   # never delete outside the cache root
        shutil.rmtree(entry.folder, ignore_errors=True)


def add_fingerprint(entry: Entry, fingerprint: Fingerprint) -> Entry:
    """Record that a source with this fingerprint has the entry's checksum (rewrites the manifest atomically)."""
    return _with_fingerprints(entry, _other_paths(entry, fingerprint.path) + [fingerprint])


def _other_paths(entry: Entry, resolved: str) -> list[Fingerprint]:
    return [fp for fp in entry.fingerprints() if fp.path != resolved]


def _with_fingerprints(entry: Entry, fingerprints: list[Fingerprint]) -> Entry:
    manifest = {**entry.manifest, "fingerprints": [dataclasses.asdict(fp) for fp in fingerprints]}
    write_json_atomic(entry.folder / "manifest.json", manifest)
    return Entry(entry.folder, manifest)


def write_entry(root: Path, data: MERData, fingerprint: Fingerprint, replace: bool = False) -> Entry:
    """Save `data` as a new entry: arrays into a temporary folder, the manifest last, then one rename. With
    `replace`, an entry already in place is replaced, else a usable one there is kept."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_temporaries(root)
    final = root / f"{data.spec.name}-{data.sha256[:16]}"
    temporary = make_temp_dir(root, f"{TEMP_PREFIX}{final.name}-")
    try:
        files = _save_arrays(temporary, data)
        (temporary / "ids.json").write_text(json.dumps({name: list(data.split(name).ids) for name in SPLITS}))
        files["ids.json"] = cache_integrity.record_of(temporary / "ids.json")
        manifest = {"format": FORMAT_VERSION, "spec": spec_key(data.spec),
                    "source": {"sha256": data.sha256, "path": fingerprint.path},
                    "fingerprints": [dataclasses.asdict(fingerprint)], "notes": list(data.notes), "files": files,
                    "created": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        write_json_atomic(temporary / "manifest.json", manifest)
        _move_into_place(temporary, final, data.spec, replace)
    finally:
        shutil.rmtree(temporary, ignore_errors=True)
    entry = Entry(final, json.loads((final / "manifest.json").read_text()))
    return entry if fingerprint in entry.fingerprints() else add_fingerprint(entry, fingerprint)


def _save_arrays(folder: Path, data: MERData) -> dict[str, dict]:
    files = {}
    for split_name in SPLITS:
        split = data.split(split_name)
        for field in TENSOR_FIELDS:
            tensor = getattr(split, field)
            if tensor is None:
                continue
            name, array = f"{split_name}.{field}.npy", np.ascontiguousarray(tensor.numpy())
            np.save(folder / name, array, allow_pickle=False)
            files[name] = cache_integrity.record_of(folder / name, array)
    return files


def _move_into_place(temporary: Path, final: Path, spec: DatasetSpec, replace: bool) -> None:
    """Rename the finished folder into place. Unless replacing, a usable entry already there (another process) wins;
    anything else there (no manifest, an older format or spec) is replaced."""
    if final.exists():
        if _usable(final, spec) and not replace:
            return
        shutil.rmtree(final)
    try:
        os.rename(temporary, final)
    except OSError:
        if not _usable(final, spec):
            raise


def _usable(folder: Path, spec: DatasetSpec) -> bool:
    return any(entry.folder == folder for entry in entries(folder.parent, spec))


def _remove_abandoned_temporaries(root: Path) -> None:
    cutoff = time.time() - STALE_TEMP_SECONDS
    for folder in root.glob(f"{TEMP_PREFIX}*"):
        try:
            if folder.is_dir() and folder.stat().st_mtime < cutoff:
                shutil.rmtree(folder, ignore_errors=True)
        except OSError:
            continue


def read_entry(entry: Entry, spec: DatasetSpec, source: str) -> MERData:
    """The dataset with every tensor memory-mapped copy-on-write: pages are read on first use, and a model that
    writes into its data changes only its own copy, never the cache. Every file is verified against its manifest
    record first (`cache_integrity.TamperedCache`, a ValueError, when one differs)."""
    files = entry.manifest["files"]
    restamped = verify_files(entry)
    ids = json.loads((entry.folder / "ids.json").read_text())
    splits = {name: _read_split(entry.folder, name, ids[name], files) for name in SPLITS}
    if restamped:
        _record_new_stamps(entry, restamped)
    return MERData(spec, splits["train"], splits["valid"], splits["test"], source, entry.sha256,
                   tuple(entry.manifest["notes"]))


def verify_files(entry: Entry) -> list[str]:
    """Raise `cache_integrity.TamperedCache` unless every file matches its record; the names of files whose content
    verified under a new stamp. Headers are checked where the arrays are mapped (`_read_split`)."""
    return [name for name, record in entry.manifest["files"].items()
            if cache_integrity.verify_file(entry.folder / name, record)]


def intact_on_disk(entry: Entry) -> str | None:
    """None when the entry would load as written, else why not (for `data prepare` and `data check`)."""
    try:
        verify_files(entry)
        for name, record in entry.manifest["files"].items():
            if name.endswith(".npy"):
                path = entry.folder / name
                cache_integrity.verify_header(path, np.load(path, mmap_mode="r", allow_pickle=False), record)
    except (OSError, ValueError) as error:
        return str(error)
    return None


def _read_split(folder: Path, name: str, ids: list[str], files: dict[str, dict]) -> Split:
    tensors: dict[str, torch.Tensor] = {}
    for field in TENSOR_FIELDS:
        file_name = f"{name}.{field}.npy"
        if file_name in files:   # only files the manifest vouches for; a planted extra file is ignored
            array = np.load(folder / file_name, mmap_mode="c", allow_pickle=False)
            cache_integrity.verify_header(folder / file_name, array, files[file_name])
            tensors[field] = torch.from_numpy(array)
    return Split(name=name, ids=tuple(ids), **tensors)


def _record_new_stamps(entry: Entry, names: list[str]) -> None:
    """Files whose content verified under a new stamp (a copied or restored folder): remember the stamp, so the next
    load need not hash them again. Best effort: a read-only cache is still usable."""
    files = {name: dict(record, stamp=cache_integrity.stamp_of((entry.folder / name).stat()))
             if name in names else record for name, record in entry.manifest["files"].items()}
    try:
        write_json_atomic(entry.folder / "manifest.json", {**entry.manifest, "files": files})
    except OSError:
        pass
