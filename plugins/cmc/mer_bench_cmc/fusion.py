"""Stage-2 fusion: PFM (parameter-free fusion) and MCR (the top-k router over the three modality experts)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def parameter_free_fusion(h: torch.Tensor, temperature: float) -> torch.Tensor:
    """PFM: X' = softmax(X X^T / t) X for X = (B, 3, d) unit vectors, so each modality mixes in the others by
    cosine similarity (its own weight comes from a similarity of exactly 1)."""
    scores = torch.softmax(h @ h.transpose(1, 2) / temperature, dim=-1)    # (B, 3, 3)
    return scores @ h                                                       # (B, 3, d)


class TopKRouter(nn.Module):
    """Linear(d -> 3) router logits; softmax over the top-k logits only, the others get gate 0."""

    def __init__(self, embed_dim: int, num_experts: int, top_k: int):
        super().__init__()
        self.linear = nn.Linear(embed_dim, num_experts)
        self.top_k = top_k

    def forward(self, fused: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """fused (B, d) -> gates (B, E) summing to 1 over the selected experts, selected (B, E) bool."""
        logits = self.linear(fused)
        return sparse_gates(logits, self.top_k)


def sparse_gates(logits: torch.Tensor, top_k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, E) logits -> (gates, selected): softmax over the top-k entries of each row, exactly 0 elsewhere."""
    indices = logits.topk(top_k, dim=-1).indices                                     # (B, k)
    selected = torch.zeros_like(logits, dtype=torch.bool).scatter_(-1, indices, True)
    gates = torch.softmax(logits.masked_fill(~selected, float("-inf")), dim=-1)
    return gates, selected


def combine_experts(expert_logits: torch.Tensor, gates: torch.Tensor, selected: torch.Tensor):
    """expert_logits (B, E, 3) computed densely for every expert -> (fused (B, 3), per-expert outputs (B, E, 3)).

    The reference runs each expert only on the samples that selected it and leaves zeros elsewhere; zeroing the
    unselected outputs gives the same values and gradients without a data-dependent branch.
    """
    per_expert = expert_logits * selected.unsqueeze(-1).to(expert_logits.dtype)
    fused = (gates.unsqueeze(-1) * per_expert).sum(dim=1)
    return fused, per_expert


def expert_loss(per_expert: torch.Tensor, targets: torch.Tensor, selected: torch.Tensor,
                mask_unselected: bool) -> torch.Tensor:
    """Sum over experts of CE(expert output, its unimodal target). per_expert (B, E, 3), targets (B, E).

    The reference averages each expert's CE over the whole batch, zero outputs of unselected experts included
    (each contributes ln 3); `mask_unselected` averages over the samples that selected the expert instead.
    """
    losses = F.cross_entropy(per_expert.transpose(1, 2), targets, reduction="none")   # (B, E)
    if not mask_unselected:
        return losses.mean(dim=0).sum()
    weights = selected.float()
    return ((losses * weights).sum(dim=0) / weights.sum(dim=0).clamp(min=1)).sum()
