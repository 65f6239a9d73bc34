"""`mer-bench reproduce`: published runs give back their numbers bit for bit, and any drift is loud (exit 1).

The published cheap runs are found by glob, not by run id: the ids change whenever the board is republished.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from mer_bench.cli import main
from mer_bench.reproduce import FLOAT_NOISE, added_entries, compare_records, notes

PUBLISHED = Path(__file__).resolve().parents[1] / "leaderboards" / "results" / "synthetic"

# Cheap models whose numbers nobody is changing: a closed-form baseline and two one-modality networks (a few seconds
# each when published).
CHEAP_PUBLISHED_MODELS = ("mean", "unimodal-a", "unimodal-v")


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def published_run(model: str) -> Path:
    """The published seed-1111 result of `model` on the synthetic board (the first one, if tuned rows add more)."""
    files = sorted((PUBLISHED / model).glob(f"{model}-synthetic-s1111-*.json"))
    assert files, f"no published seed-1111 run of {model} under {PUBLISHED / model}"
    return files[0]


@pytest.mark.parametrize("model", CHEAP_PUBLISHED_MODELS)
def test_published_cheap_runs_reproduce_exactly(model, capsys):
    path = published_run(model)
    before = path.read_bytes()
    code, out, err = invoke(["reproduce", str(path)], capsys)
    assert code == 0, out + err
    assert out.startswith("reproduced exactly:"), out
    assert path.read_bytes() == before


@pytest.fixture(scope="module")
def fresh_run(tmp_path_factory) -> Path:
    """A mean run without probes (under a second), made once and copied by each test that tampers with it."""
    out = tmp_path_factory.mktemp("fresh")
    with pytest.raises(SystemExit) as exit_info:
        main(["run", "mean", "--dataset", "synthetic", "--seeds", "1111", "--threads", "1", "--no-probes",
              "--out", str(out)])
    assert exit_info.value.code == 0
    (path,) = (out / "synthetic" / "mean").glob("*.json")
    return path


def copy_with(source: Path, folder: Path, change) -> Path:
    """A copy of the result file `source` in `folder`, with `change(data)` applied to its JSON."""
    data = json.loads(source.read_text())
    change(data)
    target = folder / "original" / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(data, indent=1))
    return target


def test_untouched_fresh_run_reproduces_exactly(fresh_run, capsys):
    code, out, _ = invoke(["reproduce", str(fresh_run)], capsys)
    assert code == 0 and out.startswith("reproduced exactly:")


def test_one_changed_prediction_is_different_exit_1(fresh_run, tmp_path, capsys):
    def change(data):
        data["predictions"]["probs"][17][1] += 0.25
    tampered = copy_with(fresh_run, tmp_path, change)
    before = tampered.read_bytes()
    code, out, _ = invoke(["reproduce", str(tampered)], capsys)
    assert code == 1
    assert out.startswith("DIFFERENT:") and "1 of" in out
    assert "predictions/probs/17/1" in out and "0.25" in out   # where, and by how much
    assert "recorded at commit" in out
    assert tampered.read_bytes() == before


def test_changed_metric_is_different_and_listed_first(fresh_run, tmp_path, capsys):
    def change(data):
        data["metrics"]["test"]["all"]["classification"]["acc3"] += 0.015
    code, out, _ = invoke(["reproduce", str(copy_with(fresh_run, tmp_path, change)), "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["verdict"] == "different" and report["exit_status"] == 1
    assert report["largest_differences"][0]["where"] == "metrics/test/all/classification/acc3"
    assert report["largest_differences"][0]["abs_diff"] == pytest.approx(0.015)


def test_last_bit_change_is_float_noise_exit_0(fresh_run, tmp_path, capsys):
    def change(data):
        data["predictions"]["score"][3] += FLOAT_NOISE / 10
    code, out, _ = invoke(["reproduce", str(copy_with(fresh_run, tmp_path, change))], capsys)
    assert code == 0
    assert out.startswith("reproduced within float noise (max |diff| = ")


def test_recorded_value_missing_from_the_rerun_is_different(fresh_run, tmp_path, capsys):
    def change(data):
        data["metrics"]["test"]["all"]["classification"]["made_up_metric"] = 0.5
    code, out, _ = invoke(["reproduce", str(copy_with(fresh_run, tmp_path, change))], capsys)
    assert code == 1 and "made_up_metric: recorded 0.5, now (absent)" in out


def test_other_data_is_refused_with_one_line(fresh_run, tmp_path, capsys):
    other = "0" * 64

    def change(data):
        data["dataset"]["sha256"] = other
        if "data_sha256" in data["spec"]:      # files that name their data in the spec must stay self-consistent
            data["spec"]["data_sha256"] = other
    tampered = copy_with(fresh_run, tmp_path, change)
    code, out, err = invoke(["reproduce", str(tampered)], capsys)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and str(tampered) in err and "dataset.sha256" in err and "Traceback" not in err


def test_rerun_goes_to_out_and_never_over_the_original(fresh_run, tmp_path, capsys):
    original = copy_with(fresh_run, tmp_path, lambda data: None)
    before = original.read_bytes()
    for folder in (original.parent, tmp_path):     # the folder holding the file, and one above it
        code, _, err = invoke(["reproduce", str(original), "--out", str(folder)], capsys)
        assert code == 2 and err.count("\n") == 1 and "--out" in err
    code, out, _ = invoke(["reproduce", str(original), "--out", str(tmp_path / "rerun")], capsys)
    (rerun,) = (tmp_path / "rerun").rglob("*.json")
    assert code == 0 and f"rerun written to {rerun}" in out
    assert original.read_bytes() == before


def test_recorded_thread_count_is_used_and_restored(fresh_run, tmp_path, capsys):
    threads_before = torch.get_num_threads()
    recorded = 3 if threads_before != 3 else 2

    def change(data):
        data["environment"]["torch_threads"] = recorded
    code, _, _ = invoke(["reproduce", str(copy_with(fresh_run, tmp_path, change)), "--out", str(tmp_path / "r")],
                        capsys)
    (rerun,) = (tmp_path / "r").rglob("*.json")
    assert code == 0
    assert json.loads(rerun.read_text())["environment"]["torch_threads"] == recorded
    assert torch.get_num_threads() == threads_before


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")
def test_gpu_run_on_a_cpu_machine_is_refused(fresh_run, tmp_path, capsys):
    def change(data):
        data["environment"]["device"] = "cuda"
    code, out, err = invoke(["reproduce", str(copy_with(fresh_run, tmp_path, change))], capsys)
    assert code == 2 and out == "" and err.count("\n") == 1 and "no CUDA device" in err


def test_unreadable_result_file_is_one_line(tmp_path, capsys):
    broken = tmp_path / "broken.json"
    broken.write_text("{")
    code, out, err = invoke(["reproduce", str(broken)], capsys)
    assert code == 2 and err.count("\n") == 1 and str(broken) in err


def test_entries_newer_than_the_recorded_file_are_not_differences():
    recorded = {"metrics": {"test": {"acc": 0.5}}, "predictions": {"score": [0.1, 0.2]}, "parameters": 3}
    current = {"metrics": {"test": {"acc": 0.5, "new_metric": 1.0}}, "predictions": {"score": [0.1, 0.2]},
               "parameters": 3, "probes": None}
    comparison = compare_records(recorded, current)
    assert comparison.verdict == "exact" and comparison.compared == 4
    assert added_entries(recorded, current) == ["metrics/test/new_metric"]


def test_lengths_kinds_and_integers_are_compared():
    recorded = {"predictions": {"ids": ["a", "b"], "score": [1, 2.0]}, "parameters": 3}
    assert compare_records(recorded, {"predictions": {"ids": ["a", "b"], "score": [1.0, 2]},
                                      "parameters": 3}).verdict == "exact"
    shorter = compare_records(recorded, {"predictions": {"ids": ["a"], "score": [1, 2.0]}, "parameters": 3})
    renamed = compare_records(recorded, {"predictions": {"ids": ["a", "c"], "score": [1, 2.0]}, "parameters": 3})
    assert shorter.verdict == renamed.verdict == "different"
    assert [d.where for d in shorter.differences] == ["predictions/ids (length)"]
    assert [d.where for d in renamed.differences] == ["predictions/ids/1"]


def test_notes_name_changed_settings_and_uncommitted_code():
    recorded = {"model": {"config": {"dropout": 0.1, "layers": 1}}, "environment": {"git_commit": "abc+dirty"}}
    current = {"model": {"config": {"dropout": 0.0, "layers": 1}}, "environment": {"git_commit": "def"}}
    found = notes(recorded, current)
    assert found[0] == "model setting 'dropout': recorded 0.1, now 0"
    assert len(found) == 2 and "recorded run" in found[1] and "abc+dirty" in found[1]
