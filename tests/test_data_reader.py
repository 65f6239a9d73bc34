"""The restricted unpickler and the conversion of MMSA files, quirks included."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
import torch

from mer_bench.data.mmsa import raw_to_data, read_pickle, write_pickle as write_mmsa_pickle
from mer_bench.data.split import SPLITS
from mer_bench.errors import DataError
from tests.test_data_support import (QUIRKY_INF_FRAMES, TINY_SPEC, assert_valid_data, quirky_raw, tiny_raw,
                               write_pickle)


class _RunsCommand:
    """Pickles into a call of os.system: what a malicious feature file would contain."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_imports_os_is_refused_before_anything_runs(tmp_path):
    marker = tmp_path / "marker"
    raw = tiny_raw()
    raw["train"]["audio"] = _RunsCommand(f"touch {marker}")
    path = write_pickle(raw, tmp_path / "evil.pkl")
    with pytest.raises(DataError, match=r"refusing to load: the pickle asks for '(posix|os|nt)\.system'") as caught:
        read_pickle(path)
    assert not marker.exists()
    assert str(path) in str(caught.value)


@pytest.mark.parametrize("payload", [
    b"cbuiltins\neval\n(V1+1\ntR.",
    b"cbuiltins\ngetattr\n(cnumpy\nndarray\nVtofile\ntR.",
    b"csubprocess\ncall\n(Vtrue\ntR.",
    b"cnumpy\nload\n(V/etc/passwd\ntR.",
])
def test_other_callables_are_refused_by_name(tmp_path, payload):
    path = tmp_path / "evil.pkl"
    path.write_bytes(payload)
    with pytest.raises(DataError, match="refusing to load"):
        read_pickle(path)


def test_codecs_encode_is_limited_to_the_latin1_round_trip(tmp_path):
    path = tmp_path / "codec.pkl"
    path.write_bytes(b"c_codecs\nencode\n(Vabc\nVrot13\ntR.")
    with pytest.raises(DataError, match="refusing to load: _codecs.encode with encoding 'rot13'"):
        read_pickle(path)


def test_persistent_ids_are_refused(tmp_path):
    path = tmp_path / "persistent.pkl"
    path.write_bytes(b"Pexternal\n.")
    with pytest.raises(DataError, match="external objects"):
        read_pickle(path)


@pytest.mark.parametrize("protocol", [0, 2, 3, 4, 5])
def test_every_pickle_protocol_round_trips(tmp_path, protocol):
    raw = quirky_raw()
    loaded = read_pickle(write_pickle(raw, tmp_path / "file.pkl", protocol))
    for split in SPLITS:
        np.testing.assert_array_equal(loaded[split]["audio"], raw[split]["audio"])
        assert loaded[split]["audio_lengths"] == raw[split]["audio_lengths"]
        assert list(loaded[split]["id"]) == list(raw[split]["id"])
    assert loaded["config"] == raw["config"]


def test_numpy_1_module_names_are_accepted(tmp_path):
    """Files written under numpy 1 name numpy.core, which numpy 2 renamed to numpy._core."""
    data = pickle.dumps({"x": np.arange(4.0), "s": np.float32(2)}, protocol=2)
    data = data.replace(b"numpy._core.", b"numpy.core.")
    assert b"numpy.core.multiarray" in data
    path = tmp_path / "numpy1.pkl"
    path.write_bytes(data)
    np.testing.assert_array_equal(read_pickle(path)["x"], np.arange(4.0))


@pytest.mark.parametrize("content, problem", [
    (b"", "not a readable MMSA pickle"),
    (b"video_id,clip_id,text,label\n1,2,hello,0.5\n", "not a readable MMSA pickle"),
    (pickle.dumps([1, 2, 3]), "expected a dict with train/valid/test, found list"),
])
def test_unreadable_content_is_a_data_error(tmp_path, content, problem):
    path = tmp_path / "bad.pkl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=problem):
        read_pickle(path)


def test_truncated_file_is_a_data_error(tmp_path):
    path = write_pickle(tiny_raw(), tmp_path / "file.pkl")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(DataError, match="truncated or corrupt"):
        read_pickle(path)


