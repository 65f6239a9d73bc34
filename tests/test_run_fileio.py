"""Files and folders mer-bench creates honour the umask and fail with one clear error (mer_bench.fileio)."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from mer_bench import fileio
from mer_bench.errors import OutputError, UserError
from mer_bench.results import write_json_atomic


@pytest.fixture(params=[0o022, 0o027, 0o077])
def umask(request):
    old = os.umask(request.param)
    yield request.param
    os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_the_process_umask(umask):
    assert fileio.current_umask() == umask


def test_atomic_json_file_gets_the_umask_mode_not_0600(tmp_path, umask):
    target = tmp_path / "deep" / "result.json"
    write_json_atomic(target, {"a": 1})
    assert mode(target) == 0o666 & ~umask
    assert mode(target.parent) == 0o777 & ~umask


def test_atomic_bytes_and_temp_dir_honour_the_umask(tmp_path, umask):
    fileio.write_bytes_atomic(tmp_path / "data.pkl", b"x")
    folder = fileio.make_temp_dir(tmp_path / "cache", ".tmp-")
    assert mode(tmp_path / "data.pkl") == 0o666 & ~umask
    assert mode(folder) == 0o777 & ~umask and folder.parent == tmp_path / "cache"


def test_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "r.json"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with fileio.atomic_write(target) as handle:
            handle.write("half")
            raise RuntimeError("killed")
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.json"]


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EFBIG, errno.EROFS, errno.EDQUOT])
def test_os_errors_on_write_become_one_line_output_errors(tmp_path, monkeypatch, code):
    def failing_fsync(descriptor):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(fileio.os, "fsync", failing_fsync)
    with pytest.raises(OutputError) as caught:
        write_json_atomic(tmp_path / "r.json", {"a": 1})
    assert isinstance(caught.value, UserError) and isinstance(caught.value, OSError)
    assert str(caught.value) == f"{tmp_path / 'r.json'}: cannot write: {os.strerror(code)}"
    assert list(tmp_path.iterdir()) == []   # no temporary left behind


def test_a_file_where_a_folder_should_be_is_one_line(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputError, match="file"):
        write_json_atomic(blocker / "sub" / "r.json", {})
    with pytest.raises(OutputError, match="is a file, not a folder"):
        fileio.check_output_dir(blocker)


def test_file_size_limit_is_an_output_error(tmp_path):
    """`ulimit -f`: Python ignores SIGXFSZ, so the write fails with EFBIG, which must be one line too."""
    script = ("import sys; from mer_bench.results import write_json_atomic; from mer_bench.errors import OutputError\n"
              "try:\n    write_json_atomic(sys.argv[1], ['x' * 100000])\n"
              "except OutputError as e:\n    print('ERR', e); sys.exit(2)\n")
    answer = subprocess.run(["bash", "-c", f"ulimit -f 1; exec {sys.executable} -c \"$0\" \"$1\"", script,
                             str(tmp_path / "big.json")], capture_output=True, text=True)
    assert answer.returncode == 2, answer.stderr
    assert answer.stdout.startswith("ERR ") and "File too large" in answer.stdout
    assert not (tmp_path / "big.json").exists()


def test_a_run_writes_results_and_folders_others_may_read_as_the_umask_says(tmp_path, umask, capsys):
    from mer_bench.cli import main
    with pytest.raises(SystemExit) as exited:
        main(["run", "mean", "--dataset", "synthetic", "--seeds", "1", "--no-probes", "--epochs", "1",
              "--threads", "1", "--out", str(tmp_path / "o")])
    assert exited.value.code == 0
    result = next((tmp_path / "o").rglob("*.json"))
    assert mode(result) == 0o666 & ~umask
    assert mode(result.parent) == mode(tmp_path / "o") == 0o777 & ~umask


def test_sweep_state_files_honour_the_umask(tmp_path, umask):
    from mer_bench.plugins import get_catalog
    from mer_bench.runlock import RunLock, lock_path
    from mer_bench.runner import make_spec
    from mer_bench.sweep.store import write_failure
    spec = make_spec(get_catalog(), "mean", "synthetic", 1, data_sha256="0" * 64)
    lock = RunLock(lock_path(spec, tmp_path))
    assert lock.acquire()
    try:
        assert mode(lock.path) == 0o666 & ~umask
    finally:
        lock.release()
    assert mode(write_failure(spec, tmp_path, ValueError("x"), started=0.0)) == 0o666 & ~umask
