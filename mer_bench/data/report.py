"""The report `mer-bench data check` prints: per split sizes, shapes, label distribution, unimodal labels, subsets,
plus the checksum, the prepared cache's state and every problem. A plain dict, so `--json` prints it as is."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from mer_bench.data import cache
from mer_bench.data.loading import file_sha256
from mer_bench.data.mmsa import checked_to_data, read_pickle
from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, MERData, Split
from mer_bench.data.subsets import polarity, subset_indices
from mer_bench.data.validate import WARNING_PREFIX, CheckedRaw, check_raw


def build_report(spec: DatasetSpec, source: str, sha256: str, checked: CheckedRaw, data: MERData | None,
                 raw: dict | None, spec_reason: str, cache_state: dict[str, Any] | None) -> dict[str, Any]:
    """Everything known about one file. `data` is None when validation found errors; `raw` is None for generated
    data (its columns are then described from the tensors)."""
    return {
        "dataset": spec.name, "title": spec.title, "style": spec.style, "dataset_from": spec_reason,
        "source": source, "sha256": sha256, "published_sha256": spec.sha256,
        "checksum": _checksum_state(spec, sha256), "usable": not checked.errors,
        "problems": [{"severity": p.severity, "split": p.split, "key": p.key, "message": p.message}
                     for p in checked.problems],
        "notes": [] if data is None else [note for note in data.notes if not note.startswith(WARNING_PREFIX)],
        "ignored_top_level_keys": checked.ignored_keys,
        "splits": {name: _split_report(name, data, raw) for name in SPLITS},
        "cache": cache_state,
    }


def _checksum_state(spec: DatasetSpec, sha256: str) -> str:
    if spec.synthetic:
        return "generated"
    if not spec.sha256:
        return "none published"
    return "matches published" if sha256 == spec.sha256 else "differs from published"


def _split_report(name: str, data: MERData | None, raw: dict | None) -> dict[str, Any]:
    raw_split = raw.get(name) if isinstance(raw, dict) else None
    report: dict[str, Any] = {"columns": _describe_columns(raw_split) if isinstance(raw_split, dict) else None}
    if data is None:
        return report
    split = data.split(name)
    if report["columns"] is None:
        report["columns"] = _describe_tensors(split)
    signs = polarity(split.label)
    subsets = subset_indices(split)
    report.update({
        "n": len(split),
        "labels": {"negative": int((signs < 0).sum()), "neutral": int((signs == 0).sum()),
                   "positive": int((signs > 0).sum())},
        "unimodal_labels": split.unimodal_labels is not None,
        "text_forms": [form for form, tensor in (("features", split.text), ("token ids", split.text_bert))
                       if tensor is not None],
        "subsets": None if subsets is None else {subset: int(index.numel()) for subset, index in subsets.items()},
    })
    return report


def _describe_columns(columns: dict) -> dict[str, dict[str, Any]]:
    """Shape and stored type of every column in the file, including the ones mer-bench does not use."""
    described = {}
    for key in sorted(columns, key=str):
        value = columns[key]
        if isinstance(value, np.ndarray):
            described[str(key)] = {"shape": list(value.shape), "dtype": str(value.dtype)}
        elif isinstance(value, (list, tuple)):
            described[str(key)] = {"shape": [len(value)], "dtype": type(value).__name__}
        else:
            described[str(key)] = {"shape": None, "dtype": type(value).__name__}
    return described


def _describe_tensors(split: Split) -> dict[str, dict[str, Any]]:
    return {field: {"shape": list(tensor.shape), "dtype": str(tensor.dtype)}
            for field, tensor in split.tensors().items() if tensor is not None}


def check_file(spec: DatasetSpec, path: Path, raw: dict | None, spec_reason: str) -> dict[str, Any]:
    """Read (unless given), hash and validate a file, and report on it. Unreadable files raise a DataError."""
    raw = read_pickle(path) if raw is None else raw
    sha256 = file_sha256(path)
    checked = check_raw(raw, spec, sha256)
    data = None if checked.errors else checked_to_data(checked, spec, str(path), sha256)
    return build_report(spec, str(path), sha256, checked, data, raw, spec_reason, _cache_state(spec, path, sha256))


def check_generated(spec: DatasetSpec) -> dict[str, Any]:
    """Report on a dataset generated in memory (synthetic), which was validated while it was built."""
    data = spec.generate()
    return build_report(spec, data.source, data.sha256, CheckedRaw(), data, None, "its name (generated)", None)


def _cache_state(spec: DatasetSpec, path: Path, sha256: str) -> dict[str, Any]:
    root = cache.cache_root()
    if root is None:
        return {"root": None, "state": "off", "folder": None}
    fresh = cache.find_fresh(root, spec, cache.Fingerprint.of(path))
    same_content = cache.find_by_checksum(root, spec, sha256)
    edited = None if fresh is None else cache.intact_on_disk(fresh)
    if fresh is not None and edited is not None:
        state, entry = f"edited since it was prepared ({edited}; the next load re-prepares it)", fresh
    elif fresh is not None and fresh.sha256 == sha256:
        state, entry = "fresh", fresh
    elif fresh is not None:     # same path, size and mtime, other content: rewritten in place
        state, entry = "stale (content changed without a new size or time: run `data prepare --rebuild`)", fresh
    elif same_content is not None:
        state, entry = "reusable (same content prepared; the next load hashes the file once)", same_content
    elif cache.entries_for_path(root, spec, path):
        state, entry = "stale (the next load re-prepares it)", None
    else:
        state, entry = "not prepared", None
    return {"root": str(root), "state": state, "folder": None if entry is None else str(entry.folder)}
