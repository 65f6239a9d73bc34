"""The MMSA processed-feature format: reading it safely (see safe_pickle.py), writing it, and converting a validated
file into in-memory splits."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, MERData, Split
from mer_bench.data.safe_pickle import Refused, RestrictedUnpickler, plain_arrays
from mer_bench.data.validate import UNIMODAL_KEYS, CheckedRaw, check_raw
from mer_bench.errors import DataError
from mer_bench.fileio import atomic_write


def read_pickle(path: Path) -> dict:
    """The raw dict of an MMSA pickle, read with the restricted unpickler. Any failure is a one-line DataError."""
    try:
        with open(path, "rb") as handle:
            raw = plain_arrays(RestrictedUnpickler(handle).load())
    except Refused as refused:
        raise DataError(path, f"refusing to load: {refused}") from None
    except OSError as error:
        raise DataError(path, f"cannot read: {error.strerror or error}") from None
    except Exception as error:  # any failure while decoding untrusted bytes means the file is not a usable pickle
        detail = str(error).splitlines()[0][:200] if str(error) else ""
        raise DataError(path, f"not a readable MMSA pickle (truncated or corrupt?): {type(error).__name__}"
                              f"{': ' + detail if detail else ''}") from None
    if not isinstance(raw, dict):
        raise DataError(path, f"expected a dict with train/valid/test, found {type(raw).__name__}")
    return raw


def write_pickle(raw: dict, path: Path) -> None:
    """Write an MMSA-format dict, atomically and readable as the umask says (`fileio.atomic_write`; a full or
    read-only folder is a one-line OutputError). Protocol 4 is what Python 3.8-3.13 write by default, so these files
    read like the published ones."""
    with atomic_write(path, "wb") as handle:
        pickle.dump(raw, handle, protocol=4)


def raw_to_data(raw: dict, spec: DatasetSpec, source: str, sha256: str) -> MERData:
    """Validate the MMSA dict and convert it to `MERData`; the first error is raised as a DataError."""
    checked = check_raw(raw, spec, sha256)
    checked.raise_first_error(source)
    return checked_to_data(checked, spec, source, sha256)


def checked_to_data(checked: CheckedRaw, spec: DatasetSpec, source: str, sha256: str) -> MERData:
    """Tensors from validated columns. Notes: what conversion changed, then the validation warnings."""
    notes: list[str] = []
    splits = {name: _split_from_columns(checked.columns[name], name, notes) for name in SPLITS}
    notes.extend(problem.as_note() for problem in checked.warnings)
    return MERData(spec, splits["train"], splits["valid"], splits["test"], source, sha256, tuple(notes))


def _split_from_columns(columns: dict[str, Any], name: str, notes: list[str]) -> Split:
    n = columns["regression_labels"].shape[0]
    audio = _writable(columns["audio"])                              # (N, La, Da) float32
    infinite = np.isneginf(audio)
    if infinite.any():     # COVAREP writes -inf for undefined frames; MMSA's loader sets them to 0 too
        notes.append(f"{name}: set {int(infinite.sum())} -inf audio values to 0")
        audio = audio.copy()   # the columns may share memory with the caller's dict, which is left untouched
        audio[infinite] = 0.0
    vision = _writable(columns["vision"])                            # (N, Lv, Dv) float32
    return Split(
        name=name,
        ids=tuple(columns["id"]),
        label=torch.from_numpy(columns["regression_labels"].astype(np.float32)),
        audio=torch.from_numpy(audio),
        vision=torch.from_numpy(vision),
        audio_lengths=_lengths(columns.get("audio_lengths"), audio),
        vision_lengths=_lengths(columns.get("vision_lengths"), vision),
        text=None if "text" not in columns else torch.from_numpy(_writable(columns["text"])),
        text_bert=None if "text_bert" not in columns else torch.from_numpy(columns["text_bert"].astype(np.int64)),
        unimodal_labels=_unimodal(columns, n),
    )


def _writable(array: np.ndarray) -> np.ndarray:
    """C-contiguous float32 that torch can share without copying; a copy only when the file's array is read-only."""
    array = np.ascontiguousarray(array, dtype=np.float32)
    return array if array.flags.writeable else array.copy()


def _lengths(values: np.ndarray | None, frames: np.ndarray) -> torch.Tensor:
    """(N,) int64 true lengths; files without them (aligned data) are taken as fully used."""
    if values is None:
        return torch.full((frames.shape[0],), frames.shape[1], dtype=torch.long)
    return torch.from_numpy(np.ascontiguousarray(values, dtype=np.int64))


def _unimodal(columns: dict[str, Any], n: int) -> torch.Tensor | None:
    """(N, 3) float32 labels of T, A, V, or None when the file (or the spec) has none."""
    if not all(key in columns for key in UNIMODAL_KEYS):
        return None
    stacked = np.stack([columns[key].astype(np.float32).reshape(n) for key in UNIMODAL_KEYS], axis=1)
    return torch.from_numpy(stacked)
