"""Run ids name the data (its checksum), recorded commands reproduce runs, and a file of another dataset is refused."""

from __future__ import annotations

import json
import pickle
import shlex

import pytest

from mer_bench.cli import main
from mer_bench.data import loading
from mer_bench.data.synthetic import generate_raw
from mer_bench.plugins import get_catalog
from mer_bench.results import ResultError, RunResult, read_result, write_json_atomic
from mer_bench.runner import RunOptions, check_data_identity, data_checksum, make_spec
from mer_bench.runspec import RunSpec
from mer_bench.errors import UserError

SIZES = (24, 12, 12)


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.fixture(scope="module")
def sims_v2_files(tmp_path_factory):
    """Two SIMS-v2-shaped files with different content (generator seeds 0 and 1)."""
    folder = tmp_path_factory.mktemp("data")
    paths = []
    for seed in (0, 1):
        path = folder / f"sims-v2-{seed}.pkl"
        path.write_bytes(pickle.dumps(generate_raw("sims-v2", SIZES, seed), protocol=4))
        paths.append(path)
    return paths


@pytest.fixture(autouse=True)
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("MER_BENCH_CACHE", str(tmp_path / "cache"))


def run_args(data_file, out, *extra):
    return ["run", "mean", "--dataset", "sims-v2", "--data-file", str(data_file), "--seeds", "1111", "--no-probes",
            "--threads", "1", "--out", str(out), *extra]


def only_result(folder):
    files = sorted(folder.rglob("*.json"))
    assert len(files) == 1, files
    return read_result(files[0])


def test_another_data_file_is_another_run_never_a_reused_result(sims_v2_files, tmp_path, capsys):
    first, second = sims_v2_files
    code, out, _ = invoke(run_args(first, tmp_path / "o"), capsys)
    assert code == 0 and "0 reused" in out
    code, out, err = invoke(run_args(second, tmp_path / "o"), capsys)
    assert code == 0 and "0 reused" in out and "skipped" not in err
    results = [read_result(path) for path in sorted((tmp_path / "o").rglob("*.json"))]
    assert len(results) == 2
    assert {r.spec.data_sha256 for r in results} == {r.dataset["sha256"] for r in results}
    assert len({r.run_id for r in results}) == 2
    code, out, _ = invoke(run_args(first, tmp_path / "o"), capsys)   # the same file again: reused
    assert code == 0 and "1 reused" in out


def test_the_recorded_command_names_the_data_file_and_reproduces_the_run(sims_v2_files, tmp_path, capsys):
    assert invoke(run_args(sims_v2_files[0], tmp_path / "o", "--epochs", "1"), capsys)[0] == 0
    result = only_result(tmp_path / "o")
    words = shlex.split(result.to_json_dict()["command"])
    assert words[words.index("--data-file") + 1] == str(sims_v2_files[0].resolve())
    assert "--epochs" in words
    code, out, _ = invoke([*words[1:], "--out", str(tmp_path / "o"), "--no-probes"], capsys)
    assert code == 0 and "1 reused" in out   # the same run id: the command names the same run


def test_the_recorded_command_names_the_data_dir_when_the_file_was_found_there(sims_v2_files, tmp_path, capsys):
    spec = get_catalog().dataset("sims-v2").value
    target = tmp_path / "data" / spec.relative_paths[0]
    target.parent.mkdir(parents=True)
    target.write_bytes(sims_v2_files[0].read_bytes())
    args = ["run", "mean", "--dataset", "sims-v2", "--data-dir", str(tmp_path / "data"), "--seeds", "1111",
            "--no-probes", "--threads", "1", "--out", str(tmp_path / "o")]
    assert invoke(args, capsys)[0] == 0
    command = json.loads(next((tmp_path / "o").rglob("*.json")).read_text())["command"]
    assert f"--data-dir {tmp_path / 'data'}" in command


