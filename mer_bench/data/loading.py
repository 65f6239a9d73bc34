"""Finding a dataset's file and loading it into memory, from the prepared cache when it is fresh."""

from __future__ import annotations

import hashlib
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mer_bench.data import cache
from mer_bench.data.mmsa import raw_to_data, read_pickle
from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import MERData
from mer_bench.data.validate import WARNING_PREFIX, DataWarning
from mer_bench.errors import DataError, UserError

DATA_DIR_VARIABLE = "MER_BENCH_DATA"


def default_data_dir() -> Path:
    """The per-user data folder: $XDG_DATA_HOME/mer-bench/data, else ~/.local/share/mer-bench/data."""
    base = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    return Path(base) / "mer-bench" / "data"


def search_dirs(data_dir: Path | None) -> list[Path]:
    """Folders searched in order: --data-dir, else $MER_BENCH_DATA, else the per-user default."""
    if data_dir is not None:
        return [Path(data_dir)]
    if os.environ.get(DATA_DIR_VARIABLE):
        return [Path(os.environ[DATA_DIR_VARIABLE])]
    return [default_data_dir()]


def locate(spec: DatasetSpec, data_dir: Path | None = None, data_file: Path | None = None) -> Path:
    """The file to read for `spec`, or a UserError that says where we looked and where the files come from."""
    if data_file is not None:
        path = Path(data_file)
        if not path.is_file():
            raise UserError(f"{path}: no such file (given with --data-file).")
        return path
    tried = [folder / relative for folder in search_dirs(data_dir) for relative in spec.relative_paths]
    for candidate in tried:
        if candidate.is_file():
            return candidate
    looked = "; ".join(str(path) for path in tried) or "(the dataset names no file locations)"
    raise UserError(f"No file found for dataset '{spec.name}'. Looked in: {looked}. Get the file from "
                    f"{spec.source_hint}, then pass --data-file PATH or --data-dir DIR (or set ${DATA_DIR_VARIABLE}). "
                    "'--dataset synthetic' runs with no download.")


def file_sha256(path: Path, chunk_size: int = 1 << 22) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while block := handle.read(chunk_size):
                digest.update(block)
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None
    return digest.hexdigest()


def read_file(path: Path, spec: DatasetSpec, sha256: str | None = None, raw: dict | None = None) -> MERData:
    """Read (unless `raw` is given), validate and convert one MMSA pickle; no cache involved."""
    raw = read_pickle(path) if raw is None else raw
    return raw_to_data(raw, spec, str(path), sha256 or file_sha256(path))


def load_dataset(spec: DatasetSpec, data_dir: Path | None = None, data_file: Path | None = None, *,
                 use_cache: bool = True) -> MERData:
    """Generate (synthetic) or load the dataset. A generated spec with --data-file reads the file.

    A file is loaded from the prepared cache when a fresh entry exists, else read from the pickle; a prepared file
    whose source changed is re-prepared here. Validation warnings are emitted as `DataWarning`s.
    """
    if spec.generate is not None and data_file is None:
        return spec.generate()
    path = locate(spec, data_dir, data_file)
    root = cache.cache_root() if use_cache else None
    data = read_file(path, spec) if root is None else _load_through_cache(root, spec, path)
    for note in data.notes:
        if note.startswith(WARNING_PREFIX):
            warnings.warn(f"{path}: {note[len(WARNING_PREFIX):]}", DataWarning, stacklevel=2)
    return data


