"""Validation: each rule gives one error naming file, split and key; differences from the spec are warnings."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from mer_bench.data.mmsa import raw_to_data
from mer_bench.data.validate import check_raw
from mer_bench.errors import DataError
from tests.test_data_support import TINY_SPEC, tiny_raw


def _set(split, key, value_of):
    """A mutation that replaces raw[split][key] with value_of(old value)."""
    def mutate(raw):
        raw[split][key] = value_of(raw[split].get(key))
    return mutate


def _delete(split, key):
    def mutate(raw):
        del raw[split][key]
    return mutate


def _with_value(index, value):
    """A copy of the array with one value replaced; integer arrays become float64 when the value is fractional."""
    def change(array):
        fractional = np.asarray(array).dtype.kind == "f" or float(value) != int(np.nan_to_num(value))
        array = np.array(array, dtype=np.float64 if fractional else None)
        array[index] = value
        return array
    return change


ERRORS = {
    "missing key": (_delete("train", "audio"), "train", "audio", "missing key"),
    "no text at all": (lambda raw: [raw["test"].pop(key) for key in ("text", "text_bert")], "test", "text",
                       "needs 'text'"),
    "missing split": (lambda raw: raw.pop("valid"), "valid", None, "missing split"),
    "N differs across keys": (_set("valid", "vision", lambda v: v[:-1]), "valid", "vision",
                              "has 2 samples but 'regression_labels' has 3"),
    "rank": (_set("test", "audio", lambda v: v[:, :, 0]), "test", "audio", "expected rank 3"),
    "token id layout": (_set("train", "text_bert", lambda v: v[:, :2]), "train", "text_bert", "(N, 3, L)"),
    "NaN features": (_set("train", "vision", _with_value((1, 0, 0), np.nan)), "train", "vision", "1 NaN"),
    "+inf text": (_set("valid", "text", _with_value((0, 1, 2), np.inf)), "valid", "text", "1 +inf"),
    "-inf vision": (_set("valid", "vision", _with_value((0, 1, 1), -np.inf)), "valid", "vision", "1 -inf"),
    "float64 too large for float32": (_set("test", "audio", _with_value((0, 0, 0), 1e300)), "test", "audio",
                                      "1 +inf"),
    "NaN label": (_set("train", "regression_labels", _with_value(2, np.nan)), "train", "regression_labels",
                  "1 NaN labels"),
    "label out of range": (_set("test", "regression_labels", _with_value(0, 2.5)), "test", "regression_labels",
                           "outside [-1, 1] (min"),
    "unimodal label out of range": (_set("train", "regression_labels_A", _with_value(0, -3.0)), "train",
                                    "regression_labels_A", "outside [-1, 1]"),
    "length beyond padding": (_set("valid", "audio_lengths", _with_value(1, 6)), "valid", "audio_lengths",
                              "exceed the padded length 5"),
    "negative length": (_set("train", "vision_lengths", _with_value(0, -1)), "train", "vision_lengths", "negative"),
    "fractional length": (_set("train", "vision_lengths", _with_value(0, 1.5)), "train", "vision_lengths",
                          "whole numbers"),
    "duplicate ids": (_set("test", "id", lambda v: np.array([v[0]] * len(v), dtype=object)), "test", "id",
                      "duplicate ids"),
    "too few ids": (_set("test", "id", lambda v: v[:2]), "test", "id", "expected 4 ids"),
    "object features": (_set("train", "audio", lambda v: v.astype(object)), "train", "audio",
                        "expected numbers, found dtype object"),
    "ragged list": (_set("train", "vision", lambda v: [row[: i + 1] for i, row in enumerate(v)]), "train", "vision",
                    "ragged"),
    "nested Python lists": (_set("valid", "vision", lambda v: v.tolist()), "valid", "vision",
                            "a list of something other than numbers or arrays"),
    "not an array": (_set("valid", "audio", lambda v: "features.npy"), "valid", "audio", "found str"),
    "fractional token ids": (_set("train", "text_bert", _with_value((0, 0, 1), 101.5)), "train", "text_bert",
                             "whole numbers"),
    "mask not 0/1": (_set("train", "text_bert", _with_value((0, 1, 1), 2)), "train", "text_bert", "attention mask"),
    "float token id beyond int64": (_set("train", "text_bert", _with_value((0, 0, 1), 1e30)), "train", "text_bert",
                                    "token ids above 2147483647"),
    "float token id beyond int32": (_set("valid", "text_bert", _with_value((1, 2, 0), 2.0**40)), "valid",
                                    "text_bert", "token ids above"),
    "float length beyond int64": (_set("test", "audio_lengths", lambda v: np.where(np.arange(len(v)) == 0, 1e30, v)),
                                  "test", "audio_lengths",
                                  "exceed the padded length 5 (max 1e+30)"),
    "id that is a huge int": (_set("valid", "id", lambda v: [2**5000] + list(v[1:])), "valid", "id",
                              "id 0 is neither text"),
    "list of arrays too large to stack": (_set("train", "audio", lambda v: [np.broadcast_to(np.float32(0), (2**40,))]
                                               * len(v)), "train", "audio", "not enough memory"),
    "feature size differs across splits": (_set("test", "vision", lambda v: np.concatenate([v, v], axis=2)), "test",
                                           "vision", "feature size 4 differs from train's 2"),
}


@pytest.mark.parametrize("mutate, split, key, phrase", ERRORS.values(), ids=ERRORS.keys())
def test_each_rule_gives_one_error_naming_split_and_key(mutate, split, key, phrase):
    raw = tiny_raw()
    mutate(raw)
    checked = check_raw(raw, TINY_SPEC)
    assert len(checked.errors) == 1, [problem.where() for problem in checked.errors]
    with pytest.raises(DataError) as caught:
        raw_to_data(raw, TINY_SPEC, "/data/file.pkl", "0" * 64)
    error = caught.value
    assert (error.split, error.key) == (split, key)
    assert phrase in error.problem
    where = ", ".join(part for part in (f"split '{split}'" if split else "", f"key '{key}'" if key else "") if part)
    assert str(error).startswith(f"/data/file.pkl: {where}: ") and "\n" not in str(error)


def _notes(raw, spec=TINY_SPEC, sha256="0" * 64):
    return raw_to_data(raw, spec, "file.pkl", sha256).notes


def test_checksum_mismatch_is_a_warning():
    spec = dataclasses.replace(TINY_SPEC, sha256="a" * 64)
    assert any("differs from the published aaaaaaaaaaaa" in note for note in _notes(tiny_raw(), spec, "b" * 64))
    assert not any("published" in note for note in _notes(tiny_raw(), spec, "a" * 64))


def test_differences_from_the_spec_are_warnings_and_the_data_decides():
    spec = dataclasses.replace(TINY_SPEC, feature_dims=(768, 33, 709), seq_lens=(39, 400, 55), split_sizes=(9, 9, 9))
    data = raw_to_data(tiny_raw(), spec, "file.pkl", "0" * 64)
    assert data.feature_dims == (6, 3, 2) and data.seq_lens == (4, 5, 3)
    assert "warning: split 'train', key 'vision': feature size 2, 'tiny' expects 709; using the file's" in data.notes
    assert "warning: train/valid/test sizes 5/3/4, 'tiny' expects 9/9/9" in data.notes


def test_missing_unimodal_labels_warn_and_leave_subsets_unavailable():
    raw = tiny_raw()
    del raw["test"]["regression_labels_V"]
    data = raw_to_data(raw, TINY_SPEC, "file.pkl", "0" * 64)
    assert data.test.unimodal_labels is None and data.train.unimodal_labels is not None
    assert any("regression_labels_V missing" in note for note in data.notes)


def test_ids_shared_across_splits_are_a_warning():
    raw = tiny_raw()
    raw["test"]["id"][0] = raw["train"]["id"][0]
    assert any("1 ids also appear in split 'train'" in note for note in _notes(raw))


def test_a_padded_length_that_differs_across_splits_is_a_warning():
    raw = tiny_raw()
    raw["valid"]["audio"] = np.concatenate([raw["valid"]["audio"], raw["valid"]["audio"]], axis=1)
    assert any("padded length 10 differs from train's 5" in note for note in _notes(raw))


def test_zero_lengths_are_a_warning():
    raw = tiny_raw()
    raw["train"]["vision_lengths"][0] = 0
    assert any("1 samples have length 0" in note for note in _notes(raw))


def test_every_problem_is_reported_not_just_the_first():
    raw = tiny_raw()
    raw["train"]["audio"][0, 0, 0] = np.nan
    del raw["test"]["vision"]
    assert [(p.split, p.key) for p in check_raw(raw, TINY_SPEC).errors] == [("train", "audio"), ("test", "vision")]
