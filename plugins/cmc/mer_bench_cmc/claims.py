"""Claim checks: what CMC's mechanisms did on a run, recorded in its result file under "claims" (docs/results.md).

- PLGM: per modality, the share of stage 2's train and validation targets (stage 1's pseudo labels; for cmc-gt the
  ground-truth unimodal labels) whose class differs from the multimodal class, and, where the split has ground-truth
  unimodal labels, how often the targets agree with them before stage 1 (PLGM starts every modality at the
  multimodal class) and after it. Training and validation labels only.
- router: mean gate weight per modality on the test split and each test subset, after the fit, and whether the text
  gate is lower on the text-conflict subset than on the consistent one (the router moving away from the modality
  that disagrees).
- text dominance: the text reliance share from the probes (null when probes did not run).
"""

from __future__ import annotations

from typing import Any

import torch

from mer_bench_cmc.encoders import MODALITIES


def plgm_claims(train_targets: torch.Tensor, valid_targets: torch.Tensor, train, valid, pseudo: bool) -> dict:
    """targets: (N, 3) int64 T/A/V classes stage 2 trains towards; train, valid: `SplitTensors` (label (N,),
    unimodal (N, 3) or None)."""
    splits = {"train": (train_targets, train), "valid": (valid_targets, valid)}
    differs = {name: _per_modality(targets.cpu() != tensors.label.cpu()[:, None]) for name, (targets, tensors)
               in splits.items()}
    agreement = None
    if train.unimodal is not None and valid.unimodal is not None:
        agreement = {
            "before": {name: _per_modality(tensors.label.cpu()[:, None] == tensors.unimodal.cpu())
                       for name, (_, tensors) in splits.items()},
            "after": {name: _per_modality(targets.cpu() == tensors.unimodal.cpu())
                      for name, (targets, tensors) in splits.items()},
        }
    return {"pseudo_labels": pseudo, "differs_from_multimodal": differs, "agreement_with_unimodal": agreement}


def _per_modality(values: torch.Tensor) -> dict[str, float]:
    """(N, 3) bool or weights -> mean per modality (for bools: the share of True), rounded to 6 places."""
    return {modality: round(float(values[:, k].double().mean()), 6) for k, modality in enumerate(MODALITIES)}


def router_claims(gates: torch.Tensor | None, subsets: dict[str, torch.Tensor] | None) -> dict | None:
    """gates: (N, 3) test gate weights T/A/V; subsets: test index tensors by name, or None."""
    if gates is None:
        return None
    groups = {"all": gates, **{name: gates[index] for name, index in (subsets or {}).items() if index.numel()}}
    means = {name: _per_modality(values) for name, values in groups.items()}
    moved = None
    if "text-conflict" in means and "consistent" in means:
        moved = means["text-conflict"]["text"] < means["consistent"]["text"]
    return {"mean_gates": means, "text_gate_lower_on_text_conflict": moved}


def claims_record(plgm: dict | None, gates: torch.Tensor | None, subsets: dict[str, torch.Tensor] | None,
                  probes: dict[str, Any] | None) -> dict:
    return {"plgm": plgm, "router": router_claims(gates, subsets),
            "text_reliance_share": None if not probes else probes.get("text_reliance_share")}