def _load_through_cache(root: Path, spec: DatasetSpec, path: Path) -> MERData:
    fingerprint = cache.Fingerprint.of(path)
    entry = cache.find_fresh(root, spec, fingerprint)
    if entry is not None and (data := _read_entry_or_warn(entry, spec, path)) is not None:
        return data
    damaged = entry is not None        # found but unusable (edited, truncated): rewritten from the source below
    sha256 = file_sha256(path)
    by_checksum = cache.find_by_checksum(root, spec, sha256)
    if by_checksum is not None and by_checksum != entry:
        if (data := _read_entry_or_warn(by_checksum, spec, path)) is not None:
            _try(lambda: cache.add_fingerprint(by_checksum, fingerprint))   # the same content under a new path
            return data
        damaged = True
    stale = cache.entries_for_path(root, spec, path)
    data = read_file(path, spec, sha256)
    if stale or damaged:  # this path was prepared before and its content changed, or its entry is damaged
        written = []
        if _try(lambda: written.append(cache.write_entry(root, data, fingerprint, replace=True))):
            for old in stale:
                if old.folder != written[0].folder:
                    _try(lambda: cache.forget_path(root, old, path))
    return data


def _read_entry_or_warn(entry: cache.Entry, spec: DatasetSpec, path: Path) -> MERData | None:
    try:
        return cache.read_entry(entry, spec, str(path))
    except (OSError, ValueError, KeyError, TypeError) as error:   # TamperedCache is a ValueError
        warnings.warn(f"{entry.folder}: prepared cache does not match what was written ({error}); reading {path} "
                      "instead and preparing it again", DataWarning, stacklevel=3)
        return None


def _try(action) -> bool:
    """Cache upkeep must never stop a run: a read-only or full cache folder is reported and skipped."""
    try:
        action()
        return True
    except OSError as error:
        warnings.warn(f"could not update the prepared cache: {error}", DataWarning, stacklevel=3)
        return False


@dataclass(frozen=True)
class Prepared:
    entry: cache.Entry
    status: str          # "fresh" (already prepared), "reused" (same content seen before) or "built"


def prepare_dataset(spec: DatasetSpec, path: Path, raw: dict | None = None, rebuild: bool = False,
                    root: Path | None = None) -> Prepared:
    """Convert `path` into a cache entry unless a fresh one exists; the source is validated before anything is
    written, so a bad file leaves the cache untouched."""
    root = root or cache.cache_root()
    if root is None:
        raise UserError(f"The prepared cache is disabled (${cache.CACHE_VARIABLE}=off); set it to a folder.")
    fingerprint = cache.Fingerprint.of(path)
    fresh = None if rebuild else cache.find_fresh(root, spec, fingerprint)
    if fresh is not None and cache.intact_on_disk(fresh) is None:
        return Prepared(fresh, "fresh")
    rebuild = rebuild or fresh is not None      # an edited entry is replaced, not reused
    sha256 = file_sha256(path)
    if not rebuild and (entry := cache.find_by_checksum(root, spec, sha256)):
        return Prepared(cache.add_fingerprint(entry, fingerprint), "reused")
    data = read_file(path, spec, sha256, raw)
    stale = cache.entries_for_path(root, spec, path)
    try:
        entry = cache.write_entry(root, data, fingerprint, replace=rebuild)
    except OSError as error:
        raise UserError(f"{root}: cannot write the prepared cache: {error.strerror or error}") from None
    for old in stale:
        if old.folder != entry.folder:
            cache.forget_path(root, old, path)
    return Prepared(entry, "built")


def spec_from_path(path: Path, specs: list[DatasetSpec]) -> DatasetSpec | None:
    """The dataset whose registered layout ends the file's path (longest match), without reading the file."""
    resolved = Path(path).resolve().as_posix()
    matches = [(len(rel), spec) for spec in specs for rel in spec.relative_paths if resolved.endswith("/" + rel)]
    if not matches:
        return None
    longest = max(length for length, _ in matches)
    best = {spec.name: spec for length, spec in matches if length == longest}
    return next(iter(best.values())) if len(best) == 1 else None


