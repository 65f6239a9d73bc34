"""The columns of a track table and how each reads its value out of one run.

Three kinds: standard metrics on the whole test split (and the main metric on each test subset), the gap between
the consistent and inconsistent subsets, and the probe results (modality reliance and robustness).
"""

from __future__ import annotations

from dataclasses import dataclass

from mer_bench.metrics import MAIN_METRIC, METRIC_KEYS, METRICS, describe
from mer_bench.results import RunResult

from mer_bench.leaderboard.reported import ReportedRow
from mer_bench.leaderboard.shared import shared_keys, shared_value

STYLE_NAMES = {"mosi": "MOSI-style", "sims": "SIMS-style"}
SUBSET_LABELS = {"consistent": "Consistent", "inconsistent": "Inconsistent", "text-conflict": "Text-conflict"}
SUBSET_MEANINGS = {
    "consistent": "test samples whose text, audio and vision labels all have the multimodal label's polarity",
    "inconsistent": "test samples where at least one unimodal label's polarity differs from the multimodal label's",
    "text-conflict": "test samples whose text label's polarity differs from the multimodal label's",
}


def subset_label(subset: str) -> str:
    """A row label for a test subset; "all" is the whole test split."""
    return "whole test split" if subset == "all" else SUBSET_LABELS.get(subset, subset)

# (key in result["probes"], header, explanation); a run's probes are measured on one output, named by
# result["probes"]["track"], so they appear in that track's table.
PROBES = (
    ("text_reliance_share", "Text reliance",
     "share of the main-metric drop caused by ablating text, over the drops of text, audio and vision together "
     "(1 = only text matters; 1/3 = balanced); lower means less text dominance"),
    ("follows_text_rate", "Follows text",
     "on test samples whose text label disagrees with the multimodal label, how often the predicted polarity follows "
     "the text label instead of the multimodal one"),
    ("robustness_auc", "Robustness AUC",
     "area under the main metric vs corruption rate curve (noise on non-text features and masking of whole "
     "modalities at rates 0.1-0.5); higher holds up better"),
)


@dataclass(frozen=True)
class Column:
    id: str                          # unique within a table; also the CSV column prefix
    kind: str                        # "metric", "shared" (main table, either track), "gap" or "probe"
    label: str                       # header text
    description: str                 # definition and convention, shown on hover and under the table
    tag: str = ""                    # short convention tag under the header (e.g. "SIMS-style")
    metric: str | None = None        # metric key for kind "metric"
    subset: str = "all"              # test subset for kind "metric"
    higher_is_better: bool | None = None   # None: not ranked (no best or tie marks)

    @property
    def ranked(self) -> bool:
        return self.higher_is_better is not None


def track_columns(track: str, style: str, subsets: list[str], with_probes: bool) -> list[Column]:
    """Columns of one track table, in display order."""
    tag = STYLE_NAMES.get(style, style)
    columns = [Column(key, "metric", METRICS[key].label, describe(key, track, style), tag, key, "all",
                      METRICS[key].higher_is_better) for key in METRIC_KEYS[(track, style)]]
    main = METRICS[MAIN_METRIC]
    for subset in subsets:
        meaning = SUBSET_MEANINGS.get(subset, f"test subset '{subset}'")
        columns.append(Column(f"{subset}:{MAIN_METRIC}", "metric", SUBSET_LABELS.get(subset, subset),
                              f"{main.label} on {meaning}; {describe(MAIN_METRIC, track, style)}", main.label,
                              MAIN_METRIC, subset, main.higher_is_better))
    if "consistent" in subsets and "inconsistent" in subsets:
        columns.append(gap_column())
    if with_probes:
        columns += [Column(f"probe:{key}", "probe", label, f"{text} (probe, per run; not ranked)", "probe")
                    for key, label, text in PROBES]
    return columns


def gap_column() -> Column:
    main = METRICS[MAIN_METRIC]
    return Column("gap", "gap", "Gap", f"consistent minus inconsistent {main.label}, per seed, then averaged: how "
                  "much worse the model does when the modalities disagree (not ranked)", "cons. − incons.")


def comparison_columns(style: str, subsets: list[str]) -> list[Column]:
    """Columns of the main table: the metrics both tracks define the same way (see `shared`), the main metric on
    each test subset, and the consistent - inconsistent gap."""
    tag = STYLE_NAMES.get(style, style)
    columns = [Column(key, "shared", METRICS[key].label, _shared_description(key, style), tag, key, "all",
                      METRICS[key].higher_is_better) for key in shared_keys(style)]
    main = METRICS[MAIN_METRIC]
    for subset in subsets:
        meaning = SUBSET_MEANINGS.get(subset, f"test subset '{subset}'")
        columns.append(Column(f"{subset}:{MAIN_METRIC}", "shared", SUBSET_LABELS.get(subset, subset),
                              f"{main.label} on {meaning}; {_shared_description(MAIN_METRIC, style)}",
                              f"{main.label}", MAIN_METRIC, subset, main.higher_is_better))
    if "consistent" in subsets and "inconsistent" in subsets:
        columns.append(gap_column())
    return columns


def _shared_description(key: str, style: str) -> str:
    classification = describe(key, "classification", style)
    if key == "acc3":
        classification = (f"{METRICS[key].description}; argmax of the three probabilities against the label's "
                          "SIMS bins (-0.1, 0.1]")
    return f"regression rows: {describe(key, 'regression', style)}. Classification rows: {classification}"


def metric_value(run: RunResult, track: str, metric: str, subset: str = "all") -> float | None:
    value = run.metrics["test"].get(subset, {}).get(track, {}).get(metric)
    return None if value is None else float(value)


def probe_value(run: RunResult, key: str, track: str | None = None) -> float | None:
    """A probe result of one run; with `track`, only when the probes were measured on that track's output (a probe
    record names its track; one without a track counts for every track)."""
    probes = run.probes or {}
    if track is not None and probes.get("track", track) != track:
        return None
    value = probes.get(key)
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def column_value(run: RunResult, track: str, column: Column) -> float | None:
    """The value one run contributes to a cell (None when it is undefined or missing)."""
    if column.kind == "metric":
        return metric_value(run, track, column.metric, column.subset)
    if column.kind == "shared":
        return shared_value(run, track, column.metric, column.subset)
    if column.kind == "gap":
        consistent = metric_value(run, track, MAIN_METRIC, "consistent")
        inconsistent = metric_value(run, track, MAIN_METRIC, "inconsistent")
        return None if consistent is None or inconsistent is None else consistent - inconsistent
    return probe_value(run, column.id.removeprefix("probe:"), track)


def reported_value(reported: ReportedRow, column: Column) -> float | None:
    """The published number of a column: sources publish whole-test-split metrics only."""
    return reported.values.get(column.metric) if column.kind == "metric" and column.subset == "all" else None


def has_probes(runs: list[RunResult], track: str) -> bool:
    return any(probe_value(run, key, track) is not None for run in runs for key, _, _ in PROBES)
