"""`mer-bench leaderboard` commands."""

from __future__ import annotations

import click


@click.group("leaderboard")
def leaderboard_group() -> None:
    """leaderboard commands."""
