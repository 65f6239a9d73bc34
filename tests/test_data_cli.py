"""`mer-bench data check | prepare | synth` through the real entry point, and bad input end to end."""

from __future__ import annotations

import json
import os
import signal
import warnings

import pytest

from mer_bench.cli import main
from mer_bench.data.synthetic import generate_raw
from tests.entry_points import run_cli
from tests.test_data_support import QUIRKY_INF_FRAMES, quirky_raw, tiny_raw, write_pickle


@pytest.fixture
def cli(capsys, monkeypatch, tmp_path):
    """Call `mer-bench ARGS` in this process: returns (exit status, stdout, stderr). The cache goes to a temp folder."""
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))
    handler = signal.getsignal(signal.SIGTERM)

    def invoke(*args):
        try:
            with warnings.catch_warnings(), pytest.raises(SystemExit) as done:
                main([str(arg) for arg in args])
        finally:
            signal.signal(signal.SIGTERM, handler)
        out, err = capsys.readouterr()
        return done.value.code, out, err

    return invoke


def assert_one_line_error(status, out, err, *phrases):
    assert status == 2 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for phrase in phrases:
        assert phrase in lines[0]


def test_synth_writes_a_file_that_check_accepts_and_run_uses(cli, tmp_path):
    out = tmp_path / "synth.pkl"
    status, stdout, _ = cli("data", "synth", out, "--like", "sims-v2", "--n", 24, 12, 16, "--seed", 3)
    assert status == 0 and "24/12/16 samples" in stdout
    status, stdout, _ = cli("data", "check", out, "--json")
    report = json.loads(stdout)
    assert status == 0 and report["usable"] and report["dataset"] == "sims-v2"
    assert [report["splits"][name]["n"] for name in ("train", "valid", "test")] == [24, 12, 16]
    assert report["splits"]["train"]["columns"]["audio"]["shape"] == [24, 925, 25]
    assert sum(report["splits"]["test"]["labels"].values()) == 16
    assert set(report["splits"]["test"]["subsets"]) == {"consistent", "inconsistent", "text-conflict"}
    results = tmp_path / "results"
    status, stdout, err = cli("run", "mean", "--dataset", "sims-v2", "--data-file", out, "--seeds", 1,
                              "--no-probes", "--out", results)
    assert status == 0, err
    result = json.loads(next(results.rglob("*.json")).read_text())
    assert result["dataset"]["subsets"] == report["splits"]["test"]["subsets"]
    assert set(result["metrics"]["test"]) == {"all", "consistent", "inconsistent", "text-conflict"}


def test_synth_is_deterministic_and_does_not_overwrite(cli, tmp_path):
    first, second = tmp_path / "a.pkl", tmp_path / "b.pkl"
    for path in (first, second):
        assert cli("data", "synth", path, "--n", 4, 3, 3, "--seed", 5)[0] == 0
    assert first.read_bytes() == second.read_bytes()
    assert_one_line_error(*cli("data", "synth", first, "--n", 4, 3, 3), "exists; pass --force")


SYNTH_REFUSALS = {
    "negative seed": (("--seed", -1), "--seed -1 is out of range: seeds are integers from 0 to 4294967295"),
    "huge seed": (("--seed", 10**20), "--seed 100000000000000000000 is out of range"),
    "huge split": (("--like", "mosei", "--n", 100_000_000, 1, 1), "--n 100000000 1 1: each split size must be from 1"),
    "empty split": (("--n", 4, 0, 3), "--n 4 0 3: each split size must be from 1"),
    "negative split": (("--n", -4, 3, 3), "--n -4 3 3: each split size"),
    "file too large": (("--like", "mosei", "--n", 1_000_000, 1_000_000, 1_000_000), "the limit is 64 GiB"),
    "more than memory": (("--like", "mosei", "--n", 100_000, 1, 1), "needs about 69.3 GiB of memory to generate"),
}


@pytest.mark.parametrize("options, phrase", SYNTH_REFUSALS.values(), ids=SYNTH_REFUSALS.keys())
def test_synth_refuses_out_of_range_requests_before_generating(cli, tmp_path, monkeypatch, options, phrase):
    monkeypatch.setattr("mer_bench.cli.data.available_memory", lambda: 64 * 2**30)
    monkeypatch.setattr("mer_bench.cli.data.generate_raw", lambda *args: pytest.fail("generated anyway"))
    out = tmp_path / "out.pkl"
    assert_one_line_error(*cli("data", "synth", out, *options), "data synth: ", phrase)
    assert [path.name for path in tmp_path.iterdir() if path.name != "cache"] == []


def test_synth_refuses_a_file_larger_than_the_free_disk(cli, tmp_path, monkeypatch):
    import shutil
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr("mer_bench.cli.data.shutil.disk_usage", lambda path: usage._replace(free=2**20))
    assert_one_line_error(*cli("data", "synth", tmp_path / "out.pkl"), str(tmp_path), "GiB is free")
    assert [path.name for path in tmp_path.iterdir() if path.name != "cache"] == []


def test_synth_files_are_readable_as_the_umask_says(cli, tmp_path):
    previous = os.umask(0o022)
    try:
        assert cli("data", "synth", tmp_path / "out.pkl", "--n", 4, 3, 3)[0] == 0
    finally:
        os.umask(previous)
    assert (tmp_path / "out.pkl").stat().st_mode & 0o777 == 0o644


