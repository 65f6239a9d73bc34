"""The claim checks a run recorded ("claims" in its result file, e.g. CMC's: mer_bench_cmc/claims.py) as model page
rows, one per run. The record is free-form in the result schema, so every value is read defensively: anything that
is not a finite number in [0, 1] (or a boolean where one is expected) shows as "n/a"."""

from __future__ import annotations

import math
from typing import Any

from mer_bench.results import RunResult

MODALITY_KEYS = ("text", "audio", "vision")
CLAIM_COLUMNS = (
    ("Pseudo ≠ multimodal, train (T/A/V)", "share of stage 2's train targets whose class differs from the multimodal "
     "class, per modality"),
    ("Pseudo ≠ multimodal, valid (T/A/V)", "the same on the validation split"),
    ("Agreement with unimodal labels, train (T/A/V)", "share of train targets equal to the ground-truth unimodal "
     "class: before stage 1 (the multimodal class) → after"),
    ("Text gate: consistent → text-conflict", "mean router weight on text, on the consistent and on the "
     "text-conflict test subsets"),
    ("Gate moves off text", "whether the text gate is lower on text-conflict than on consistent samples"),
    ("Text reliance", "text reliance share from the probes"),
)


def _share(value: Any) -> str:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and 0 <= value <= 1
    return f"{value:.3f}" if ok else "n/a"


def _get(record: Any, *keys: str) -> Any:
    for key in keys:
        record = record.get(key) if isinstance(record, dict) else None
    return record


def _triple(record: Any) -> str:
    return " / ".join(_share(_get(record, key)) for key in MODALITY_KEYS)


def claim_row(run: RunResult) -> dict[str, Any] | None:
    """One row of the model page's claim-check table, or None when the run recorded no claims."""
    claims = run.extra.get("claims")
    if not isinstance(claims, dict):
        return None
    plgm, router = _get(claims, "plgm"), _get(claims, "router")
    agreement = _get(plgm, "agreement_with_unimodal")
    before, after = _get(agreement, "before", "train"), _get(agreement, "after", "train")
    moved = _get(router, "text_gate_lower_on_text_conflict")
    cells = [
        _triple(_get(plgm, "differs_from_multimodal", "train")),
        _triple(_get(plgm, "differs_from_multimodal", "valid")),
        "n/a" if agreement is None else f"{_triple(before)} → {_triple(after)}",
        f"{_share(_get(router, 'mean_gates', 'consistent', 'text'))} → "
        f"{_share(_get(router, 'mean_gates', 'text-conflict', 'text'))}",
        ("yes" if moved else "no") if isinstance(moved, bool) else "n/a",
        _share(_get(claims, "text_reliance_share")),
    ]
    return {"seed": run.spec.seed, "cells": cells}


def claim_rows(runs: list[RunResult]) -> list[dict[str, Any]]:
    return [row for row in map(claim_row, sorted(runs, key=lambda run: run.spec.seed)) if row is not None]