def test_generated_data_has_a_stable_checksum_in_its_run_id():
    catalog = get_catalog()
    checksum = data_checksum(catalog, "synthetic")
    assert checksum == data_checksum(get_catalog(), "synthetic") == catalog.dataset("synthetic").value.generate().sha256
    with_data = make_spec(catalog, "mean", "synthetic", 1111, data_sha256=checksum)
    without = make_spec(catalog, "mean", "synthetic", 1111)
    other = make_spec(catalog, "mean", "synthetic", 1111, data_sha256="0" * 64)
    assert len({with_data.run_id, without.run_id, other.run_id}) == 3


def test_a_prepared_file_is_identified_without_hashing_it(sims_v2_files, monkeypatch):
    spec = get_catalog().dataset("sims-v2").value
    prepared = loading.prepare_dataset(spec, sims_v2_files[0])
    monkeypatch.setattr(loading, "file_sha256", lambda path: pytest.fail("hashed a file the cache knows"))
    monkeypatch.setattr(loading, "_hashed", {})
    assert loading.dataset_checksum(spec, data_file=sims_v2_files[0]) == prepared.entry.sha256


def test_old_result_files_without_the_checksum_keep_their_run_id_and_stay_readable(tmp_path, capsys):
    invoke(["run", "mean", "--dataset", "synthetic", "--seeds", "1111", "--no-probes", "--epochs", "1",
            "--threads", "1", "--out", str(tmp_path / "o")], capsys)
    record = json.loads(next((tmp_path / "o").rglob("*.json")).read_text())
    del record["spec"]["data_sha256"]   # as written before the checksum named runs
    old_spec = RunSpec.from_dict(record["spec"])
    record["run_id"] = old_spec.run_id
    write_json_atomic(tmp_path / "old.json", record)
    old = read_result(tmp_path / "old.json")
    assert old.spec.data_sha256 is None and old.run_id == old_spec.run_id
    assert "data_sha256" not in old.spec.to_dict()   # so the hash is computed exactly as before


def test_a_run_id_naming_other_data_than_the_file_scored_is_rejected(tmp_path, capsys):
    invoke(["run", "mean", "--dataset", "synthetic", "--seeds", "1111", "--no-probes", "--epochs", "1",
            "--threads", "1", "--out", str(tmp_path / "o")], capsys)
    record = json.loads(next((tmp_path / "o").rglob("*.json")).read_text())
    record["spec"]["data_sha256"] = "f" * 64
    with pytest.raises(ResultError, match="data_sha256"):
        RunResult.from_json_dict(record)
    record["spec"]["data_sha256"] = "/../../etc"
    with pytest.raises(ResultError, match="data_sha256"):
        RunResult.from_json_dict(record)


def test_data_that_changed_after_its_checksum_was_taken_is_not_trained_on(tiny_data):
    spec = make_spec(get_catalog(), "mean", "synthetic", 1111, data_sha256="0" * 64)
    with pytest.raises(UserError, match="did the file change"):
        check_data_identity(spec, tiny_data)


def test_a_file_of_another_registered_dataset_is_refused_unless_forced(sims_v2_files, tmp_path, capsys):
    args = ["run", "mean", "--dataset", "mosi", "--data-file", str(sims_v2_files[0]), "--seeds", "1111",
            "--no-probes", "--threads", "1", "--out", str(tmp_path / "o")]
    code, _, err = invoke(args, capsys)
    assert code == 2
    assert err.strip().splitlines()[-1] == (
        f"Error: {sims_v2_files[0]}: audio/vision feature sizes 25/177 are those of 'sims-v2', not of 'mosi' (5/20); "
        "pass --dataset sims-v2, or --force-dataset to score it as 'mosi' anyway.")
    assert not list((tmp_path / "o").rglob("*.json"))
    code, _, _ = invoke([*args, "--force-dataset"], capsys)
    assert code == 0
    record = json.loads(next((tmp_path / "o").rglob("*.json")).read_text())
    assert record["dataset"]["style"] == "mosi" and "--force-dataset" in record["command"]


def test_run_options_default_to_refusing_other_datasets():
    assert RunOptions().force_dataset is False
