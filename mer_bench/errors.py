"""Error types. Every error a user can cause is a `UserError`: the CLI prints its message on one line and exits 2."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class UserError(Exception):
    """A problem with what the user asked for or gave us (names, options, files). Exit status 2, no traceback."""

    exit_code = 2


class DataError(UserError):
    """A dataset file that cannot be used. The message names the file and, where known, the split and the key."""

    def __init__(self, path: object, problem: str, split: str | None = None, key: str | None = None):
        self.path, self.problem, self.split, self.key = str(path), problem, split, key
        where = ", ".join(part for part in (f"split '{split}'" if split else "", f"key '{key}'" if key else "") if part)
        super().__init__(f"{self.path}: {where + ': ' if where else ''}{problem}")


class NonFiniteError(UserError):
    """A model produced NaN or infinite values (in predictions or a training loss). The run has failed: nothing is
    scored and no result file is written, so a diverged model can never show up as an accuracy."""


class PluginError(UserError):
    """A plugin that breaks the plugin contract in a way that must not pass silently (for example a misspelled hook)."""


def unknown_name(kind: str, name: str, choices: Iterable[str]) -> UserError:
    """An error for a mistyped name that suggests the closest choices and lists all of them."""
    choices = sorted(choices)
    close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UserError(f"Unknown {kind} '{name}'.{hint} Choices: {', '.join(choices) or '(none)'}.")


class OutputError(UserError, OSError):
    """A file or folder mer-bench could not write (disk full, file too large, read-only, a file where a folder
    should be). Also an OSError, so code that tolerates a failed write (cache upkeep) still catches it; the CLI
    prints its one line naming the path and exits 2. Built as OutputError(errno, message)."""

    def __str__(self) -> str:
        return self.strerror if self.strerror else super().__str__()


class EnvironmentProblem(UserError):
    """What a run needs is missing on this machine (its data, a GPU): not a failure of the run itself, so a sweep
    stops with one line instead of recording every run as failed."""
