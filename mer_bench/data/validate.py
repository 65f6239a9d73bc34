"""Validation of an MMSA-format dict before it becomes tensors.

`check_raw` never raises on bad content: it returns every problem it finds, each naming its split and key, plus the
columns it could read, normalised to numpy arrays. Errors make a file unusable; warnings are kept with the data (in
`MERData.notes`) because the file is still usable, for example a rebuilt feature file whose checksum differs from the
published one, or a feature size other than the spec's (the data decides sizes, as MMSA's own loader does).
"""

from __future__ import annotations

import warnings
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS
from mer_bench.errors import DataError

Severity = Literal["error", "warning"]
UNIMODAL_KEYS = ("regression_labels_T", "regression_labels_A", "regression_labels_V")
FRAME_KEYS = ("audio", "vision")                       # (N, L, D) with a matching <key>_lengths column
MAX_TOKEN_ID = 2**31 - 1                               # the int32 range holds every tokenizer's vocabulary
LABEL_TOLERANCE = 1e-4                                 # labels stored as float32 averages may overshoot the range
WARNING_PREFIX = "warning: "


class DataWarning(UserWarning):
    """A dataset file is usable but differs from what its spec expects."""


@dataclass(frozen=True)
class Problem:
    severity: Severity
    message: str
    split: str | None = None
    key: str | None = None

    def where(self) -> str:
        parts = [f"split '{self.split}'" if self.split else "", f"key '{self.key}'" if self.key else ""]
        where = ", ".join(part for part in parts if part)
        return f"{where}: {self.message}" if where else self.message

    def as_note(self) -> str:
        return WARNING_PREFIX + self.where()

    def as_error(self, source: str) -> DataError:
        return DataError(source, self.message, split=self.split, key=self.key)


