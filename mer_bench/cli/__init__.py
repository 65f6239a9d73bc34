"""The `mer-bench` command line: click groups by noun, rich output, one-line errors with exit status 2."""

from __future__ import annotations

import signal
import sys
import warnings

import click
import mer_bench
from mer_bench.cli.console import print_error
from mer_bench.cli.catalog import datasets_group, models_group
from mer_bench.cli.data import data_group
from mer_bench.cli.leaderboard import leaderboard_group
from mer_bench.cli.reproduce import reproduce_command
from mer_bench.cli.run import run_command
from mer_bench.cli.sweep import sweep_group
from mer_bench.errors import UserError
from mer_bench.plugins import PluginWarning


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mer_bench.__version__, "--version", prog_name="mer-bench")
@click.option("--debug", is_flag=True, help="Show full tracebacks instead of one-line errors.")
def cli(debug: bool) -> None:
    """mer-bench: multimodal emotion and sentiment recognition benchmark."""


for command in (run_command, models_group, datasets_group, data_group, leaderboard_group, sweep_group):
    cli.add_command(command)
cli.add_command(reproduce_command)


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: turns user errors into one line and exit status 2, Ctrl-C into status 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    signal.signal(signal.SIGTERM, _terminate)
    warnings.simplefilter("always", PluginWarning)
    warnings.showwarning = _show_warning
    try:
        status = cli.main(args=argv, prog_name="mer-bench", standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.UsageError as error:
        print_error(usage_line(error))
        status = 2
    except click.ClickException as error:
        error.show()
        status = error.exit_code
    except (click.exceptions.Abort, KeyboardInterrupt):
        print_error("Interrupted: finished runs are kept; no partial result file was written.")
        status = 130
    except UserError as error:
        if debug:
            raise
        print_error(f"Error: {error}")
        status = error.exit_code
    sys.exit(status if isinstance(status, int) else 0)


def usage_line(error: click.UsageError) -> str:
    """A bad option or argument on one line, like every other user error, with where to read the usage."""
    where = f" (`{error.ctx.command_path} --help` shows the usage)" if error.ctx is not None else ""
    return f"Error: {error.format_message()}{where}"


def _terminate(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary files are removed and no partial result is left behind."""
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print_error(f"Warning: {message}")