def test_the_largest_default_synth_request_is_within_the_limits():
    from mer_bench.data.synthetic import SHAPES, request_problem
    for like, shape in SHAPES.items():
        assert request_problem(like, shape.sizes, 2**32 - 1, None) is None


def test_check_accepts_the_hand_made_quirky_file_in_the_mmsa_layout(cli, tmp_path):
    path = write_pickle(quirky_raw(), tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl")
    status, stdout, err = cli("data", "check", path, "--json")
    report = json.loads(stdout)
    assert status == 0 and report["usable"] and report["dataset"] == "sims" and report["dataset_from"] == "its path"
    assert report["checksum"] == "differs from published"
    assert report["notes"] == [f"{split}: set {QUIRKY_INF_FRAMES} -inf audio values to 0"
                               for split in ("train", "valid", "test")]
    assert report["ignored_top_level_keys"] == ["config"]
    assert report["splits"]["train"]["columns"]["audio"]["dtype"] == "float64"
    assert report["splits"]["train"]["text_forms"] == ["features", "token ids"]
    assert report["cache"]["state"] == "not prepared"
    status, stdout, _ = cli("data", "check", path)
    assert status == 0 and "differs from published" in stdout and "usable: yes" in stdout


def test_prepare_then_check_reports_a_fresh_cache(cli, tmp_path):
    path = write_pickle(tiny_raw(), tmp_path / "tiny.pkl")
    status, stdout, _ = cli("data", "prepare", path, "--dataset", "sims")
    assert status == 0 and "prepared in" in stdout
    assert "already prepared" in cli("data", "prepare", path, "--dataset", "sims")[1]
    report = json.loads(cli("data", "check", path, "--dataset", "sims", "--json")[1])
    assert report["cache"]["state"] == "fresh" and report["cache"]["folder"].startswith(str(tmp_path / "cache"))


def test_a_path_whose_dataset_cannot_be_told_asks_for_dataset(cli, tmp_path):
    path = write_pickle(tiny_raw(), tmp_path / "tiny.pkl")
    assert_one_line_error(*cli("data", "check", path), str(path), "audio/vision feature sizes 3/2", "--dataset")


def _bad_files(tmp_path):
    truncated = write_pickle(tiny_raw(), tmp_path / "truncated.pkl")
    truncated.write_bytes(truncated.read_bytes()[:2000])
    not_pickle = tmp_path / "labels.pkl"
    not_pickle.write_text("video_id,clip_id,text,label\n")
    raw = tiny_raw()
    raw["valid"]["vision"] = raw["valid"]["vision"][:, :, :, None]
    wrong_shape = write_pickle(raw, tmp_path / "wrong_shape.pkl")
    return {"truncated": (truncated, "truncated or corrupt"), "not a pickle": (not_pickle, "not a readable MMSA"),
            "wrong shape": (wrong_shape, "split 'valid', key 'vision': expected rank 3")}


@pytest.mark.parametrize("case", ["truncated", "not a pickle", "wrong shape"])
def test_bad_files_give_one_line_and_exit_2_and_write_nothing(cli, tmp_path, case):
    path, phrase = _bad_files(tmp_path)[case]
    results = tmp_path / "results"
    for command in (("data", "check", path, "--dataset", "sims"), ("data", "prepare", path, "--dataset", "sims"),
                    ("run", "mean", "--dataset", "sims", "--data-file", path, "--seeds", 1, "--out", results)):
        assert_one_line_error(*cli(*command), str(path), phrase)
    assert not results.exists() and not (tmp_path / "cache").exists()


class _RunsCommand:
    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_pickle_that_imports_os_runs_nothing(cli, tmp_path, monkeypatch):
    marker = tmp_path / "marker"
    raw = {"train": {"audio": _RunsCommand(f"touch {marker}")}, "valid": {}, "test": {}}
    path = write_pickle(raw, tmp_path / "SIMS" / "Processed" / "unaligned_39.pkl")
    results = tmp_path / "results"
    for command in (("data", "prepare", path),
                    ("run", "mean", "--dataset", "sims", "--data-file", path, "--seeds", 1, "--out", results)):
        assert_one_line_error(*cli(*command), str(path), "refusing to load: the pickle asks for")
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))    # inherited by the fresh process below
    done = run_cli(["data", "check", str(path)], cwd=tmp_path)
    assert done.returncode == 2 and done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "refusing to load" in lines[0] and str(path) in lines[0]
    assert not marker.exists() and not results.exists() and not (tmp_path / "cache").exists()


def test_check_of_the_generated_dataset_needs_no_file(cli):
    status, stdout, _ = cli("data", "check", "synthetic", "--json")
    report = json.loads(stdout)
    assert status == 0 and report["checksum"] == "generated" and report["splits"]["train"]["n"] == 600


def test_mistyped_name_or_missing_file_is_one_line(cli):
    assert_one_line_error(*cli("data", "check", "sims-v3"), "'sims-v3' is neither a registered dataset",
                          "Did you mean 'sims-v2'")
    assert_one_line_error(*cli("data", "prepare", "synthetic"), "generated in memory")


def test_mosi_shaped_synth_file_is_recognised_by_its_sizes(cli, tmp_path):
    path = tmp_path / "mosi_like.pkl"
    write_pickle(generate_raw("mosi", (6, 4, 4), 1), path)
    report = json.loads(cli("data", "check", path, "--json")[1])
    assert report["dataset"] == "mosi" and report["splits"]["train"]["subsets"] is None
    assert sum(report["splits"]["valid"]["labels"].values()) == 4
