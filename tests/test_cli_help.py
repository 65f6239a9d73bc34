"""Help is quick because it imports nothing heavy; every user error, Click's usage errors included, is one line."""

from __future__ import annotations

import subprocess
import sys

import pytest

from mer_bench.cli import main

HEAVY = ("torch", "sklearn", "transformers", "scipy", "mer_bench_cmc", "mer_bench_baselines")

# One interpreter asks for every command's help, then says which heavy modules got imported along the way.
EVERY_HELP = """
import sys, click
from mer_bench.cli import cli, run_cli

def paths(group, prefix):
    context = click.Context(group)
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        yield (*prefix, name)
        if isinstance(command, click.Group):
            yield from paths(command, (*prefix, name))

every = [(), *paths(cli, ())]
statuses = {run_cli([*path, "--help"], False) for path in every}
print(len(every), statuses, sorted(name for name in %r if name in sys.modules))
""" % (HEAVY,)


def test_no_help_imports_torch_sklearn_transformers_or_a_model_plugin():
    done = subprocess.run([sys.executable, "-c", EVERY_HELP], capture_output=True, text=True, check=True)
    count, statuses, heavy = done.stdout.strip().splitlines()[-1].split(" ", 2)
    assert int(count) >= 20 and statuses == "{0}"
    assert heavy == "[]"


def test_like_choices_of_data_synth_are_the_generators_shapes():
    from mer_bench.cli.data import LIKE_CHOICES
    from mer_bench.data.synthetic import SHAPES

    assert LIKE_CHOICES == tuple(sorted(SHAPES))


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


@pytest.mark.parametrize("args, phrase", [
    (["run"], "Missing argument 'MODEL'"),
    (["nosuch"], "No such command 'nosuch'"),
    (["run", "mean", "--dataset", "synthetic", "--bogus"], "No such option '--bogus'"),
    (["data", "synth", "x.pkl", "--like", "imdb"], "Invalid value for '--like'"),
    (["results", "show", "/no/such/folder"], "does not exist"),
    (["sweep", "plan"], "Missing argument 'GRID_FILE'"),
])
def test_usage_errors_are_one_line_exit_2_without_a_leading_blank_line(args, phrase, capsys):
    code, out, err = invoke(args, capsys)
    assert code == 2 and out == ""
    assert err.startswith("Error: ") and err.count("\n") == 1 and phrase in err


def test_debug_adds_the_traceback_to_a_usage_error_and_keeps_status_2(capsys):
    code, _, err = invoke(["--debug", "run", "mean", "--dataset", "synthetic", "--bogus"], capsys)
    assert code == 2
    assert err.startswith("Traceback") and err.splitlines()[-1].startswith("Error: No such option '--bogus'")
