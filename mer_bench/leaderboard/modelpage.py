"""What a per-model page shows: one group (model x settings) on one board, every run, and how to reproduce each."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from mer_bench.metrics import MAIN_METRIC, METRIC_KEYS, METRICS
from mer_bench.results import RunResult
from mer_bench.stats import summarize

from mer_bench.leaderboard.boards import Board, Group, newest_run
from mer_bench.leaderboard.claims import CLAIM_COLUMNS, claim_rows
from mer_bench.leaderboard.columns import PROBES, metric_value, probe_value, subset_label
from mer_bench.leaderboard.views import mean_std_text, number, sort_value

MODALITIES = ("Text", "Audio", "Vision")   # the order of the gate columns models report (T, A, V)


def _plain(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def seconds(value: float | None) -> str:
    """Seconds with one decimal; sub-0.1 s times (trivial models) as "<0.1" rather than a misleading 0.0."""
    if value is None:
        return "n/a"
    return "<0.1" if value < 0.05 else f"{value:.1f}"


def config_rows(group: Group, newest: RunResult) -> list[tuple[str, str, str]]:
    """(key, value of the newest run, note) per resolved config field; the note flags fields that differ by run."""
    rows = []
    for key, value in sorted(newest.model.get("config", {}).items()):
        seen = {_plain(run.model.get("config", {}).get(key)) for run in group.runs}
        rows.append((key, _plain(value), "differs between runs" if len(seen) > 1 else ""))
    return rows


def run_rows(group: Group, tracks: list[str]) -> list[dict[str, Any]]:
    """One row per run: seed, provenance, cost and the main metric per track."""
    rows = []
    for run in group.runs:
        environment, plugin = run.environment, run.environment.get("plugin") or {}
        rows.append({
            "seed": run.spec.seed, "run_id": run.run_id, "created": run.created,
            "commit": environment.get("git_commit") or "unknown",
            "device": environment.get("device_name") or environment.get("device") or "unknown",
            "parameters": f"{run.parameters:,}",
            "total": seconds(run.timings.get("total")), "fit": seconds(run.timings.get("fit")),
            "total_value": sort_value(run.timings.get("total")),
            "version": f"{run.model.get('distribution')} {run.model.get('version')}",
            "mer_bench": environment.get("mer_bench") or "unknown",
            "plugin": plugin.get("name") or run.model.get("plugin"),
            "metrics": [number(metric_value(run, track, MAIN_METRIC)) for track in tracks],
            "command": run.spec.command(),   # the command stored in the file is built by this same method
        })
    return rows


def subset_tables(board: Board, group: Group, tracks: list[str]) -> list[dict[str, Any]]:
    """Per track: rows of subsets (whole test split first), columns of metrics, cells mean ± std over seeds."""
    tables = []
    for track in tracks:
        runs, keys = group.runs_with(track), METRIC_KEYS[(track, board.style)]
        rows = []
        for subset in ["all", *board.subsets]:
            summaries = [summarize([metric_value(run, track, key, subset) for run in runs]) for key in keys]
            rows.append({"subset": subset_label(subset),
                         "cells": [mean_std_text(summary.mean, summary.std) for summary in summaries]})
        tables.append({"track": track, "labels": [METRICS[key].label for key in keys], "rows": rows})
    return tables


def run_metric_tables(board: Board, group: Group, tracks: list[str]) -> list[dict[str, Any]]:
    """Per track: one row per run (seed) with every metric on the whole test split."""
    tables = []
    for track in tracks:
        keys = METRIC_KEYS[(track, board.style)]
        rows = [{"seed": run.spec.seed, "cells": [number(metric_value(run, track, key)) for key in keys]}
                for run in group.runs_with(track)]
        headers = [(METRICS[key].label, "high" if METRICS[key].higher_is_better else "low") for key in keys]
        tables.append({"track": track, "headers": headers, "rows": rows})
    return tables


def _mean_gates(run: RunResult, subset: str) -> np.ndarray | None:
    """Mean gate weight per modality over one subset of one run; None when the run has no usable gates."""
    gates = (run.predictions.get("extras") or {}).get("gates")
    try:
        gates = np.asarray(gates, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    if gates.ndim != 2 or gates.shape != (len(run.predictions["ids"]), len(MODALITIES)):
        return None
    if subset != "all":
        index = (run.predictions.get("subsets") or {}).get(subset)
        if not index:
            return None
        gates = gates[index]
    return gates.mean(axis=0)


def gate_rows(board: Board, group: Group) -> list[dict[str, Any]]:
    """Per subset: mean gate weight per modality, mean ± std over runs; empty when no run stored gates."""
    rows = []
    for subset in ["all", *board.subsets]:
        per_run = [gates for gates in (_mean_gates(run, subset) for run in group.runs) if gates is not None]
        if not per_run:
            continue
        summaries = [summarize([float(gates[modality]) for gates in per_run]) for modality in range(len(MODALITIES))]
        rows.append({"subset": subset_label(subset), "runs": len(per_run),
                     "cells": [mean_std_text(summary.mean, summary.std, 3) for summary in summaries],
                     "means": [summary.mean for summary in summaries]})
    return rows


def probe_rows(group: Group) -> list[dict[str, Any]]:
    rows = [{"seed": run.spec.seed, "track": str((run.probes or {}).get("track") or "all"),
             "cells": [number(probe_value(run, key), 3) for key, _, _ in PROBES]} for run in group.runs]
    return [row for row in rows if any(cell != "n/a" for cell in row["cells"])]


def model_page(board: Board, group: Group) -> dict[str, Any]:
    """Everything the model page template needs."""
    newest = newest_run(group.runs)
    tracks = [track for track in board.tracks() if group.runs_with(track)]
    versions = sorted({f"{run.model.get('distribution')} {run.model.get('version')}" for run in group.runs})
    return {
        "group": group, "model": group.key.model, "settings": group.key.settings_text(),
        "summary": newest.model.get("summary") or "", "plugin": newest.model.get("plugin"),
        "versions": versions, "outputs": ", ".join(newest.model.get("outputs", [])),
        "text_mode": group.key.text_mode,
        "epochs": "the model's own" if group.key.epochs is None else str(group.key.epochs),
        "overrides": json.loads(group.key.overrides), "seeds": ", ".join(map(str, group.seeds)),
        "config": config_rows(group, newest), "tracks": tracks, "runs": run_rows(group, tracks),
        "main_label": METRICS[MAIN_METRIC].label, "subset_tables": subset_tables(board, group, tracks),
        "run_metrics": run_metric_tables(board, group, tracks),
        "gates": gate_rows(board, group), "modalities": MODALITIES,
        "claims": claim_rows(group.runs), "claim_columns": CLAIM_COLUMNS,
        "probes": probe_rows(group), "probe_columns": PROBES,
        "tuned": [{"page": f"../{item.page}", "summary": item.summary} for item in group.tuned],
    }
