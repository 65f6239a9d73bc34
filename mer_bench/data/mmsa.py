"""Reading the MMSA processed-feature format: a restricted unpickler and the conversion to in-memory splits.

A pickle can run arbitrary code while it loads, and these files come from file-sharing links. The unpickler therefore
resolves names from a fixed table of the few objects these files need (numpy's array and scalar rebuilders, dtypes,
a handful of builtin containers) and refuses every other name before anything is imported or called. Nothing is
looked up by the name the file gives, so a file cannot reach `os`, `subprocess`, `eval` or any other callable.
"""

from __future__ import annotations

import _codecs
import collections
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, MERData, Split
from mer_bench.data.validate import UNIMODAL_KEYS, CheckedRaw, check_raw
from mer_bench.errors import DataError


def _numpy_function(name: str, modules: tuple[str, ...]):
    """A numpy internal from whichever module this numpy version keeps it in (numpy 2 renamed core to _core)."""
    for module in modules:
        try:
            return getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):
            continue
    return None


def _latin1_encode(text: str, encoding: str = "latin1") -> bytes:
    """What protocol 0-2 pickles call (`_codecs.encode`) to rebuild bytes; only the latin-1 round trip is allowed."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"refusing _codecs.encode with encoding {encoding!r}")
    return _codecs.encode(text, "latin1")


def _allowed_objects() -> dict[tuple[str, str], Any]:
    """(module, name) as a pickle spells it -> the object it gets. Python 2 era names are listed explicitly."""
    reconstruct = _numpy_function("_reconstruct", ("numpy._core.multiarray", "numpy.core.multiarray"))
    scalar = _numpy_function("scalar", ("numpy._core.multiarray", "numpy.core.multiarray"))
    frombuffer = _numpy_function("_frombuffer", ("numpy._core.numeric", "numpy.core.numeric"))
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): np.ndarray, ("numpy", "dtype"): np.dtype,
                                         ("collections", "OrderedDict"): collections.OrderedDict,
                                         ("_codecs", "encode"): _latin1_encode}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = reconstruct
        table[(f"{core}.multiarray", "scalar")] = scalar
        table[(f"{core}.numeric", "_frombuffer")] = frombuffer
    for builtins in ("builtins", "__builtin__"):
        for kind in (set, frozenset, bytearray, complex):
            table[(builtins, kind.__name__)] = kind
    dtypes = _numpy_function("dtypes", ("numpy",))   # numpy >= 1.25 may pickle a dtype's class, e.g. Float32DType
    for name in dir(dtypes) if dtypes is not None else ():
        if name.endswith("DType"):
            table[("numpy.dtypes", name)] = getattr(dtypes, name)
    return {key: value for key, value in table.items() if value is not None}


_ALLOWED = _allowed_objects()


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file, path: Path):
        super().__init__(file, encoding="latin1")   # latin1: Python 2 era numpy pickles store array bytes as str
        self._path = path

    def find_class(self, module: str, name: str):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise DataError(self._path, f"refusing to load: the pickle asks for '{module}.{name}', which an MMSA "
                                        "feature file never contains (a pickle can run code when loaded)") from None

    def persistent_load(self, pid):
        raise DataError(self._path, "refusing to load: the pickle refers to external objects")


def read_pickle(path: Path) -> dict:
    """The raw dict of an MMSA pickle, read with the restricted unpickler. Any failure is a one-line DataError."""
    try:
        with open(path, "rb") as handle:
            raw = _RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
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
    """Write an MMSA-format dict, atomically: a temporary file beside `path`, renamed over it when complete.
    Protocol 4 is what Python 3.8-3.13 write by default, so these files read like the published ones."""
    path = Path(path)
    handle = tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False)
    try:
        with handle:
            pickle.dump(raw, handle, protocol=4)
        os.replace(handle.name, path)
    finally:
        if os.path.exists(handle.name):
            os.unlink(handle.name)


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
