"""`mer-bench run` under careless or hostile use: bad numbers, unwritable outputs and concurrent runs of the same
spec give one line and exit 2 (or wait their turn), never a traceback or a run trained twice."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading

import pytest

from mer_bench import fileio
from mer_bench.cli import main
from mer_bench.plugins import get_catalog
from mer_bench.runlock import RunLock, lock_path
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many, run_one
from tests import test_sweep_support as support


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def quick_run(out, *extra):
    return ["run", "mean", "--dataset", "synthetic", "--no-probes", "--epochs", "1", "--threads", "1",
            "--out", str(out), *extra]


def assert_one_line(code, err, *fragments):
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error: "), err
    for fragment in fragments:
        assert fragment in lines[0]


@pytest.mark.parametrize("seeds", ["99999999999999999999", "-1", "4294967296", "1,2,99999999999"])
def test_seeds_outside_numpy_and_torch_range_are_one_line(tmp_path, capsys, seeds):
    code, _, err = invoke(quick_run(tmp_path, "--seeds", seeds), capsys)
    assert_one_line(code, err, "--seeds", "from 0 to 4294967295")


def test_a_seed_given_twice_is_one_run(tmp_path, capsys):
    code, out, _ = invoke(quick_run(tmp_path, "--seeds", "1,1,1"), capsys)
    assert code == 0 and "1 run(s)" in out and "over 1 seed(s)" in out
    assert len(list(tmp_path.rglob("*.json"))) == 1


@pytest.mark.parametrize("option", [["--threads", "100000"], ["--threads", "0"], ["--epochs", "0"]])
def test_out_of_range_options_are_one_line(tmp_path, capsys, option):
    code, _, err = invoke(quick_run(tmp_path, "--seeds", "1", *option), capsys)
    assert_one_line(code, err, option[0])


def test_out_pointing_at_a_file_is_one_line_before_any_training(tmp_path, capsys):
    target = tmp_path / "a-file"
    target.write_text("not a folder")
    code, _, err = invoke(quick_run(target, "--seeds", "1"), capsys)
    assert_one_line(code, err, str(target), "is a file, not a folder")
    code, _, err = invoke(quick_run(target / "below", "--seeds", "1"), capsys)
    assert_one_line(code, err, str(target / "below"))


@pytest.mark.parametrize("code_number", [errno.ENOSPC, errno.EFBIG, errno.EROFS])
def test_a_result_that_cannot_be_written_is_one_line_and_leaves_nothing(tmp_path, capsys, monkeypatch, code_number):
    def refuse(source, target):
        raise OSError(code_number, os.strerror(code_number))
    monkeypatch.setattr(fileio.os, "replace", refuse)   # the last step of every atomic write
    code, _, err = invoke(quick_run(tmp_path, "--seeds", "1"), capsys)
    assert_one_line(code, err, "cannot write", os.strerror(code_number), ".json")
    assert [path for path in tmp_path.rglob("*") if path.is_file()] == []   # no temporary, no lock, no result


def test_a_file_size_limit_is_one_line(tmp_path):
    command = (f"ulimit -f 16; exec {sys.executable} -m mer_bench run mean --dataset synthetic --seeds 1 "
               f"--no-probes --epochs 1 --threads 1 --out {tmp_path / 'o'}")
    answer = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert_one_line(answer.returncode, answer.stderr, "cannot write: File too large")
    assert not [path for path in (tmp_path / "o").rglob("*") if path.is_file()]


def test_a_run_held_by_another_process_is_waited_for_and_its_result_reused(tmp_path):
    catalog = get_catalog()
    spec = make_spec(catalog, "mean", "synthetic", 1111, data_sha256=data_checksum(catalog, "synthetic"))
    other = RunLock(lock_path(spec, tmp_path))
    assert other.acquire()
    waited = threading.Event()
    messages, outcomes = [], []
    options = RunOptions(out_dir=tmp_path, probes=False, lock_poll_s=0.05,
                         on_wait=lambda s, holder: (messages.append(holder), waited.set()))
    second = threading.Thread(target=lambda: outcomes.extend(run_many([spec], options, catalog)))
    second.start()
    try:
        assert waited.wait(60), "the second run did not wait for the lock"
        from mer_bench.data.loading import generated_data
        run_one(spec, generated_data(catalog.dataset("synthetic").value), RunOptions(out_dir=tmp_path, probes=False),
                catalog)
    finally:
        other.release()
    second.join(60)
    assert outcomes and outcomes[0].skipped, "the run was trained a second time"
    assert f"process {os.getpid()}" in messages[0]


def test_two_identical_runs_at_once_train_once(tmp_path):
    env = support.install_probe_plugin(tmp_path / "site")
    args = support.mer_bench_command("run", "sweep-probe", "--dataset", "synthetic", "--seeds", "1111", "--set",
                                     "delay=8", "--no-probes", "--threads", "1", "--out", str(tmp_path / "o"))
    first = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    answers = [process.communicate(timeout=300) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, answers
    assert len(list((tmp_path / "o").rglob("*.json"))) == 1
    outs = sorted(out for out, _ in answers)
    assert "0 reused" in outs[0] and "1 reused" in outs[1]   # one trained, the other reused its result
    assert sum("another process is training this run" in err for _, err in answers) == 1


def test_a_folder_in_place_of_the_run_lock_is_one_line(tmp_path, capsys):
    catalog = get_catalog()
    spec = make_spec(catalog, "mean", "synthetic", 1, {}, None, 1, data_checksum(catalog, "synthetic"))
    lock_path(spec, tmp_path).mkdir(parents=True)
    code, _, err = invoke(quick_run(tmp_path, "--seeds", "1"), capsys)
    assert_one_line(code, err, str(lock_path(spec, tmp_path)), "a folder where the run's lock file should be")
