"""Semantic-inconsistency subsets of a split, built from its unimodal labels.

The CMC paper tests on consistent / inconsistent subsets of SIMS but never published the rule that built them, so this
rule is ours (documented in docs/datasets.md):
- polarity of a label: negative < 0, neutral = 0, positive > 0;
- ``consistent``: the T, A and V labels all have the multimodal label's polarity;
- ``inconsistent``: at least one of them differs;
- ``text-conflict``: the T label's polarity differs from the multimodal label's.
"""

from __future__ import annotations

import torch

from mer_bench.data.split import Split

SUBSET_NAMES = ("consistent", "inconsistent", "text-conflict")


def polarity(labels: torch.Tensor) -> torch.Tensor:
    """-1, 0 or +1 per label (any shape)."""
    return torch.sign(labels).to(torch.int8)


def three_class(labels: torch.Tensor) -> torch.Tensor:
    """0 negative, 1 neutral, 2 positive (the class convention of the MMSA files and CMC)."""
    return (polarity(labels) + 1).to(torch.long)


def subset_indices(split: Split) -> dict[str, torch.Tensor] | None:
    """Index tensors of each subset, or None when the split has no unimodal labels (MOSI, MOSEI)."""
    if split.unimodal_labels is None:
        return None
    multimodal = polarity(split.label).unsqueeze(1)            # (N, 1)
    agrees = polarity(split.unimodal_labels) == multimodal     # (N, 3) per modality T, A, V
    consistent = agrees.all(dim=1)
    masks = {"consistent": consistent, "inconsistent": ~consistent, "text-conflict": ~agrees[:, 0]}
    return {name: torch.nonzero(mask, as_tuple=False).flatten() for name, mask in masks.items()}
