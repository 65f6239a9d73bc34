"""Finding a dataset's file and loading it into memory."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from mer_bench.data.mmsa import raw_to_data, read_pickle
from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import MERData
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
    with open(path, "rb") as handle:
        while block := handle.read(chunk_size):
            digest.update(block)
    return digest.hexdigest()


def load_dataset(spec: DatasetSpec, data_dir: Path | None = None, data_file: Path | None = None) -> MERData:
    """Generate (synthetic) or read and convert the dataset. A generated spec with --data-file reads the file."""
    if spec.generate is not None and data_file is None:
        return spec.generate()
    path = locate(spec, data_dir, data_file)
    try:
        raw = read_pickle(path)
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None
    return raw_to_data(raw, spec, str(path), file_sha256(path))
