"""`mer-bench sweep` commands."""

from __future__ import annotations

import click


@click.group("sweep")
def sweep_group() -> None:
    """sweep commands."""
