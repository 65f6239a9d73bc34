"""The command line as users meet it: listing, running, skipping, forcing, and one-line errors with exit 2."""

from __future__ import annotations

import json

import pytest

import mer_bench
from mer_bench.cli import main
from mer_bench.results import read_result


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def test_version(capsys):
    code, out, _ = invoke(["--version"], capsys)
    assert code == 0 and mer_bench.__version__ in out


def test_models_list_json_names_the_plugin(capsys):
    code, out, _ = invoke(["models", "list", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert rows["mean"]["plugin"] == "baselines"
    assert rows["mean"]["distribution"] == "mer-bench-baselines"
    assert set(rows["mean"]["outputs"]) == {"score", "probs"}


def test_datasets_list_json(capsys):
    code, out, _ = invoke(["datasets", "list", "--json"], capsys)
    rows = {row["name"]: row for row in json.loads(out)}
    assert code == 0
    assert {"mosi", "mosei", "sims", "sims-v2", "synthetic"} <= set(rows)
    assert rows["sims-v2"]["split_sizes"] == [2722, 647, 1034] and rows["sims-v2"]["style"] == "sims"
    assert rows["mosi"]["unimodal_labels"] is False and rows["synthetic"]["synthetic"] is True


def test_run_writes_one_file_per_seed_then_skips_then_forces(tmp_path, capsys):
    args = ["run", "mean", "--dataset", "synthetic", "--seeds", "1111,1112", "--out", str(tmp_path), "--no-probes"]
    code, out, _ = invoke(args, capsys)
    files = sorted((tmp_path / "synthetic" / "mean").glob("*.json"))
    assert code == 0 and len(files) == 2
    assert "Acc-2 (Has0)" in out and "text-conflict" in out and "0 reused" in out
    results = [read_result(path) for path in files]
    assert sorted(r.spec.seed for r in results) == [1111, 1112]
    assert all(path.name == f"{r.run_id}.json" for path, r in zip(files, results))
    stamps = [path.stat().st_mtime_ns for path in files]

    code, out, _ = invoke(args, capsys)
    assert code == 0 and "2 reused" in out
    assert [path.stat().st_mtime_ns for path in files] == stamps

    code, out, _ = invoke([*args, "--force"], capsys)
    assert code == 0 and "0 reused" in out
    assert [path.stat().st_mtime_ns for path in files] != stamps


@pytest.mark.parametrize("args,message", [
    (["run", "maen", "--dataset", "synthetic"], "Unknown model 'maen'. Did you mean 'mean'"),
    (["run", "mean", "--dataset", "sims_v2"], "Unknown dataset 'sims_v2'. Did you mean 'sims-v2'"),
    (["run", "mean", "--dataset", "synthetic", "--seeds", "a,b"], "--seeds takes comma-separated integers"),
    (["run", "mean", "--dataset", "synthetic", "--set", "nothing"], "--set takes key=value"),
    (["run", "mean", "--dataset", "synthetic", "--set", "lr=1"], "Unknown setting for model 'mean'"),
    (["run", "mean", "--dataset", "synthetic", "--device", "tpu"], "Unknown device 'tpu'"),
    (["run", "mean", "--dataset", "mosi", "--data-dir", "/nonexistent"], "No file found for dataset 'mosi'"),
    (["run", "mean", "--dataset", "synthetic", "--text-mode", "audio"], "Invalid value for '--text-mode'"),
])
def test_user_errors_are_one_line_and_exit_2(args, message, tmp_path, capsys):
    code, out, err = invoke([*args, "--out", str(tmp_path)], capsys)
    assert code == 2
    assert message in err
    assert "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))


def test_missing_dataset_message_says_where_it_looked_and_offers_synthetic(tmp_path, capsys):
    code, _, err = invoke(["run", "mean", "--dataset", "sims-v2", "--data-dir", str(tmp_path)], capsys)
    assert code == 2
    assert str(tmp_path / "SIMSv2" / "Processed" / "sims_unaligned.pkl") in err
    assert "CH-SIMS-v2(s)" in err and "--dataset synthetic" in err
    assert len(err.strip().splitlines()) == 1


def test_debug_shows_the_traceback_and_keeps_the_exit_status(capsys):
    code, out, err = invoke(["--debug", "run", "maen", "--dataset", "synthetic"], capsys)
    assert code == 2 and out == ""
    assert err.startswith("Traceback (most recent call last):") and "UserError" in err
    assert err.splitlines()[-1].startswith("Error: Unknown model 'maen'.")