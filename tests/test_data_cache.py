"""The prepared cache: identical data, freshness by fingerprint, rebuilds, and no half-written entry ever used."""

from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import pytest
import torch

from mer_bench.data import cache, loading
from mer_bench.data.loading import load_dataset, prepare_dataset, read_file
from mer_bench.data.validate import DataWarning
from mer_bench.errors import DataError, UserError
from tests.test_data_support import TINY_SPEC, assert_same_data, quirky_raw, tiny_raw, write_pickle


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    folder = tmp_path / "cache"
    monkeypatch.setenv(cache.CACHE_VARIABLE, str(folder))
    return folder


@pytest.fixture
def source(tmp_path):
    return write_pickle(quirky_raw(), tmp_path / "data" / "quirky.pkl")


def _forbid(monkeypatch, name):
    """Make a loading step fail loudly, to prove a code path does not take it."""
    def refuse(*args, **kwargs):
        raise AssertionError(f"{name} was called")
    monkeypatch.setattr(loading, name, refuse)


def _entries(cache_dir):
    return sorted(path.name for path in cache_dir.iterdir()) if cache_dir.exists() else []


def test_data_from_the_cache_is_identical_to_data_from_the_pickle(cache_dir, source):
    from_pickle = load_dataset(TINY_SPEC, data_file=source, use_cache=False)
    assert prepare_dataset(TINY_SPEC, source).status == "built"
    from_cache = load_dataset(TINY_SPEC, data_file=source)
    assert_same_data(from_pickle, from_cache)
    assert any("-inf audio values to 0" in note for note in from_cache.notes)


def test_a_fresh_entry_is_found_without_reading_or_hashing_the_source(cache_dir, source, monkeypatch):
    prepare_dataset(TINY_SPEC, source)
    _forbid(monkeypatch, "file_sha256")
    _forbid(monkeypatch, "read_pickle")
    data = load_dataset(TINY_SPEC, data_file=source)
    assert isinstance(data.train.audio, torch.Tensor) and len(data.train) == 5
    assert prepare_dataset(TINY_SPEC, source).status == "fresh"


def test_without_a_prepared_entry_loading_writes_nothing(cache_dir, source):
    load_dataset(TINY_SPEC, data_file=source)
    assert _entries(cache_dir) == []


def test_a_changed_source_is_prepared_again(cache_dir, source):
    first = prepare_dataset(TINY_SPEC, source).entry
    write_pickle(tiny_raw(seed=3), source)
    os.utime(source, ns=(1, 1))            # a new time too, however fast the rewrite was
    loaded = load_dataset(TINY_SPEC, data_file=source)
    assert_same_data(loaded, load_dataset(TINY_SPEC, data_file=source, use_cache=False))
    assert loaded.sha256 == loading.file_sha256(source) != first.sha256
    assert _entries(cache_dir) == [f"tiny-{loaded.sha256[:16]}"]      # the stale entry is gone


def test_a_touched_or_copied_source_reuses_the_entry_after_one_hash(cache_dir, source, monkeypatch, tmp_path):
    entry = prepare_dataset(TINY_SPEC, source).entry
    copy = tmp_path / "elsewhere" / "copy.pkl"
    copy.parent.mkdir()
    copy.write_bytes(source.read_bytes())
    _forbid(monkeypatch, "read_pickle")
    data = load_dataset(TINY_SPEC, data_file=copy)
    assert data.source == str(copy) and data.sha256 == entry.sha256
    manifest = json.loads((entry.folder / "manifest.json").read_text())
    assert {fp["path"] for fp in manifest["fingerprints"]} == {str(source.resolve()), str(copy.resolve())}


def test_a_folder_without_manifest_or_with_a_truncated_array_is_never_used(cache_dir, source):
    entry = prepare_dataset(TINY_SPEC, source).entry
    audio = entry.folder / "train.audio.npy"
    audio.write_bytes(audio.read_bytes()[:-8])
    assert cache.find_fresh(cache_dir, TINY_SPEC, cache.Fingerprint.of(source)) is None
    (entry.folder / "manifest.json").unlink()
    assert cache.entries(cache_dir, TINY_SPEC) == []
    assert_same_data(load_dataset(TINY_SPEC, data_file=source),
                     load_dataset(TINY_SPEC, data_file=source, use_cache=False))


