"""`mer-bench leaderboard check`: submitted result files are refused with one line naming file and field, exit 2."""

from __future__ import annotations

import json
import re
import shutil

import pytest

from mer_bench.cli import main
from mer_bench.leaderboard.checksums import PUBLISHED_SHA256

from tests.test_leaderboard_fixtures import noisy_predictions, result_dict, synthetic_labels, write_board, \
    write_result_dict


def check(capsys, *args: str) -> tuple[int, list[str], str]:
    with pytest.raises(SystemExit) as exited:
        main(["leaderboard", "check", *map(str, args)])
    captured = capsys.readouterr()
    return exited.value.code, [line for line in captured.err.splitlines() if line.strip()], captured.out


def one_run(tmp_path, **options):
    label, unimodal = synthetic_labels(60)
    score, probs = noisy_predictions(label, 0.3, 1)
    data = result_dict("good", 1111, label, score, probs, unimodal=unimodal, **options)
    return data, write_result_dict(data, tmp_path / "results")


def test_a_clean_submission_passes(tmp_path, capsys):
    write_board(tmp_path / "results", {"good": 0.2}, n=60)
    code, errors, out = check(capsys, tmp_path / "results")
    assert (code, errors) == (0, []) and "Checked 3 file(s): no problems." in out


def test_a_tampered_file_is_refused(tmp_path, capsys):
    data, path = one_run(tmp_path)
    data["metrics"]["test"]["all"]["regression"]["has0_acc2"] = 0.99        # better than its predictions give
    path.write_text(json.dumps(data))
    code, errors, _ = check(capsys, path)
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"{path}: not a valid result file at 'metrics/test/all/regression/has0_acc2'")


@pytest.mark.parametrize("field", ["command", "environment/git_commit", "environment/torch", "environment/numpy"])
def test_a_file_without_provenance_is_refused(tmp_path, capsys, field):
    data, path = one_run(tmp_path)
    outer, _, inner = field.partition("/")
    if inner:
        del data[outer][inner]
    else:
        data[outer] = None if outer != "command" else ""
    path.write_text(json.dumps(data))
    code, errors, _ = check(capsys, path)
    assert code == 2 and len(errors) == 1 and errors[0].startswith(f"{path}: '{field}': missing")


def test_a_tuned_row_needs_its_selection(tmp_path, capsys):
    _, path = one_run(tmp_path, overrides={"hidden": 64})
    code, errors, _ = check(capsys, path)
    assert code == 2 and len(errors) == 1
    assert re.match(rf"{re.escape(str(path))}: 'spec/overrides': settings \{{'hidden': 64\}} without a selection "
                    "file", errors[0])


def test_a_tuned_row_with_its_selection_passes(tmp_path, capsys):
    from tests.test_leaderboard_selections import write_results, write_selection
    write_results(tmp_path / "results")
    write_selection(tmp_path / "results")
    code, errors, _ = check(capsys, tmp_path / "results")
    assert (code, errors) == (0, [])
    shutil.rmtree(tmp_path / "results-selections")
    code, errors, _ = check(capsys, tmp_path / "results")
    assert code == 2 and errors and all("without a selection file" in line for line in errors)


def test_another_data_file_of_a_published_dataset_is_refused(tmp_path, capsys):
    _, path = one_run(tmp_path, dataset="mosi", style="mosi", synthetic=False, sha256="e" * 64)
    code, errors, _ = check(capsys, path)
    assert code == 2 and len(errors) == 1
    assert errors[0].startswith(f"{path}: 'dataset/sha256': the data file's sha256 eeeeeeeeeeee… differs from the "
                                f"published mosi file's {PUBLISHED_SHA256['mosi'][:12]}…")


def test_duplicates_and_conflicts_are_refused(tmp_path, capsys):
    data, path = one_run(tmp_path)
    copy = path.with_name("copy.json")
    copy.write_text(path.read_text())
    code, errors, _ = check(capsys, tmp_path / "results")
    assert code == 2 and len(errors) == 1 and "'run_id'" in errors[0] and "is the same run as" in errors[0]
    copy.unlink()
    # the same configuration and seed spelled another way (explicit settings equal to the defaults), other numbers
    label, unimodal = synthetic_labels(60)
    score, probs = noisy_predictions(label, 0.9, 5)
    other = result_dict("good", 1111, label, score, probs, unimodal=unimodal, overrides={"hidden": 32})
    assert other["run_id"] != data["run_id"] and other["model"]["config"] == data["model"]["config"]
    board = tmp_path / "board"
    write_result_dict(other, board)
    code, errors, _ = check(capsys, path, "--board", board)
    assert code == 2 and len(errors) == 1 and "'metrics/test': conflicts with" in errors[0]
    assert "(on the board)" in errors[0]
