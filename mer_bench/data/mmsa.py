"""Reading the MMSA processed-feature format: a restricted unpickler and the conversion to in-memory splits.

A pickle can run arbitrary code while it loads, and these files come from file-sharing links, so the unpickler admits
only the globals these files need (numpy arrays, dtypes and scalars) and refuses everything else before it runs.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, MERData, Split
from mer_bench.errors import DataError

_ALLOWED_GLOBALS = {
    (module, name)
    for module in ("numpy.core.multiarray", "numpy._core.multiarray")
    for name in ("_reconstruct", "scalar")
} | {("numpy", "ndarray"), ("numpy", "dtype"), ("collections", "OrderedDict")}


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file)
        self._path = path

    def find_class(self, module: str, name: str):
        if (module, name) in _ALLOWED_GLOBALS or (module.startswith("numpy") and name.endswith("DType")):
            return super().find_class(module, name)
        raise DataError(self._path, f"refusing to load: the pickle asks for '{module}.{name}', which an MMSA "
                                    "feature file never contains (a pickle can run code when loaded)")


def read_pickle(path: Path) -> dict:
    """The raw dict of an MMSA pickle, read with the restricted unpickler."""
    try:
        with open(path, "rb") as handle:
            raw = _RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise DataError(path, f"not a readable MMSA pickle ({type(error).__name__}: {error})") from None
    if not isinstance(raw, dict):
        raise DataError(path, f"expected a dict with train/valid/test, found {type(raw).__name__}")
    return raw


def raw_to_data(raw: dict, spec: DatasetSpec, source: str, sha256: str) -> MERData:
    """Convert the MMSA dict to `MERData`. Audio -inf values (a COVAREP artefact) are set to 0 and counted."""
    notes: list[str] = []
    splits = {name: _split_from_raw(raw, name, spec, source, notes) for name in SPLITS}
    return MERData(spec, splits["train"], splits["valid"], splits["test"], source, sha256, tuple(notes))


def _split_from_raw(raw: dict, name: str, spec: DatasetSpec, source: str, notes: list[str]) -> Split:
    if name not in raw or not isinstance(raw[name], dict):
        raise DataError(source, "missing split", split=name)
    columns = raw[name]

    def column(key: str, required: bool = True):
        if key not in columns:
            if required:
                raise DataError(source, "missing key", split=name, key=key)
            return None
        return np.asarray(columns[key])

    labels = column("regression_labels")
    audio = column("audio").astype(np.float32, copy=True)
    infinite = np.isneginf(audio)
    if infinite.any():
        notes.append(f"{name}: set {int(infinite.sum())} -inf audio values to 0")
        audio[infinite] = 0.0
    vision = column("vision").astype(np.float32, copy=False)
    n = labels.shape[0]
    return Split(
        name=name,
        ids=tuple(str(value) for value in column("id")),
        label=torch.from_numpy(labels.astype(np.float32).reshape(n)),
        audio=torch.from_numpy(audio),
        vision=torch.from_numpy(np.ascontiguousarray(vision)),
        audio_lengths=_lengths(column("audio_lengths", required=False), audio),
        vision_lengths=_lengths(column("vision_lengths", required=False), vision),
        text=_optional_float(column("text", required=False)),
        text_bert=_optional_ids(column("text_bert", required=False)),
        unimodal_labels=_unimodal(columns, n) if spec.has_unimodal_labels else None,
    )


def _lengths(values: np.ndarray | None, frames: np.ndarray) -> torch.Tensor:
    """True lengths; files without them (aligned data) are taken as fully used."""
    if values is None:
        return torch.full((frames.shape[0],), frames.shape[1], dtype=torch.long)
    return torch.from_numpy(np.asarray(values).astype(np.int64).reshape(-1))


def _optional_float(values: np.ndarray | None) -> torch.Tensor | None:
    return None if values is None else torch.from_numpy(np.ascontiguousarray(values, dtype=np.float32))


def _optional_ids(values: np.ndarray | None) -> torch.Tensor | None:
    return None if values is None else torch.from_numpy(np.rint(values).astype(np.int64))


def _unimodal(columns: dict, n: int) -> torch.Tensor | None:
    keys = [f"regression_labels_{m}" for m in "TAV"]
    if not all(key in columns for key in keys):
        return None
    stacked = np.stack([np.asarray(columns[key], dtype=np.float32).reshape(n) for key in keys], axis=1)
    return torch.from_numpy(stacked)
