"""Small MMSA-format dicts shared by the data tests, the checks every loaded dataset must pass, and tests of both.

`tiny_raw` is a clean file in the layout MMSA documents; `quirky_raw` is hand-made with the quirks of files in the
wild: float64 arrays, lengths as Python lists, a top-level `config` (MMSA-FET), -inf audio frames, text both as BERT
features and as float token ids, (N, 1) labels, and the deprecated classification labels (deliberately wrong, since
they must be ignored).
"""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import torch

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import SPLITS, MERData
from mer_bench.data.validate import check_raw

TINY_SIZES = (5, 3, 4)
TINY_SPEC = DatasetSpec(name="tiny", title="Tiny", style="sims", feature_dims=(6, 3, 2), seq_lens=(4, 5, 3),
                        split_sizes=TINY_SIZES, has_unimodal_labels=True, text_model="bert-base-chinese")
QUIRKY_INF_FRAMES = 2   # -inf audio values planted per split of the quirky file


def tiny_raw(seed: int = 0) -> dict:
    """A valid SIMS-style file with TINY_SPEC's shapes: float32 arrays, int64 lengths, string ids."""
    rng = np.random.default_rng(seed)
    raw = {}
    for split, n in zip(SPLITS, TINY_SIZES):
        text_len, audio_len, vision_len = TINY_SPEC.seq_lens
        ids = rng.integers(100, 900, size=(n, text_len))
        mask = np.ones((n, text_len), dtype=np.int64)
        columns = {
            "id": np.array([f"{split}_video{i}$_${i}" for i in range(n)], dtype=object),
            "raw_text": [f"sentence {i}" for i in range(n)],
            "text": rng.standard_normal((n, text_len, 6)).astype(np.float32),
            "text_bert": np.stack([ids, mask, np.zeros_like(ids)], axis=1).astype(np.float32),
            "audio": rng.standard_normal((n, audio_len, 3)).astype(np.float32),
            "vision": rng.standard_normal((n, vision_len, 2)).astype(np.float32),
            "audio_lengths": rng.integers(1, audio_len + 1, size=n),
            "vision_lengths": rng.integers(1, vision_len + 1, size=n),
            "regression_labels": np.round(rng.uniform(-1, 1, size=n), 1).astype(np.float32),
        }
        for modality in "TAV":
            columns[f"regression_labels_{modality}"] = np.round(rng.uniform(-1, 1, size=n), 1).astype(np.float32)
        raw[split] = columns
    return raw


def quirky_raw() -> dict:
    """tiny_raw with the quirks of files in the wild (see the module docstring)."""
    raw = tiny_raw(seed=7)
    raw["config"] = {"audio": {"tool": "librosa"}, "align": False}
    for split in SPLITS:
        columns = raw[split]
        for key in ("text", "text_bert", "audio", "vision"):
            columns[key] = columns[key].astype(np.float64)
        columns["audio"][0, :QUIRKY_INF_FRAMES, 0] = -np.inf
        columns["audio_lengths"] = [int(length) for length in columns["audio_lengths"]]
        columns["vision_lengths"] = [int(length) for length in columns["vision_lengths"]]
        columns["regression_labels"] = columns["regression_labels"].astype(np.float64).reshape(-1, 1)
        columns["classification_labels"] = np.full(len(columns["id"]), 7.0)   # nonsense on purpose: ignored
        columns["annotations"] = ["Neutral"] * len(columns["id"])
    return raw


def write_pickle(raw: dict, path: Path, protocol: int = 4) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        pickle.dump(raw, handle, protocol=protocol)
    return path


TENSOR_FIELDS = ("label", "audio", "vision", "audio_lengths", "vision_lengths", "text", "text_bert", "unimodal_labels")


def assert_valid_data(data: MERData) -> None:
    """What every model may rely on, checked independently of the validator."""
    low, high = data.spec.label_range
    dims = None
    for name in SPLITS:
        split = data.split(name)
        n = len(split)
        assert n > 0 and len(split.ids) == n and len(set(split.ids)) == n
        assert all(isinstance(value, str) for value in split.ids)
        assert split.label.shape == (n,) and split.label.dtype == torch.float32
        assert bool(torch.isfinite(split.label).all()) and low - 1e-4 <= split.label.min() <= split.label.max() <= high + 1e-4
        for frames, lengths in ((split.audio, split.audio_lengths), (split.vision, split.vision_lengths)):
            assert frames.dtype == torch.float32 and frames.dim() == 3 and frames.shape[0] == n
            assert bool(torch.isfinite(frames).all())
            assert lengths.dtype == torch.int64 and lengths.shape == (n,)
            assert int(lengths.min()) >= 0 and int(lengths.max()) <= frames.shape[1]
        assert split.text is not None or split.text_bert is not None
        if split.text is not None:
            assert split.text.dtype == torch.float32 and split.text.dim() == 3 and split.text.shape[0] == n
            assert bool(torch.isfinite(split.text).all())
        if split.text_bert is not None:
            assert split.text_bert.dtype == torch.int64 and split.text_bert.shape[:2] == (n, 3)
            assert int(split.text_bert.min()) >= 0
        if split.unimodal_labels is not None:
            assert split.unimodal_labels.shape == (n, 3) and bool(torch.isfinite(split.unimodal_labels).all())
        split_dims = (None if split.text is None else split.text.shape[2], split.audio.shape[2], split.vision.shape[2])
        assert dims is None or dims == split_dims
        dims = split_dims


def assert_same_data(first: MERData, second: MERData) -> None:
    """Identical tensors (values, dtypes, shapes), ids, checksum, notes and source."""
    assert (first.source, first.sha256, first.notes, first.spec) == (second.source, second.sha256, second.notes,
                                                                      second.spec)
    for name in SPLITS:
        a, b = first.split(name), second.split(name)
        assert a.ids == b.ids
        for field in TENSOR_FIELDS:
            x, y = getattr(a, field), getattr(b, field)
            assert (x is None) == (y is None), field
            if x is not None:
                assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), (name, field)


def test_tiny_file_is_clean():
    assert check_raw(tiny_raw(), TINY_SPEC).problems == []


def test_quirky_file_has_its_quirks_and_no_errors():
    raw = quirky_raw()
    assert raw["train"]["audio"].dtype == np.float64 and isinstance(raw["train"]["audio_lengths"], list)
    assert np.isneginf(raw["train"]["audio"]).sum() == QUIRKY_INF_FRAMES and "config" in raw
    checked = check_raw(raw, TINY_SPEC)
    assert checked.errors == [] and checked.ignored_keys == ["config"]
