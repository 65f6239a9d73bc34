"""`mer-bench leaderboard check`: the gate a submitted result file passes before it joins a board.

A build skips a bad file and goes on (a board is still worth building); a check is stricter and refuses the whole
submission, one line per problem naming the file and the field. It runs every check `intake` makes (bounded JSON,
schema, plain names, ranges, metrics recomputed from the stored predictions), then the ones a board needs before a
file is merged:

- provenance: the command that reproduces the run, the versions (mer-bench, Python, torch, numpy, the model's
  distribution and version) and the git commit;
- the data file: on a dataset with a published checksum (`checksums`), the file's must match;
- tuned rows: a run whose settings are not the model's defaults must have been chosen on validation, so it needs a
  selection file (given with the results, or in the board's `-selections` folder) that lists it among its candidates
  and chose a configuration;
- duplicates and conflicts: one run id twice, or two runs of one effective configuration and seed (another spelling
  of the same settings) with different test metrics, among the submitted files and against `--board`.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from mer_bench.results import RunResult

from mer_bench.leaderboard.boards import config_key, make_boards
from mer_bench.leaderboard.checksums import checksum_problem
from mer_bench.leaderboard.intake import Inputs, one_line, read_inputs
from mer_bench.leaderboard.selections import SelectionError, SelectionFile, locate, sibling_folders

PROVENANCE = (("command", "command"), ("environment/mer_bench", "mer_bench"), ("environment/python", "python"),
              ("environment/torch", "torch"), ("environment/numpy", "numpy"), ("environment/git_commit", "git_commit"),
              ("model/distribution", "distribution"), ("model/version", "version"))


@dataclass
class CheckReport:
    files: int = 0
    problems: list[str] = field(default_factory=list)     # one line each: "PATH: field: what is wrong"


def provenance_problems(result: RunResult, path: str) -> list[str]:
    values = {"command": result.command, "distribution": result.model.get("distribution"),
              "version": result.model.get("version"),
              **{key: result.environment.get(key) for key in ("mer_bench", "python", "torch", "numpy", "git_commit")}}
    problems = [f"{path}: '{where}': missing; a submitted run must say how to reproduce it (command, versions, "
                "commit)" for where, key in PROVENANCE if not isinstance(values[key], str) or not values[key].strip()]
    commit = values["git_commit"]
    if isinstance(commit, str) and commit.endswith("+dirty"):
        problems.append(f"{path}: 'environment/git_commit': {commit[:20]} has uncommitted changes; the commit does "
                        "not reproduce the run")
    return problems


def tuned_problems(results: list[tuple[str, RunResult]], selections: list[SelectionFile]) -> list[str]:
    """Runs with non-default settings that no selection accounts for, and selections that match no submitted row."""
    considered = {run_id for selection in selections for candidate in selection.data["candidates"]
                  for run_id in candidate["run_ids"]}
    problems = [f"{path}: 'spec/overrides': settings {result.spec.to_dict()['overrides']} without a selection file "
                "that tuned them on validation (mer-bench sweep select); submit the selection with the runs, or run "
                "with the model's defaults"
                for path, result in results if result.spec.to_dict()["overrides"] and result.run_id not in considered]
    boards = make_boards(result for _, result in results)
    for selection in selections:
        if selection.model in {result.spec.model for _, result in results}:
            try:
                locate(selection, boards)
            except SelectionError as error:      # stale, or its chosen runs were not submitted
                problems.append(one_line(str(error)))
    return problems


def duplicate_problems(results: list[tuple[str, RunResult]], board: list[tuple[str, RunResult]]) -> list[str]:
    """The same run id twice with other contents, or one configuration and seed with different test metrics."""
    problems, by_id, by_config = [], {}, {}
    for path, result in [*board, *results]:
        seen = by_id.setdefault((result.dataset["sha256"], result.run_id), (path, result))
        if seen[1] is not result:
            what = "the same run" if seen[1].metrics == result.metrics else "a conflicting run"
            problems.append(f"{path}: 'run_id': {result.run_id} is {what} as {seen[0]}; submit each run once")
            continue
        key = (result.dataset["sha256"], config_key(result), result.spec.seed)
        other = by_config.setdefault(key, (path, result))
        if other[1] is not result and other[1].metrics["test"] != result.metrics["test"]:
            problems.append(f"{path}: 'metrics/test': conflicts with {other[0]}: the same configuration and seed "
                            "with other test metrics (the run is not deterministic, or one file was changed)")
    return problems


def check_files(paths: Iterable[Path], board: Path | None = None) -> CheckReport:
    """Every problem of the result and selection files under `paths`, against the published `board` folder."""
    paths = list(paths)
    inputs = read_inputs(paths, sibling_folders(paths))
    published = read_inputs([board], sibling_folders([board])) if board else Inputs()
    report = CheckReport(files=len(inputs.results) + len(inputs.result_problems) + len(inputs.selections)
                         + len(inputs.selection_problems))
    report.problems += [one_line(str(problem)) for problem in (*inputs.result_problems, *inputs.selection_problems)]
    results = list(zip(inputs.sources, inputs.results))
    for path, result in results:
        report.problems += provenance_problems(result, path)
        mismatch = checksum_problem(result.dataset["name"], result.dataset["sha256"])
        if mismatch:
            report.problems.append(f"{path}: 'dataset/sha256': {mismatch}")
    report.problems += tuned_problems(results, [*inputs.selections, *published.selections])
    submitted = {Path(path).resolve() for path, _ in results}     # a file already on the board is not its own twin
    on_board = [(f"{path} (on the board)", result) for path, result in zip(published.sources, published.results)
                if Path(path).resolve() not in submitted]
    report.problems += duplicate_problems(results, on_board)
    return report
