"""Aligned data: the harness's segment-mean alignment, the aligned datasets and synthetic variant, the alignment a
result file records, and the board's mark on rows of aligned input."""

from __future__ import annotations

import hashlib
import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from mer_bench.data.align import NATIVE, SEGMENT_MEAN, align_split, aligned_input, alignment_seen, text_lengths
from mer_bench.data.builtin import STANDARD_DATASETS
from mer_bench.data.loading import spec_from_content
from mer_bench.data.synthetic import generate_raw
from mer_bench.leaderboard.boards import make_boards
from mer_bench.leaderboard.ranking import build_tables
from mer_bench.leaderboard.views import row_view
from mer_bench.plugins import get_catalog
from mer_bench.results import ResultError, RunResult
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many

from tests.test_leaderboard_fixtures import result_dict, synthetic_labels

SIZES = (24, 12, 12)


def test_align_split_puts_every_modality_on_the_text_tokens(tiny_data):
    split = tiny_data.train
    aligned = align_split(split)
    steps, text_len = text_lengths(split), split.text.shape[1]
    assert aligned.audio.shape == (len(split), text_len, split.audio.shape[2])      # (N, Lt, Da)
    assert aligned.vision.shape == (len(split), text_len, split.vision.shape[2])    # (N, Lt, Dv)
    assert torch.equal(aligned.audio_lengths, steps) and torch.equal(aligned.vision_lengths, steps)
    past_tokens = torch.arange(text_len)[None, :] >= steps[:, None]                   # (N, Lt)
    assert not aligned.audio[past_tokens].any() and not aligned.vision[past_tokens].any()
    # sample 0: its first token's audio is the mean of the first slice of its valid frames
    n, k = int(split.audio_lengths[0]), int(steps[0])
    torch.testing.assert_close(aligned.audio[0, 0], split.audio[0, : n // k].mean(dim=0))
    assert aligned.text is split.text and aligned.label is split.label


def test_aligned_input_leaves_aligned_data_as_it_is(tiny_data):
    assert aligned_input(tiny_data.valid, data_aligned=True) is tiny_data.valid
    assert aligned_input(tiny_data.valid, data_aligned=False).audio.shape[1] == tiny_data.valid.text.shape[1]


def test_alignment_seen_names_what_the_model_read():
    assert alignment_seen(needs_aligned=True, data_aligned=False) == SEGMENT_MEAN
    assert alignment_seen(needs_aligned=False, data_aligned=False) is None
    assert alignment_seen(needs_aligned=True, data_aligned=True) == NATIVE
    assert alignment_seen(needs_aligned=False, data_aligned=True) == NATIVE


def test_aligned_datasets_are_registered_with_mmsas_published_checksums():
    specs = {spec.name: spec for spec in STANDARD_DATASETS}
    for name, unaligned in (("mosi-aligned", "mosi"), ("mosei-aligned", "mosei")):
        spec = specs[name]
        assert spec.aligned and not specs[unaligned].aligned
        assert spec.seq_lens == (50, 50, 50) and spec.feature_dims == specs[unaligned].feature_dims
        assert spec.relative_paths[0].endswith("Processed/aligned_50.pkl")
        assert len(spec.sha256) == 64 and spec.sha256 != specs[unaligned].sha256
    assert {"mosi-aligned", "mosei-aligned"} <= set(get_catalog().datasets)


def test_synthetic_aligned_variant_is_the_harness_alignment_without_lengths():
    unaligned, aligned = generate_raw("mosi", SIZES, 3), generate_raw("mosi", SIZES, 3, aligned=True)
    train = aligned["train"]
    assert "audio_lengths" not in train and "vision_lengths" not in train          # as MMSA's aligned files
    assert train["audio"].shape == (SIZES[0], 50, 5) and train["vision"].shape == (SIZES[0], 50, 20)
    np.testing.assert_array_equal(train["text"], unaligned["train"]["text"])
    np.testing.assert_array_equal(train["regression_labels"], unaligned["train"]["regression_labels"])
    steps = train["text_bert"][:, 1].sum(axis=1).astype(int)                       # tokens per sample
    assert train["audio"][0, steps[0]:].sum() == 0 and np.abs(train["audio"][0, : steps[0]]).sum() > 0


def test_default_synthetic_bytes_do_not_depend_on_the_aligned_option():
    digest = lambda raw: hashlib.sha256(pickle.dumps(raw, protocol=4)).hexdigest()  # noqa: E731
    assert digest(generate_raw("mosi", SIZES, 3)) == digest(generate_raw("mosi", SIZES, 3, aligned=False))


def test_a_file_is_told_aligned_or_not_by_its_padded_lengths(tmp_path):
    specs = list(STANDARD_DATASETS)
    aligned_spec, why = spec_from_content(tmp_path / "a.pkl", generate_raw("mosi", SIZES, 0, aligned=True), specs)
    assert aligned_spec.name == "mosi-aligned" and "equal padded lengths" in why
    assert spec_from_content(tmp_path / "b.pkl", generate_raw("mosi", SIZES, 0), specs)[0].name == "mosi"
    assert spec_from_content(tmp_path / "c.pkl", generate_raw("mosei", SIZES, 0), specs)[0].name == "mosei"


def _run(model: str, dataset: str, out: Path, data_file: Path | None = None):
    catalog = get_catalog()
    spec = make_spec(catalog, model, dataset, 1, epochs=1, data_sha256=data_checksum(catalog, dataset, None, data_file),
                     settings={key: str(value) for key, value in catalog.model(model).value.smoke_settings.items()})
    (outcome,) = run_many([spec], RunOptions(out_dir=out, data_file=data_file, device="cpu", probes=False), catalog)
    return outcome.result


def test_result_files_record_the_alignment_the_model_saw(tmp_path):
    data_file = tmp_path / "mosi_aligned.pkl"
    data_file.write_bytes(pickle.dumps(generate_raw("mosi", SIZES, 0, aligned=True), protocol=4))
    assert _run("ef-lstm", "synthetic", tmp_path / "r").dataset["alignment"] == SEGMENT_MEAN
    assert _run("mean", "synthetic", tmp_path / "r").dataset["alignment"] is None
    native = _run("ef-lstm", "mosi-aligned", tmp_path / "r", data_file)
    assert native.dataset["alignment"] == NATIVE and native.dataset["name"] == "mosi-aligned"


def test_alignment_is_optional_in_result_files_and_checked_when_present():
    label, _ = synthetic_labels(20)
    old = result_dict("m", 1, label, label)
    assert "alignment" not in old["dataset"]
    assert RunResult.from_json_dict(old).dataset.get("alignment") is None          # files of earlier versions read
    old["dataset"]["alignment"] = "by-guessing"
    with pytest.raises(ResultError, match="alignment"):
        RunResult.from_json_dict(old)


def test_board_marks_rows_of_aligned_input_and_keeps_them_apart():
    label, _ = synthetic_labels(30)
    plain = [result_dict("m", seed, label, label + 0.1 * seed) for seed in (1, 2)]
    aligned = [result_dict("m", seed, label, label - 0.05 * seed) for seed in (1, 2)]
    for result in aligned:
        result["dataset"]["alignment"] = SEGMENT_MEAN
    (board,) = make_boards([RunResult.from_json_dict(item) for item in plain + aligned])
    by_alignment = {group.key.alignment: group for group in board.groups}
    assert set(by_alignment) == {None, SEGMENT_MEAN} and len(by_alignment[SEGMENT_MEAN].runs) == 2
    assert by_alignment[None].slug == "m" and by_alignment[SEGMENT_MEAN].slug == "m-segment-mean"
    assert "aligned input (segment-mean)" in by_alignment[SEGMENT_MEAN].key.settings_text()
    table = next(table for table in build_tables(board, {}) if table.track == "regression")
    views = {row.group.key.alignment: row_view(row, table.columns) for row in table.rows}
    assert views[SEGMENT_MEAN]["aligned"] == "aligned input (segment-mean)" and views[None]["aligned"] is None


def test_data_synth_writes_the_aligned_variant(tmp_path, capsys):
    from mer_bench.cli import run_cli

    out = tmp_path / "aligned_50.pkl"
    status = run_cli(["data", "synth", str(out), "--like", "mosi", "--n", *map(str, SIZES), "--seed", "3",
                      "--aligned"], debug=False)
    assert status == 0 and "word-aligned" in capsys.readouterr().out
    written = pickle.loads(out.read_bytes())
    expected = generate_raw("mosi", SIZES, 3, aligned=True)
    np.testing.assert_array_equal(written["test"]["vision"], expected["test"]["vision"])
    assert "vision_lengths" not in written["test"]
