"""What a selection evidence page shows: why a tuned row's configuration was chosen, in validation numbers only.

The page gives the criterion, every candidate configuration with its validation mean, seed count and completeness
(best first, the chosen one highlighted), and links to the chosen runs. Test metrics appear for the chosen
configuration only, as the selection recorded them: the candidates' test scores are never shown, because a table of
them would invite choosing a configuration by its test score, which selecting on validation exists to prevent.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from mer_bench.metrics import METRIC_KEYS, METRICS, describe

from mer_bench.leaderboard.boards import TRACK_ORDER, subset_rank
from mer_bench.leaderboard.columns import subset_label
from mer_bench.leaderboard.selections import Tuned
from mer_bench.leaderboard.views import mean_std_text, sort_value


def summary_text(summary: dict[str, Any]) -> str:
    """mean ± std of a {mean, std, n} record; "n/a" when undefined."""
    return mean_std_text(summary["mean"], summary["std"])


def criterion_facts(item: Tuned) -> list[tuple[str, str]]:
    """(term, description) pairs saying exactly how the configuration was chosen."""
    criterion, style = item.selection.criterion, item.board.style
    metric = METRICS[criterion["metric"]]
    direction = "higher" if criterion["higher_is_better"] else "lower"
    subset = "whole split" if criterion["subset"] == "all" else f"subset '{criterion['subset']}'"
    seeds = ", ".join(map(str, criterion["seeds"]))
    competing = ("only configurations with every seed finished" if criterion["complete_only"] else
                 "configurations with at least one finished seed (incomplete ones included)")
    return [
        ("Split", f"validation ({subset}); the test split played no part in the choice"),
        ("Metric", f"{metric.label}, {criterion['track']} track, {direction} is better: "
                   f"{describe(criterion['metric'], criterion['track'], style)}"),
        ("Aggregate", f"{criterion['aggregate']} (seeds {seeds}); the best mean wins, ties go to the configuration "
                      "listed first in the grid"),
        ("Competing", competing),
    ]


def candidate_rows(item: Tuned) -> list[dict[str, Any]]:
    """One row per candidate, best first: settings, validation mean ± std, seeds, and whether it competed."""
    selection, chosen_id = item.selection, item.selection.selected["config_id"]
    rows, rank = [], 0
    for candidate in selection.ranked_candidates():
        competed = selection.competed(candidate)
        rank += competed
        done, planned = candidate["seeds_done"], candidate["seeds_planned"]
        status = "competed" if competed else f"did not compete ({done} of {planned} seeds finished)"
        rows.append({
            "rank": str(rank) if competed else "—", "chosen": candidate["config_id"] == chosen_id,
            "settings": selection.key_of(candidate["overrides"]).settings_text(),
            "config_id": candidate["config_id"], "valid": summary_text(candidate["valid"]),
            "value": sort_value(candidate["valid"]["mean"]), "n": candidate["valid"]["n"],
            "seeds": f"{done} / {planned}", "complete": "yes" if candidate["complete"] else "no",
            "status": "chosen" if candidate["config_id"] == chosen_id else status,
        })
    return rows


def chosen_test_tables(item: Tuned) -> list[dict[str, Any]]:
    """Per track: test metrics of the chosen configuration by subset, as the selection recorded them."""
    test, style = item.selection.selected["test"], item.board.style
    subsets = sorted(test, key=lambda name: (name != "all", *subset_rank(name)))
    tables = []
    for track in TRACK_ORDER:
        present = {key for subset in subsets for key in test[subset].get(track, {})}
        if not present:
            continue
        keys = [key for key in METRIC_KEYS.get((track, style), ()) if key in present]
        keys += sorted(present - set(keys))
        rows = [{"subset": subset_label(subset),
                 "cells": [summary_text(test[subset][track][key]) if key in test[subset].get(track, {}) else "n/a"
                           for key in keys]} for subset in subsets if track in test[subset]]
        tables.append({"track": track, "labels": [METRICS[key].label if key in METRICS else key for key in keys],
                       "rows": rows})
    return tables


def chosen_runs(item: Tuned) -> list[dict[str, Any]]:
    """The chosen runs, each linked to its row on the model page."""
    wanted = set(item.selection.selected["run_ids"])
    page = f"../{item.group.page}"
    return [{"seed": run.spec.seed, "run_id": run.run_id, "link": f"{page}#run-{run.spec.seed}"}
            for run in item.group.runs if run.run_id in wanted]


def reproduce_commands(item: Tuned) -> list[str]:
    """The commands that remake the selection and this site's tuned row (the grid file by its name only: where it
    lives differs between machines)."""
    criterion = item.selection.criterion
    grid = Path(item.selection.data.get("grid_file") or "GRID.toml").name
    select = ["mer-bench", "sweep", "select", grid, "--metric", criterion["metric"], "--track", criterion["track"]]
    if not criterion["complete_only"]:
        select.append("--allow-incomplete")
    return [shlex.join(["mer-bench", "sweep", "run", grid]), shlex.join(select),
            "mer-bench leaderboard build RESULTS --selections SELECTIONS --out SITE"]


def evidence_page(item: Tuned) -> dict[str, Any]:
    """Everything the selection template needs."""
    selection, group = item.selection, item.group
    chosen = selection.selected
    runs = chosen_runs(item)
    selected_seeds = {run["seed"] for run in runs}
    return {
        "model": selection.model, "settings": group.key.settings_text(), "summary": item.summary,
        "model_page": f"../{group.page}", "created": selection.data.get("created") or "unknown",
        "grid": Path(selection.data["grid_file"]).name if selection.data.get("grid_file") else None,
        "criterion": criterion_facts(item), "metric_label": METRICS[selection.criterion["metric"]].label,
        "better": "high" if selection.criterion["higher_is_better"] else "low",
        "valid": summary_text(chosen["valid"]), "valid_n": chosen["valid"]["n"],
        "candidates": candidate_rows(item), "runs": runs, "test_tables": chosen_test_tables(item),
        "extra_seeds": [seed for seed in group.seeds if seed not in selected_seeds],
        "commands": reproduce_commands(item),
    }
