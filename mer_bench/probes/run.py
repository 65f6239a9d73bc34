"""Modality reliance (text dominance) and robustness probes, run on any model through `predict` alone.

The runner calls `run_probes` once, after the scored test prediction, with the test split only: probes never see
training data, never train and never change the model. The probes are:

- ablation: each modality emptied ("zero") or replaced by another test sample's ("permute", one fixed derangement
  per seed); the drop of the main metric (and the rise of MAE on the regression track) against the clean predictions,
  and each modality's reliance share of the summed drops. `text_reliance_share` is the text share of the mean of the
  two ablations' drops: the text-dominance number.
- robustness: Gaussian noise on audio and vision (std = rate x each feature's std on the test split), and masking
  (each modality emptied on a random rate-fraction of samples, independently per modality), at rates 0.1 .. 0.5;
  `robustness_auc` is the mean of the two curves' normalised areas (see analysis.py).
- conflict: on data with unimodal labels, the main metric on the text-conflict and consistent subsets and the
  "follows text" rate.

A perturbed input that drives a model to NaN or infinity makes that condition's scores null (undefined, like the
drops, shares and areas built on them), never a number; `non_finite` lists such conditions.

The structure of the returned dict is documented in docs/probes.md and versioned by PROBES_VERSION.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from mer_bench.data.split import MODALITIES, Split
from mer_bench.metrics import MAIN_METRIC
from mer_bench.model import Model, Predictions, Progress
from mer_bench.probes.analysis import (change_from, conflict_analysis, finite_on_track, normalised_auc, reliance_shares,
                                      track_of, track_scores)
from mer_bench.probes.passes import PassCount, Variant, predict_variants, with_rows
from mer_bench.probes.perturb import (derangement, draw_noise, emptied, feature_std, mask_ranks, masked_at, noised,
                                     swapped)

PROBES_VERSION = 1
RATES = (0.1, 0.2, 0.3, 0.4, 0.5)
ABLATIONS = ("zero", "permute")
# Independent random streams per probe, so adding a probe never changes the draws of another.
_PERMUTE_STREAM, _NOISE_STREAM, _MASK_STREAM = 1, 2, 3


def run_probes(model: Model, test: Split, reference: Predictions, style: str, seed: int,
               progress: Progress | None = None) -> dict:
    """All probes on the test split; `reference` are the model's clean test predictions (already scored).
    `progress`, when given, shows a "probes" stage advancing once per perturbed condition predicted."""
    track = track_of(reference)
    count = PassCount()
    plan = ProbePlan(test, seed)
    with torch.no_grad():
        predicted = predict_variants(model, test, reference, plan.variants(), count, progress)
    score = functools.partial(track_scores, style, test.label, track=track)
    clean = score(reference)
    ablation = {kind: {m: change_from(clean, score(predicted[f"{kind}:{m}"])) for m in MODALITIES}
                for kind in ABLATIONS}
    shares = _reliance_section(ablation)
    robustness = _robustness_section(clean, score, plan, predicted, reference)
    conflict = conflict_analysis(test, reference, track, style)
    return {
        "version": PROBES_VERSION, "track": track, "metric": MAIN_METRIC, "seed": int(seed),
        "text_reliance_share": None if shares["mean"] is None else shares["mean"]["text"],
        "follows_text_rate": None if conflict is None else conflict["follows_text_rate"],
        "robustness_auc": robustness["auc"],
        "clean": clean, "ablation": ablation, "reliance_share": shares, "robustness": robustness,
        "conflict": conflict,
        "text_inputs": [name for name in ("text", "text_bert") if getattr(test, name) is not None],
        "non_finite": sorted(key for key, value in predicted.items() if not finite_on_track(value, track)),
        "cost": count.as_dict(len(test)),
    }


class ProbePlan:
    """The perturbed conditions of one probe run, drawn once from the seed, and how masking results are assembled.

    Masking reuses work: a sample with one modality masked has exactly the input of that modality's zero ablation,
    and a sample with none masked has the clean input, so only samples with two or more modalities masked are
    predicted again, once per combination of masked modalities across all rates (masks are nested across rates).
    """

    def __init__(self, test: Split, seed: int):
        self.test = test
        n = len(test)
        self.source = derangement(n, _rng(seed, _PERMUTE_STREAM))                    # (N,) donor of each sample
        self.noise = draw_noise(test, _rng(seed, _NOISE_STREAM))                     # {audio, vision}: like frames
        self.stds = {m: feature_std(getattr(test, m), getattr(test, f"{m}_lengths")) for m in self.noise}  # (D,)
        ranks = mask_ranks(n, _rng(seed, _MASK_STREAM))                              # (N, 3)
        self.masks = {rate: masked_at(ranks, rate) for rate in RATES}                # rate -> (N, 3) bool

    def variants(self) -> list[Variant]:
        everyone = torch.arange(len(self.test))
        out = []
        for m in MODALITIES:
            out.append(Variant(f"zero:{m}", everyone, functools.partial(self._replaced, emptied, m)))
            out.append(Variant(f"permute:{m}", everyone, functools.partial(self._replaced, swapped, m, self.source)))
        for rate in RATES:
            out.append(Variant(f"noise:{rate}", everyone, functools.partial(self._noised, rate)))
        for code, index in self._multi_mask_samples().items():
            out.append(Variant(f"mask:{code}", index, functools.partial(self._multi_masked, code, index)))
        return out

    def masked_predictions(self, rate: float, predicted: dict[str, Predictions], reference: Predictions):
        """Full-length predictions under the masks of `rate`, assembled from the predicted variants."""
        codes = _mask_codes(self.masks[rate])                                        # (N,)
        result = reference
        for code in range(1, 2 ** len(MODALITIES)):
            rows = torch.nonzero(codes == code).flatten()
            if rows.numel():
                result = with_rows(result, rows, predicted[self._mask_key(code)].take(rows))
        return result

    def _replaced(self, perturb, modality: str, *args) -> Split:
        return self.test.replace(**perturb(self.test, modality, *args))

    def _noised(self, rate: float) -> Split:
        return self.test.replace(**noised(self.test, rate, self.noise, self.stds))

    def _multi_mask_samples(self) -> dict[int, torch.Tensor]:
        """{mask code with >= 2 modalities: (K,) samples that get exactly that mask at some rate}."""
        needed: dict[int, torch.Tensor] = {}
        for masks in self.masks.values():
            codes = _mask_codes(masks)
            for code in codes.unique().tolist():
                if bin(code).count("1") >= 2:
                    rows = torch.nonzero(codes == code).flatten()
                    needed[code] = torch.cat([needed.get(code, rows[:0]), rows]).unique()
        return dict(sorted(needed.items()))

    def _multi_masked(self, code: int, index: torch.Tensor) -> Split:
        subset = self.test.take(index)
        for bit, modality in enumerate(MODALITIES):
            if code >> bit & 1:
                subset = subset.replace(**emptied(subset, modality))
        return subset

    @staticmethod
    def _mask_key(code: int) -> str:
        if bin(code).count("1") == 1:
            return f"zero:{MODALITIES[code.bit_length() - 1]}"
        return f"mask:{code}"


def _reliance_section(ablation: dict) -> dict:
    """Reliance shares from the zero drops, the permute drops, and their per-modality mean (the headline)."""
    drops = {kind: {m: ablation[kind][m]["drop"] for m in MODALITIES} for kind in ABLATIONS}
    mean_drops = {m: None if any(drops[k][m] is None for k in ABLATIONS)
                  else sum(drops[k][m] for k in ABLATIONS) / len(ABLATIONS) for m in MODALITIES}
    return {**{kind: reliance_shares(drops[kind]) for kind in ABLATIONS}, "mean": reliance_shares(mean_drops)}


def _robustness_section(clean: dict, score, plan: ProbePlan, predicted: dict, reference: Predictions) -> dict:
    """Main metric (and MAE) per rate for the noise and the masking curve, with their normalised areas."""
    curves = {
        "noise": [score(predicted[f"noise:{rate}"]) for rate in RATES],
        "masking": [score(plan.masked_predictions(rate, predicted, reference)) for rate in RATES],
    }
    section: dict = {"rates": list(RATES)}
    for name, points in curves.items():
        curve = {key: [point[key] for point in points] for key in clean}
        auc = normalised_auc(clean[MAIN_METRIC], curve[MAIN_METRIC], RATES)
        retention = None if auc is None or not clean[MAIN_METRIC] else auc / clean[MAIN_METRIC]
        section[name] = {**curve, "auc": auc, "retention": retention}
    aucs = [section[name]["auc"] for name in curves]
    section["auc"] = None if None in aucs else float(np.mean(aucs))
    return section


def _mask_codes(masks: torch.Tensor) -> torch.Tensor:
    """(N, 3) bool masks of T, A, V -> (N,) long code: bit 0 text, bit 1 audio, bit 2 vision."""
    return (masks.to(torch.long) * torch.tensor([1, 2, 4])).sum(dim=1)


def _rng(seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([stream, int(seed) % 2**32])
