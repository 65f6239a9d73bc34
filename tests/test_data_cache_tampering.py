"""A prepared-cache file edited after it was written (same size, even the same modification time) is never used:
loading warns, reads the source pickle, and prepares it again."""

from __future__ import annotations

import json
import os
import shutil

import numpy as np
import pytest

from mer_bench.data import cache, cache_integrity
from mer_bench.data.loading import load_dataset, prepare_dataset
from mer_bench.data.validate import DataWarning
from tests.test_data_cache import cache_dir, source  # noqa: F401  (fixtures shared with the cache tests)
from tests.test_data_support import TINY_SPEC, assert_same_data, quirky_raw, write_pickle


def _edit_keeping_size_and_mtime(path, edit):
    """Rewrite `path` in place as a careless (or hostile) user would, then set its modification time back."""
    before = path.stat()
    content = edit(path.read_bytes())
    assert len(content) == before.st_size
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def _flip_labels(content: bytes) -> bytes:
    header = len(content) - 5 * 4                                  # train labels: 5 float32 after the header
    labels = np.frombuffer(content[header:], dtype="<f4")
    return content[:header] + (-labels).astype("<f4").tobytes()


def _plant_nan(content: bytes) -> bytes:
    return content[:-4] + np.array([np.nan], dtype="<f4").tobytes()


def _reshape_header(content: bytes) -> bytes:
    return content.replace(b"(5, 5, 3)", b"(5, 3, 5)", 1)          # train audio (N, La, Da): same size, other shape


def _edit_ids(content: bytes) -> bytes:
    return content.replace(b"train_video0", b"train_video9", 1)


EDITS = {"labels flipped": ("train.label.npy", _flip_labels), "NaN planted": ("train.audio.npy", _plant_nan),
         "header reshaped": ("train.audio.npy", _reshape_header), "ids edited": ("ids.json", _edit_ids)}


@pytest.mark.parametrize("small_file", [cache_integrity.SMALL_FILE, 0], ids=["hashed always", "stamp then hash"])
@pytest.mark.parametrize("name, edit", EDITS.values(), ids=EDITS.keys())
def test_an_edited_cache_file_is_never_used(cache_dir, source, monkeypatch, name, edit, small_file):
    monkeypatch.setattr(cache_integrity, "SMALL_FILE", small_file)   # 0: every file counts as large
    entry = prepare_dataset(TINY_SPEC, source).entry
    _edit_keeping_size_and_mtime(entry.folder / name, edit)
    with pytest.warns(DataWarning, match=rf"does not match what was written \({name.replace('.', '[.]')}"):
        data = load_dataset(TINY_SPEC, data_file=source)
    assert_same_data(data, load_dataset(TINY_SPEC, data_file=source, use_cache=False))
    assert data.sha256 == entry.sha256
    prepared_again = cache.find_fresh(cache_dir, TINY_SPEC, cache.Fingerprint.of(source))
    assert prepared_again is not None and cache.intact_on_disk(prepared_again) is None
    with _no_warnings():
        assert_same_data(load_dataset(TINY_SPEC, data_file=source), data)


def test_prepare_and_check_notice_an_edited_entry(cache_dir, source):
    from mer_bench.data.report import _cache_state
    entry = prepare_dataset(TINY_SPEC, source).entry
    _edit_keeping_size_and_mtime(entry.folder / "valid.label.npy", _plant_nan)
    state = _cache_state(TINY_SPEC, source, entry.sha256)["state"]
    assert state.startswith("edited since it was prepared (valid.label.npy: content changed")
    assert prepare_dataset(TINY_SPEC, source).status == "built"
    assert cache.intact_on_disk(cache.find_fresh(cache_dir, TINY_SPEC, cache.Fingerprint.of(source))) is None


def test_a_copied_cache_folder_is_verified_once_and_keeps_loading(cache_dir, source, monkeypatch, tmp_path):
    """A copy has new stamps but the same content: it is hashed once, accepted, and its new stamps recorded."""
    monkeypatch.setattr(cache_integrity, "SMALL_FILE", 0)
    entry = prepare_dataset(TINY_SPEC, source).entry
    moved = tmp_path / "elsewhere"
    shutil.copytree(cache_dir, moved)
    shutil.rmtree(cache_dir)
    shutil.copytree(moved, cache_dir)
    hashed = []
    monkeypatch.setattr(cache_integrity, "file_sha256", lambda path, real=cache_integrity.file_sha256:
                        hashed.append(path.name) or real(path))
    with _no_warnings():
        load_dataset(TINY_SPEC, data_file=source)
        assert hashed and set(hashed) == set(entry.manifest["files"])
        hashed.clear()
        load_dataset(TINY_SPEC, data_file=source)
    assert hashed == []


def test_an_old_manifest_without_file_records_is_stale_not_an_error(cache_dir, source):
    entry = prepare_dataset(TINY_SPEC, source).entry
    sizes = {name: record["size"] for name, record in entry.manifest["files"].items()}
    old = dict(entry.manifest, format=1, files=sizes)
    (entry.folder / "manifest.json").write_text(json.dumps(old))
    assert cache.find_fresh(cache_dir, TINY_SPEC, cache.Fingerprint.of(source)) is None
    with _no_warnings():
        data = load_dataset(TINY_SPEC, data_file=source)
    assert_same_data(data, load_dataset(TINY_SPEC, data_file=source, use_cache=False))
    manifest = json.loads((entry.folder / "manifest.json").read_text())
    assert manifest["format"] == cache.FORMAT_VERSION
    assert all(cache_integrity.well_formed(record) for record in manifest["files"].values())


def test_a_planted_extra_array_is_ignored(cache_dir, tmp_path):
    """Only files the manifest lists are mapped: unimodal labels added to an entry without them cannot slip in."""
    raw = quirky_raw()
    for split in raw.values():
        for key in ("regression_labels_T", "regression_labels_A", "regression_labels_V"):
            split.pop(key, None)
    source = write_pickle(raw, tmp_path / "data" / "no-unimodal.pkl")
    entry = prepare_dataset(TINY_SPEC, source).entry
    assert "train.unimodal_labels.npy" not in entry.manifest["files"]
    np.save(entry.folder / "train.unimodal_labels.npy", np.ones((5, 3), dtype=np.float32))
    with pytest.warns(DataWarning, match="no unimodal labels"):
        assert load_dataset(TINY_SPEC, data_file=source).train.unimodal_labels is None


class _no_warnings:
    """Fail on any warning inside the block."""

    def __enter__(self):
        import warnings
        self._context = warnings.catch_warnings()
        self._context.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        return self._context.__exit__(*exc)