def test_quirky_file_loads_with_the_quirks_resolved(tmp_path):
    raw = quirky_raw()
    path = write_pickle(raw, tmp_path / "quirky.pkl")
    data = raw_to_data(read_pickle(path), TINY_SPEC, str(path), "0" * 64)
    assert_valid_data(data)
    for split in SPLITS:
        part, columns = data.split(split), raw[split]
        assert part.audio.dtype == torch.float32 and part.text.dtype == torch.float32
        expected_audio = np.where(np.isneginf(columns["audio"]), 0.0, columns["audio"]).astype(np.float32)
        assert torch.equal(part.audio, torch.from_numpy(expected_audio))
        assert part.audio_lengths.tolist() == columns["audio_lengths"]
        assert part.label.tolist() == pytest.approx(columns["regression_labels"].reshape(-1).tolist())
        assert torch.equal(part.text_bert, torch.from_numpy(columns["text_bert"].astype(np.int64)))
        assert part.text.shape == columns["text"].shape       # both text forms kept
        assert part.ids == tuple(columns["id"])
    assert data.notes == tuple(f"{split}: set {QUIRKY_INF_FRAMES} -inf audio values to 0" for split in SPLITS)
    assert np.isneginf(raw["train"]["audio"]).sum() == QUIRKY_INF_FRAMES    # the caller's dict is left as it was


def test_missing_ids_and_lengths_are_filled_in():
    raw = tiny_raw()
    for split in SPLITS:
        del raw[split]["id"], raw[split]["audio_lengths"]
    data = raw_to_data(raw, TINY_SPEC, "file.pkl", "0" * 64)
    assert data.train.ids == tuple(f"train-{i}" for i in range(len(data.train)))
    assert data.train.audio_lengths.tolist() == [data.train.audio.shape[1]] * len(data.train)
    assert "warning: split 'train', key 'id': no ids; using 'train-<index>' in their place" in data.notes


def test_sequence_ids_are_joined_as_mmsa_does():
    raw = tiny_raw()
    raw["train"]["id"] = [("video", str(i), b"end") for i in range(len(raw["train"]["regression_labels"]))]
    assert raw_to_data(raw, TINY_SPEC, "file.pkl", "0" * 64).train.ids[1] == "video_1_end"


def test_written_pickles_are_atomic_and_read_back(tmp_path):
    raw = tiny_raw()
    path = tmp_path / "out.pkl"
    write_mmsa_pickle(raw, path)
    assert [p.name for p in tmp_path.iterdir()] == ["out.pkl"]   # no temporary left beside it
    np.testing.assert_array_equal(read_pickle(path)["test"]["vision"], raw["test"]["vision"])


class _ObjectArrayState:
    """Pickles as numpy's own array recipe, but with an object array's list shorter than its shape: numpy's
    ndarray.__setstate__ would read past the list (a crash the fuzz test found)."""

    def __reduce__(self):
        return (np.ndarray.__reduce__(np.zeros(1))[0], (np.ndarray, (0,), b"b"),
                (1, (166,), np.dtype(object), False, ["a", "b"]))


def test_an_object_array_shorter_than_its_shape_is_refused(tmp_path):
    path = write_pickle({"train": {"id": _ObjectArrayState()}}, tmp_path / "short.pkl", protocol=2)
    with pytest.raises(DataError, match="object array data does not match its shape"):
        read_pickle(path)


def test_a_huge_memo_index_allocates_nothing(tmp_path):
    """The C unpickler sizes its memo array by the largest index named; ours keeps a dict."""
    import struct
    import tracemalloc
    path = tmp_path / "memo.pkl"
    path.write_bytes(b"\x80\x02}r" + struct.pack("<I", 2**24) + b".")
    tracemalloc.start()
    try:
        assert read_pickle(path) == {}
        assert tracemalloc.get_traced_memory()[1] < 16 * 2**20
    finally:
        tracemalloc.stop()


def test_state_can_be_set_only_on_arrays_and_dtypes(tmp_path):
    path = tmp_path / "build.pkl"
    path.write_bytes(b"c_codecs\nencode\n(dVpatched\nI1\nsb.")
    with pytest.raises(DataError, match="state for an object that is not an array or a dtype"):
        read_pickle(path)
    from mer_bench.data import safe_pickle
    assert not hasattr(safe_pickle._latin1_encode, "patched")


@pytest.mark.parametrize("content, phrase", [
    (b"cnumpy\nndarray\n(I2\ntR.", "not a readable MMSA pickle"),                   # the class is not callable
    (pickle.dumps(np.zeros(2, dtype=[("x", "O")]), protocol=2), "structured or malformed dtype"),
    (pickle.dumps(np.zeros(2, dtype="M8[s]"), protocol=2), "only plain type codes"),
])
def test_numpy_constructs_outside_plain_arrays_are_refused(tmp_path, content, phrase):
    path = tmp_path / "numpy.pkl"
    path.write_bytes(content)
    with pytest.raises(DataError, match=phrase):
        read_pickle(path)
