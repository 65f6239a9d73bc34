"""The `mer-bench` command line: click groups by noun, rich output, one-line errors with exit status 2.

Subcommands load lazily: `mer-bench --help` imports no command module's dependencies, and each command module keeps
torch, sklearn, the data readers and the model plugins out of its top-level imports, so every `--help` is quick.
"""

from __future__ import annotations

import importlib
import signal
import sys
import traceback
import warnings

import click
import mer_bench
from mer_bench.cli.console import print_error
from mer_bench.errors import UserError

# name -> (module, attribute): the module is imported only when that command is asked for (its help included).
COMMANDS = {
    "run": ("mer_bench.cli.run", "run_command"),
    "results": ("mer_bench.cli.results", "results_group"),
    "models": ("mer_bench.cli.catalog", "models_group"),
    "datasets": ("mer_bench.cli.catalog", "datasets_group"),
    "data": ("mer_bench.cli.data", "data_group"),
    "sweep": ("mer_bench.cli.sweep", "sweep_group"),
    "leaderboard": ("mer_bench.cli.leaderboard", "leaderboard_group"),
    "reproduce": ("mer_bench.cli.reproduce", "reproduce_command"),
}


class LazyGroup(click.Group):
    """A group whose subcommands are imported on first use, in the order of COMMANDS."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, attribute = COMMANDS[name]
        return getattr(importlib.import_module(module), attribute)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(mer_bench.__version__, "--version", prog_name="mer-bench")
@click.option("--debug", is_flag=True, help="Add the full traceback to an error (the exit status stays the same).")
def cli(debug: bool) -> None:
    """mer-bench: multimodal emotion and sentiment recognition benchmark."""


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: user errors are one line and exit status 2 (with the traceback too under
    --debug), Ctrl-C is status 130."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    signal.signal(signal.SIGTERM, _terminate)
    from mer_bench.plugins import PluginWarning   # light: pluggy only

    warnings.simplefilter("always", PluginWarning)
    warnings.showwarning = _show_warning
    sys.exit(run_cli(argv, debug))


def run_cli(argv: list[str], debug: bool) -> int:
    """The exit status of one command line; every error the user can cause ends as one line on stderr."""
    try:
        status = cli.main(args=argv, prog_name="mer-bench", standalone_mode=False)
    except click.exceptions.Exit as done:
        status = done.exit_code
    except click.UsageError as error:
        status = _user_error(usage_line(error), 2, debug)
    except click.ClickException as error:
        status = _user_error(f"Error: {error.format_message()}", error.exit_code, debug)
    except (click.exceptions.Abort, KeyboardInterrupt):
        print_error("Interrupted: finished runs are kept; no partial result file was written.")
        status = 130
    except UserError as error:
        status = _user_error(f"Error: {error}", error.exit_code, debug)
    return status if isinstance(status, int) else 0


def _user_error(line: str, status: int, debug: bool) -> int:
    """Print the error's one line (after its traceback under --debug, so the line stays last) and give its status."""
    if debug:
        sys.stderr.write(traceback.format_exc())
        sys.stderr.flush()
    print_error(line)
    return status


def usage_line(error: click.UsageError) -> str:
    """A bad option or argument on one line, like every other user error, with where to read the usage."""
    where = f" (`{error.ctx.command_path} --help` shows the usage)" if error.ctx is not None else ""
    return f"Error: {error.format_message()}{where}"


def _terminate(signum, frame) -> None:
    """SIGTERM unwinds like Ctrl-C, so temporary files are removed and no partial result is left behind."""
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print_error(f"Warning: {message}")