@dataclass
class CheckedRaw:
    """What validation could read: per split, the known columns as numpy arrays, and every problem found."""

    columns: dict[str, dict[str, Any]] = field(default_factory=dict)   # split -> key -> array (ids: list of str)
    problems: list[Problem] = field(default_factory=list)
    ignored_keys: list[str] = field(default_factory=list)              # top-level keys other than the splits

    @property
    def errors(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [problem for problem in self.problems if problem.severity == "warning"]

    def raise_first_error(self, source: str) -> None:
        if self.errors:
            raise self.errors[0].as_error(source)

    def add(self, severity: Severity, message: str, split: str | None = None, key: str | None = None) -> None:
        self.problems.append(Problem(severity, message, split, key))


def check_raw(raw: Any, spec: DatasetSpec, sha256: str | None = None) -> CheckedRaw:
    """Validate the whole file: each split on its own, then what must agree across splits, then the spec."""
    checked = CheckedRaw()
    if not isinstance(raw, dict):
        checked.add("error", f"expected a dict with train/valid/test, found {type(raw).__name__}")
        return checked
    # names only: str() of a hostile key could take exponential time over shared references
    checked.ignored_keys = sorted(key if isinstance(key, str) else f"<{type(key).__name__}>"
                                  for key in raw if key not in SPLITS)
    for name in SPLITS:
        if not isinstance(raw.get(name), dict):
            found = "nothing" if name not in raw else type(raw[name]).__name__
            checked.add("error", f"missing split (expected a dict of columns, found {found})", split=name)
            continue
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")   # numpy casting chatter on odd input; problems are reported instead
            checked.columns[name] = _check_split(raw[name], name, spec, checked)
    if not checked.errors:
        _check_across_splits(checked)
        _compare_with_spec(checked, spec, sha256)
    return checked


def _check_split(columns: dict, split: str, spec: DatasetSpec, checked: CheckedRaw) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("regression_labels", "audio", "vision"):
        if key not in columns:
            checked.add("error", "missing key", split, key)
    if "text" not in columns and "text_bert" not in columns:
        checked.add("error", "missing key: a split needs 'text' (BERT features) or 'text_bert' (token ids)",
                    split, "text")
    labels = _vector(columns, "regression_labels", split, checked)
    if labels is None:
        return out
    n = labels.shape[0]
    if n == 0:
        checked.add("error", "no samples", split, "regression_labels")
        return out
    out["regression_labels"] = labels
    _check_labels(labels, spec, split, "regression_labels", checked)
    for key in ("audio", "vision", "text", "text_bert"):
        array = _frames(columns, key, n, split, checked)
        if array is not None:
            out[key] = array
    for key in FRAME_KEYS:
        if key in out:
            lengths = _lengths(columns, f"{key}_lengths", out[key].shape[1], n, split, checked)
            if lengths is not None:
                out[f"{key}_lengths"] = lengths
    if "text_bert" in out:
        _check_token_ids(out["text_bert"], split, checked)
    out["id"] = _ids(columns, n, split, checked)
    if spec.has_unimodal_labels:
        out.update(_unimodal(columns, n, spec, split, checked))
    return out


def _numeric(value: Any, key: str, split: str, checked: CheckedRaw) -> np.ndarray | None:
    """The column as a numeric array, or None after recording why it is not one."""
    if isinstance(value, (list, tuple)):
        # Lists hold numbers (lengths, labels) or per-sample arrays. Nested Python lists are refused unread: numpy
        # would walk every element, and a hostile file can share sublists so that the walk never ends.
        if not all(isinstance(item, (int, float, np.number, np.ndarray)) for item in value):
            checked.add("error", "a list of something other than numbers or arrays: expected one numeric array",
                        split, key)
            return None
        try:
            value = np.asarray(value)
        except (ValueError, TypeError):
            checked.add("error", "ragged or mixed values: expected one rectangular numeric array", split, key)
            return None
        except MemoryError:   # the reader bounds what a file expands to; this machine may still have less
            checked.add("error", f"not enough memory to stack {len(value)} values into one array", split, key)
            return None
    if not isinstance(value, np.ndarray):
        checked.add("error", f"expected an array, found {type(value).__name__}", split, key)
        return None
    if value.dtype.kind not in "fiu":
        checked.add("error", f"expected numbers, found dtype {value.dtype}", split, key)
        return None
    return value


def _vector(columns: dict, key: str, split: str, checked: CheckedRaw, n: int | None = None) -> np.ndarray | None:
    """A per-sample column, shape (N,) or (N, 1), returned as (N,)."""
    if key not in columns:
        return None
    array = _numeric(columns[key], key, split, checked)
    if array is None:
        return None
    if array.ndim == 2 and array.shape[1] == 1:
        array = array.reshape(-1)
    if array.ndim != 1:
        checked.add("error", f"expected shape (N,), found {array.shape}", split, key)
        return None
    if n is not None and array.shape[0] != n:
        checked.add("error", f"has {array.shape[0]} samples but 'regression_labels' has {n}", split, key)
        return None
    return array


def _frames(columns: dict, key: str, n: int, split: str, checked: CheckedRaw) -> np.ndarray | None:
    """A rank-3 column: (N, L, D) features or (N, 3, L) token ids, finite except -inf in audio (fixed later)."""
    if key not in columns:
        return None
    array = _numeric(columns[key], key, split, checked)
    if array is None:
        return None
    layout = "(N, 3, L)" if key == "text_bert" else "(N, L, D)"
    if array.ndim != 3:
        checked.add("error", f"expected rank 3 {layout}, found shape {array.shape}", split, key)
        return None
    if array.shape[0] != n:
        checked.add("error", f"has {array.shape[0]} samples but 'regression_labels' has {n}", split, key)
        return None
    if key == "text_bert" and array.shape[1] != 3:
        checked.add("error", f"expected (N, 3, L) (ids, mask, segments), found shape {array.shape}", split, key)
        return None
    if 0 in array.shape[1:]:
        checked.add("error", f"empty padded length or feature size, shape {array.shape}", split, key)
        return None
    if key != "text_bert":
        array = array.astype(np.float32, copy=False)   # what models get; float64 values too large become inf here
    nan, positive, negative = nonfinite_counts(array)
    if key == "audio":
        negative = 0          # -inf audio is a known COVAREP artefact, set to 0 and counted at conversion
    if nan or positive or negative:
        checked.add("error", f"{nan} NaN, {positive} +inf and {negative} -inf values (as float32)", split, key)
        return None
    return array


def nonfinite_counts(array: np.ndarray) -> tuple[int, int, int]:
    """(NaN, +inf, -inf) counts. One summing pass in the common all-finite case, so no temporary of array size."""
    if array.dtype.kind != "f" or np.isfinite(array.sum()):
        return 0, 0, 0
    return int(np.isnan(array).sum()), int(np.isposinf(array).sum()), int(np.isneginf(array).sum())


def _check_labels(labels: np.ndarray, spec: DatasetSpec, split: str, key: str, checked: CheckedRaw) -> None:
    if np.isnan(labels).any():
        checked.add("error", f"{int(np.isnan(labels).sum())} NaN labels", split, key)
        return
    low, high = spec.label_range
    outside = (labels < low - LABEL_TOLERANCE) | (labels > high + LABEL_TOLERANCE)
    if outside.any():
        other = "MOSI-style [-3, 3]" if spec.style == "sims" else "SIMS-style [-1, 1]"
        checked.add("error", f"{int(outside.sum())} labels outside [{low:g}, {high:g}] (min {labels.min():g}, "
                             f"max {labels.max():g}) for {spec.style.upper()}-style dataset '{spec.name}'; is this a "
                             f"{other} file?", split, key)


def _lengths(columns: dict, key: str, padded: int, n: int, split: str, checked: CheckedRaw) -> np.ndarray | None:
    """True lengths as int64, each within [0, padded]. Absent lengths (aligned files) are filled in at conversion."""
    array = _vector(columns, key, split, checked, n)
    if array is None:
        return None
    if array.dtype.kind == "f" and (not np.isfinite(array).all() or (array != np.round(array)).any()):
        checked.add("error", "lengths must be whole numbers", split, key)
        return None
    # compared before the cast to int64: a float such as 1e30 would wrap around to a negative number
    if (array < 0).any():
        checked.add("error", f"{int((array < 0).sum())} negative lengths", split, key)
    elif (array > padded).any():
        checked.add("error", f"{int((array > padded).sum())} lengths exceed the padded length {padded} "
                             f"(max {array.max():g})", split, key)
    else:
        lengths = array.astype(np.int64)
        if (lengths == 0).any():
            checked.add("warning", f"{int((lengths == 0).sum())} samples have length 0", split, key)
        return lengths
    return None


def _check_token_ids(text_bert: np.ndarray, split: str, checked: CheckedRaw) -> None:
    """Rows are input ids, attention mask, segment ids: whole non-negative numbers below MAX_TOKEN_ID (checked on
    the stored values: float ids beyond the int64 range would wrap around when cast), the mask only 0 or 1."""
    if text_bert.dtype.kind == "f" and (text_bert != np.round(text_bert)).any():
        checked.add("error", "token ids must be whole numbers", split, "text_bert")
    elif (text_bert < 0).any():
        checked.add("error", "negative token ids", split, "text_bert")
    elif (text_bert > MAX_TOKEN_ID).any():
        checked.add("error", f"{int((text_bert > MAX_TOKEN_ID).sum())} token ids above {MAX_TOKEN_ID} (max "
                             f"{text_bert.max():g}); no tokenizer has that many words", split, "text_bert")
    elif not np.isin(text_bert[:, 1], (0, 1)).all():
        checked.add("error", "the attention mask (row 1) holds values other than 0 and 1", split, "text_bert")


def _ids(columns: dict, n: int, split: str, checked: CheckedRaw) -> list[str]:
    """Sample ids as strings. MOSEI-era ids may be sequences (video, start, end): joined with '_' as MMSA does."""
    if "id" not in columns:
        checked.add("warning", f"no ids; using '{split}-<index>' in their place", split, "id")
        return [f"{split}-{index}" for index in range(n)]
    values = columns["id"]
    if isinstance(values, np.ndarray) and values.ndim in (1, 2):
        values = list(values)            # (N,) ids or (N, parts) id parts
    if not isinstance(values, (list, tuple)) or len(values) != n:
        found = len(values) if isinstance(values, (list, tuple)) else type(values).__name__
        checked.add("error", f"expected {n} ids (one per label), found {found}", split, "id")
        return []
    ids = [_id_text(value) for value in values]
    if None in ids:
        checked.add("error", f"id {ids.index(None)} is neither text nor a sequence of text or number parts",
                    split, "id")
        return []
    duplicates = [value for value, count in Counter(ids).items() if count > 1]
    if duplicates:
        checked.add("error", f"{len(duplicates)} duplicate ids, e.g. '{duplicates[0][:80]}'", split, "id")
    return ids


def _id_text(value: Any, part: bool = False) -> str | None:
    """An id (or, with `part`, one part of a sequence id) as text; None for anything else."""
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    if isinstance(value, int) and value.bit_length() > 64:
        return None         # str() refuses ints of more than 4300 digits; no id is that long
    if isinstance(value, (str, int, float, np.number)):
        return str(value)
    if isinstance(value, np.ndarray) and value.ndim == 1:
        value = value.tolist()
    if not part and isinstance(value, (list, tuple)):
        parts = [_id_text(item, part=True) for item in value]
        return None if None in parts else "_".join(parts)
    return None


def _unimodal(columns: dict, n: int, spec: DatasetSpec, split: str, checked: CheckedRaw) -> dict[str, np.ndarray]:
    present = [key for key in UNIMODAL_KEYS if key in columns]
    if len(present) < len(UNIMODAL_KEYS):
        missing = ", ".join(key for key in UNIMODAL_KEYS if key not in present)
        checked.add("warning", f"no unimodal labels ({missing} missing): subsets are not available", split)
        return {}
    out = {}
    for key in UNIMODAL_KEYS:
        labels = _vector(columns, key, split, checked, n)
        if labels is not None:
            _check_labels(labels, spec, split, key, checked)
            out[key] = labels
    return out


def _check_across_splits(checked: CheckedRaw) -> None:
    """Feature sizes must agree across splits (a model is built once); padded lengths and ids should."""
    train = checked.columns["train"]
    for name in SPLITS[1:]:
        split = checked.columns[name]
        for key in ("audio", "vision", "text"):
            if (key in train) != (key in split):
                checked.add("error", f"present in {'train' if key in train else name} only", name, key)
            elif key in train and train[key].shape[2] != split[key].shape[2]:
                checked.add("error", f"feature size {split[key].shape[2]} differs from train's {train[key].shape[2]}",
                            name, key)
            elif key in train and train[key].shape[1] != split[key].shape[1]:
                checked.add("warning", f"padded length {split[key].shape[1]} differs from train's "
                                       f"{train[key].shape[1]}", name, key)
    first_split: dict[str, str] = {}   # id -> the first split it appears in
    for name in SPLITS:
        ids = checked.columns[name].get("id", [])
        shared = [value for value in ids if value in first_split]
        if shared:
            checked.add("warning", f"{len(shared)} ids also appear in split '{first_split[shared[0]]}', e.g. "
                                   f"'{shared[0]}'", name, "id")
        for value in ids:
            first_split.setdefault(value, name)


def _compare_with_spec(checked: CheckedRaw, spec: DatasetSpec, sha256: str | None) -> None:
    """Differences from the spec are warnings: users rebuild features, and the data decides sizes."""
    train = checked.columns["train"]
    for index, key in enumerate(("text", "audio", "vision")):
        if key in train and train[key].shape[2] != spec.feature_dims[index]:
            checked.add("warning", f"feature size {train[key].shape[2]}, '{spec.name}' expects "
                                   f"{spec.feature_dims[index]}; using the file's", "train", key)
        if key in train and train[key].shape[1] != spec.seq_lens[index]:
            checked.add("warning", f"padded length {train[key].shape[1]}, '{spec.name}' expects "
                                   f"{spec.seq_lens[index]}", "train", key)
    if "text" in train and "text_bert" in train and train["text"].shape[1] != train["text_bert"].shape[2]:
        checked.add("warning", f"token ids have length {train['text_bert'].shape[2]} but features "
                               f"{train['text'].shape[1]}", "train", "text_bert")
    sizes = tuple(checked.columns[name]["regression_labels"].shape[0] for name in SPLITS)
    if spec.split_sizes is not None and sizes != tuple(spec.split_sizes):
        checked.add("warning", f"train/valid/test sizes {'/'.join(map(str, sizes))}, '{spec.name}' expects "
                               f"{'/'.join(map(str, spec.split_sizes))}")
    if spec.sha256 and sha256 and sha256 != spec.sha256:
        checked.add("warning", f"SHA-256 {sha256[:12]}… differs from the published {spec.sha256[:12]}… of "
                               f"'{spec.name}' (fine for features you rebuilt; results record the file's checksum)")
