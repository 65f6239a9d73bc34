"""Numbers published elsewhere ("reported" rows), read from the package data file `data/reported.json`.

The file keeps each source's numbers exactly as published (strings, in the published scale and column names) with
the mapping of each published column onto a mer-bench metric key, so it can be checked line by line against the
source. Reported rows are shown on the real dataset they belong to, never on synthetic boards, and never ranked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from functools import lru_cache
from importlib import resources
from typing import Any

from mer_bench.metrics import METRICS


@dataclass(frozen=True)
class ReportedSource:
    id: str
    label: str
    citation: str
    url: str
    notes: str


@dataclass(frozen=True)
class ReportedRow:
    model: str
    setting: str                    # e.g. "Aligned" / "Unaligned" features
    values: dict[str, float]        # metric key -> value in mer-bench's scale (fractions, MAE in label units)
    source: ReportedSource


@lru_cache(maxsize=1)
def load_reported() -> dict[str, Any]:
    text = resources.files("mer_bench.leaderboard").joinpath("data/reported.json").read_text(encoding="utf-8")
    return json.loads(text)


def parse_reported(data: dict[str, Any]) -> dict[tuple[str, str], list[ReportedRow]]:
    """{(dataset, track): rows} over every source, in file order."""
    rows: dict[tuple[str, str], list[ReportedRow]] = {}
    for raw in data["sources"]:
        source = ReportedSource(raw["id"], raw["label"], raw["citation"], raw["url"], raw["notes"])
        scale = Decimal(str(raw["scale"]))
        for table in raw["tables"]:
            unknown = [key for key in table["metric_keys"] if key not in METRICS]
            if unknown or len(table["metric_keys"]) != len(table["published_columns"]):
                raise ValueError(f"reported table for {table['dataset']}: bad metric keys {unknown}")
            for row in table["rows"]:
                values = {key: float(Decimal(value) / scale)
                          for key, value in zip(table["metric_keys"], row["values"], strict=True)}
                rows.setdefault((table["dataset"], table["track"]), []).append(
                    ReportedRow(row["model"], row.get("setting", ""), values, source))
    return rows


def reported_for(dataset: str, synthetic: bool) -> dict[str, list[ReportedRow]]:
    """{track: rows} for a board of `dataset`; nothing for synthetic data, whose numbers no paper reports."""
    if synthetic:
        return {}
    return {track: rows for (name, track), rows in parse_reported(load_reported()).items() if name == dataset}
