"""`mer-bench data` commands."""

from __future__ import annotations

import click


@click.group("data")
def data_group() -> None:
    """data commands."""
