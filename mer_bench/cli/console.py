"""The consoles every command prints through: results on stdout, progress, warnings and errors on stderr."""

from __future__ import annotations

import sys

from rich.console import Console

# Piped output gets a wide fixed width so tables are not wrapped into unreadable cells.
stdout = Console(highlight=False, width=None if sys.stdout.isatty() else 160)
stderr = Console(stderr=True, highlight=False, width=None if sys.stderr.isatty() else 160)


def print_error(message: str) -> None:
    """One line, never wrapped, never interpreted as markup (file names may contain brackets)."""
    stderr.print(message, markup=False, soft_wrap=True)
