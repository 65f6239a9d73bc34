"""The arithmetic of the probes: metric drops, reliance shares, curve areas and the conflict analysis.

Definitions (also in docs/probes.md):
- drop of a condition = clean main metric - main metric under the condition (positive: the condition hurts);
- reliance share of modality m = max(drop_m, 0) / sum over T, A, V of max(drop, 0); null when that sum is 0 (the
  model loses nothing from any single modality, so no share can be assigned);
- curve area = trapezoidal area under (rate, metric) from rate 0 (the clean metric) to the largest rate, divided by
  that largest rate: the mean metric over the rate range, equal to the clean metric for a model noise cannot touch;
- polarity of a prediction: classification track, argmax class (negative / neutral / positive); regression track,
  the dataset's 3-class bins of the score (SIMS-style: MMSA's Acc-3 bins, neutral on (-0.1, 0.1]; MOSI-style: the
  sign of the score).
"""

from __future__ import annotations

import numpy as np
import torch

from mer_bench.data.split import MODALITIES, Split
from mer_bench.data.subsets import polarity, subset_indices
from mer_bench.metrics import MAIN_METRIC, compute_metrics, sims_bins
from mer_bench.model import Predictions

CONFLICT_SUBSETS = ("text-conflict", "consistent")


def track_of(predictions: Predictions) -> str:
    """The regression track when the model gives a score, else the classification track."""
    return "regression" if predictions.score is not None else "classification"


def track_scores(style: str, labels: torch.Tensor, predictions: Predictions, track: str) -> dict[str, float | None]:
    """{main metric} plus, on the regression track, {"mae"}: the numbers every probe condition reports."""
    if len(labels) == 0 or not finite_on_track(predictions, track):
        # Undefined: no samples, or a perturbed input drove the model to NaN (never scored as a number).
        return {MAIN_METRIC: None, **({"mae": None} if track == "regression" else {})}
    score = predictions.score.numpy() if track == "regression" else None
    probs = predictions.probs.numpy() if track == "classification" else None
    metrics = compute_metrics(style, labels.numpy(), score, probs)[track]
    scores = {MAIN_METRIC: metrics[MAIN_METRIC]}
    if track == "regression":
        scores["mae"] = metrics["mae"]
    return scores


def finite_on_track(predictions: Predictions, track: str) -> bool:
    """Whether the output the track scores (score or probs) is free of NaN and infinities."""
    values = predictions.score if track == "regression" else predictions.probs
    return bool(torch.isfinite(values).all())


def change_from(clean: dict[str, float | None], perturbed: dict[str, float | None]) -> dict[str, float | None]:
    """The perturbed scores with their change from clean: "drop" of the main metric, "mae_increase" of MAE."""
    out = dict(perturbed)
    out["drop"] = _difference(clean[MAIN_METRIC], perturbed[MAIN_METRIC])
    if "mae" in perturbed:
        out["mae_increase"] = _difference(perturbed["mae"], clean["mae"])
    return out


def reliance_shares(drops: dict[str, float | None]) -> dict[str, float] | None:
    """{modality: share} from each modality's drop: negative drops count as 0; None when the drops sum to 0."""
    if any(drops[modality] is None for modality in MODALITIES):
        return None
    clipped = {modality: max(float(drops[modality]), 0.0) for modality in MODALITIES}
    total = sum(clipped.values())
    if total <= 1e-12:
        return None
    return {modality: value / total for modality, value in clipped.items()}


def normalised_auc(clean: float | None, values: list[float | None], rates: tuple[float, ...]) -> float | None:
    """Trapezoidal area under the curve through (0, clean) and (rate, value), divided by the largest rate."""
    points = [clean, *values]
    if any(value is None for value in points):
        return None
    xs = [0.0, *rates]
    area = sum((xs[i + 1] - xs[i]) * (points[i] + points[i + 1]) / 2 for i in range(len(rates)))
    return float(area / xs[-1])


def predicted_polarity(predictions: Predictions, track: str, style: str) -> torch.Tensor:
    """(N,) int8 in {-1, 0, 1}: the polarity a prediction expresses (see the module docstring)."""
    if track == "classification":
        return (predictions.probs.argmax(dim=1) - 1).to(torch.int8)
    if style == "sims":
        return torch.from_numpy(sims_bins(np.clip(predictions.score.numpy(), -1.0, 1.0), 3) - 1).to(torch.int8)
    return polarity(predictions.score)


def conflict_analysis(test: Split, reference: Predictions, track: str, style: str) -> dict | None:
    """Main metric on the text-conflict and consistent subsets, and how often the prediction sides with the text.

    Among the samples whose text label polarity differs from the multimodal label polarity (the text-conflict
    subset), "follows text" counts predictions whose polarity equals the text label's, "follows multimodal" those
    equal to the multimodal label's; a prediction can match neither (e.g. neutral when the two labels are opposite).
    None when the split has no unimodal labels.
    """
    subsets = subset_indices(test)
    if subsets is None:
        return None
    section: dict = {"subsets": {}}
    for name in CONFLICT_SUBSETS:
        index = subsets[name]
        scores = track_scores(style, test.label.index_select(0, index), reference.take(index), track)
        section["subsets"][name] = {"n": int(index.numel()), **scores}
    section["gap"] = _difference(section["subsets"]["consistent"][MAIN_METRIC],
                                 section["subsets"]["text-conflict"][MAIN_METRIC])
    section.update(_follow_rates(test, reference, track, style, subsets["text-conflict"]))
    return section


def _follow_rates(test: Split, reference: Predictions, track: str, style: str, disagree: torch.Tensor) -> dict:
    """Shares of the disagreeing samples whose predicted polarity equals the text, resp. the multimodal, polarity."""
    n = int(disagree.numel())
    if n == 0:
        return {"disagreeing": 0, "follows_text_rate": None, "follows_multimodal_rate": None}
    predicted = predicted_polarity(reference, track, style).index_select(0, disagree)        # (K,)
    text = polarity(test.unimodal_labels[:, 0]).index_select(0, disagree)                    # (K,)
    multimodal = polarity(test.label).index_select(0, disagree)                              # (K,)
    return {"disagreeing": n,
            "follows_text_rate": float((predicted == text).float().mean()),
            "follows_multimodal_rate": float((predicted == multimodal).float().mean())}


def _difference(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else float(a - b)