def spec_from_content(path: Path, raw: dict, specs: list[DatasetSpec]) -> tuple[DatasetSpec, str]:
    """The one dataset whose expected audio and vision feature sizes are the file's, with the reason, else a
    UserError asking for --dataset."""
    dims = _audio_vision_dims(raw)
    matches = {spec.name: spec for spec in specs if dims is not None and tuple(spec.feature_dims[1:]) == dims}
    if len(matches) == 1:
        return next(iter(matches.values())), f"its audio/vision feature sizes {dims[0]}/{dims[1]}"
    aligned = _looks_aligned(raw)   # an aligned and an unaligned file of one dataset share their feature sizes
    narrowed = [spec for spec in matches.values() if spec.aligned == aligned]
    if len(matches) > 1 and len(narrowed) == 1:
        return narrowed[0], (f"its audio/vision feature sizes {dims[0]}/{dims[1]} and its "
                             f"{'equal' if aligned else 'unequal'} padded lengths")
    seen = f"audio/vision feature sizes {dims[0]}/{dims[1]}" if dims else "no readable train audio/vision"
    names = f": {', '.join(sorted(matches))}" if matches else ""
    raise UserError(f"{path}: cannot tell which dataset this file holds ({seen}; {len(matches)} registered "
                    f"datasets match{names}); pass --dataset NAME.")


def _looks_aligned(raw: dict) -> bool:
    """Whether the train split's text, audio and vision share one padded length, as in word-aligned files."""
    train = raw.get("train") if isinstance(raw, dict) else None
    arrays = [train.get(key) for key in ("text", "audio", "vision")] if isinstance(train, dict) else []
    frames = [array for array in arrays if isinstance(array, np.ndarray) and array.ndim == 3]
    return len(frames) == 3 and len({array.shape[1] for array in frames}) == 1


def _audio_vision_dims(raw: dict) -> tuple[int, int] | None:
    """The train split's audio and vision feature sizes when both are rank-3 arrays (lists are not walked)."""
    train = raw.get("train") if isinstance(raw, dict) else None
    arrays = [train.get(key) for key in ("audio", "vision")] if isinstance(train, dict) else []
    if len(arrays) == 2 and all(isinstance(array, np.ndarray) and array.ndim == 3 for array in arrays):
        return int(arrays[0].shape[2]), int(arrays[1].shape[2])
    return None


# --- The data's identity before loading it (the checksum that names runs; see mer_bench.runspec) -----------------

_GENERATED_KEPT = 2                                   # generated datasets kept per process (small, but not free)
_generated: dict[tuple, MERData] = {}
_hashed: dict[cache.Fingerprint, str] = {}           # files hashed by this process, so a sweep hashes each once


def dataset_checksum(spec: DatasetSpec, data_dir: Path | None = None, data_file: Path | None = None) -> str:
    """The SHA-256 a run on this data records as ``dataset.sha256``, found as cheaply as possible: for a file, from
    the prepared cache's fingerprint (path, size, mtime) when it knows the file, else by hashing it (once per
    process); for generated data, by generating it (kept, so the run that follows does not generate it again).
    A missing file is the same one-line UserError as loading it."""
    if spec.generate is not None and data_file is None:
        return generated_data(spec).sha256
    path = locate(spec, data_dir, data_file)
    fingerprint = cache.Fingerprint.of(path)
    root = cache.cache_root()
    entry = cache.find_fresh(root, spec, fingerprint) if root is not None else None
    if entry is not None:
        return entry.sha256
    if fingerprint not in _hashed:
        _hashed[fingerprint] = file_sha256(path)
    return _hashed[fingerprint]


def generated_data(spec: DatasetSpec) -> MERData:
    """`spec.generate()`, memoised per process. Keyed by the spec's fields and the generator's code rather than the
    spec object: every `get_catalog()` builds new spec objects (new closures) for the same generated data."""
    generate = spec.generate
    key = (spec.name, spec.style, spec.feature_dims, spec.seq_lens, spec.split_sizes, spec.title,
           getattr(generate, "__module__", None), getattr(generate, "__qualname__", None),
           tuple(repr(cell.cell_contents) for cell in (getattr(generate, "__closure__", None) or ())
                 if not isinstance(cell.cell_contents, DatasetSpec)))
    if key not in _generated:
        while len(_generated) >= _GENERATED_KEPT:
            _generated.pop(next(iter(_generated)))
        _generated[key] = spec.generate()
    return _generated[key]