def test_a_write_that_fails_midway_leaves_no_entry(cache_dir, source, monkeypatch):
    data = read_file(source, TINY_SPEC)
    saved = []

    def failing_save(path, array, allow_pickle):
        if len(saved) == 3:
            raise OSError(28, "No space left on device")
        saved.append(path)
        np.save(path, array, allow_pickle=allow_pickle)

    monkeypatch.setattr(cache.np, "save", failing_save)
    with pytest.raises(OSError):
        cache.write_entry(cache_dir, data, cache.Fingerprint.of(source))
    assert _entries(cache_dir) == []


def test_a_model_writing_into_its_data_does_not_change_the_cache(cache_dir, source):
    prepare_dataset(TINY_SPEC, source)
    first = load_dataset(TINY_SPEC, data_file=source)
    original = first.train.vision.clone()
    first.train.vision.mul_(0)
    assert torch.equal(load_dataset(TINY_SPEC, data_file=source).train.vision, original)


def test_a_changed_spec_makes_the_entry_stale_and_it_is_rebuilt(cache_dir, source):
    prepare_dataset(TINY_SPEC, source)
    changed = dataclasses.replace(TINY_SPEC, split_sizes=(9, 9, 9))
    assert cache.find_fresh(cache_dir, changed, cache.Fingerprint.of(source)) is None
    with pytest.warns(DataWarning, match="expects 9/9/9"):
        data = load_dataset(changed, data_file=source)
    assert "warning: train/valid/test sizes 5/3/4, 'tiny' expects 9/9/9" in data.notes
    assert cache.find_fresh(cache_dir, changed, cache.Fingerprint.of(source)) is not None


def test_rebuild_replaces_an_entry(cache_dir, source):
    first = prepare_dataset(TINY_SPEC, source).entry
    (first.folder / "marker").write_text("old")
    again = prepare_dataset(TINY_SPEC, source, rebuild=True)
    assert again.status == "built" and again.entry.folder == first.folder
    assert not (first.folder / "marker").exists()


def test_a_bad_source_leaves_the_cache_untouched(cache_dir, tmp_path):
    raw = tiny_raw()
    raw["valid"]["audio"] = raw["valid"]["audio"][:, :, 0]
    bad = write_pickle(raw, tmp_path / "bad.pkl")
    with pytest.raises(DataError, match="split 'valid', key 'audio'"):
        prepare_dataset(TINY_SPEC, bad)
    assert _entries(cache_dir) == []


def test_the_cache_can_be_turned_off(monkeypatch, source):
    monkeypatch.setenv(cache.CACHE_VARIABLE, "off")
    assert cache.cache_root() is None
    with pytest.raises(UserError, match="disabled"):
        prepare_dataset(TINY_SPEC, source)


def test_default_location_is_per_user(monkeypatch, tmp_path):
    monkeypatch.delenv(cache.CACHE_VARIABLE, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert cache.cache_root() == tmp_path / "xdg" / "mer-bench" / "prepared"


def test_a_damaged_manifest_is_skipped(cache_dir, source):
    entry = prepare_dataset(TINY_SPEC, source).entry
    manifest = json.loads((entry.folder / "manifest.json").read_text())
    (entry.folder / "manifest.json").write_text(json.dumps({**manifest, "fingerprints": [{"path": 1}]}))
    assert cache.entries(cache_dir, TINY_SPEC) == []
    assert prepare_dataset(TINY_SPEC, source).status == "built"


def test_entries_are_readable_as_the_umask_says(cache_dir, source):
    """A cache on a shared lab folder: others may read it (mkdtemp alone would make the entry folder 0700)."""
    previous = os.umask(0o022)
    try:
        entry = prepare_dataset(TINY_SPEC, source).entry
    finally:
        os.umask(previous)
    assert entry.folder.stat().st_mode & 0o777 == 0o755
    assert {path.stat().st_mode & 0o777 for path in entry.folder.iterdir()} == {0o644}
