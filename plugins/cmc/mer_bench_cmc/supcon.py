"""CMC's supervised contrastive loss over the 3B modality features of a batch, with binary sentiment labels."""

from __future__ import annotations

import torch


def binary_rule(style: str):
    """The dataset's binary split of 3-class labels, mirroring its Has0 metric: SIMS-style "positive vs the rest"
    (class > 1), MOSI-style "non-negative vs negative" (class >= 1)."""
    if style == "sims":
        return lambda classes: classes > 1
    if style == "mosi":
        return lambda classes: classes >= 1
    raise ValueError(f"unknown label style {style!r}")


def supcon_loss(features: torch.Tensor, labels: torch.Tensor, temperature: float) -> torch.Tensor:
    """The reference's log-of-sum SupCon: features (M, d) unit vectors, labels (M,) (any comparable dtype).

    For each anchor i: -log( sum_{j != i, y_j = y_i} exp(s_ij / t) / sum_{j != i} exp(s_ij / t) ), averaged over the
    anchors that have at least one positive; 0 when none has. Computed with log-sum-exp (the same value, without
    overflow) and without a data-dependent branch, so it never waits for the device.
    """
    similarity = (features.float() @ features.float().T) / temperature           # (M, M)
    self_mask = torch.eye(similarity.shape[0], dtype=torch.bool, device=similarity.device)
    positive = (labels.view(-1, 1) == labels.view(1, -1)) & ~self_mask            # (M, M)
    log_denominator = torch.logsumexp(similarity.masked_fill(self_mask, float("-inf")), dim=1)
    log_numerator = torch.logsumexp(similarity.masked_fill(~positive, float("-inf")), dim=1)
    has_positive = positive.any(dim=1)                                             # (M,)
    per_anchor = torch.where(has_positive, log_denominator - log_numerator, torch.zeros_like(log_denominator))
    return per_anchor.sum() / has_positive.sum().clamp(min=1)


def modality_supcon(h: torch.Tensor, targets: torch.Tensor, rule, temperature: float) -> torch.Tensor:
    """SupCon of a batch's modality features. h (B, 3, d) and targets (B, 3) are laid out per sample; the loss sees
    them as the reference's concatenation [h_t; h_a; h_v] (3B, d) with labels rule(cat[y_t; y_a; y_v])."""
    features = h.transpose(0, 1).reshape(-1, h.shape[-1])                         # (3B, d), modality-major
    return supcon_loss(features, rule(targets.transpose(0, 1).reshape(-1)), temperature)


def chunked_modality_supcon(h: torch.Tensor, targets: torch.Tensor, rule, temperature: float,
                            chunk: int) -> torch.Tensor:
    """The per-sample average the reference reports over an unshuffled loader with batches of `chunk`:
    sum over chunks of |chunk| * SupCon(chunk) / N. Lets validation run in larger batches with the same value."""
    n = h.shape[0]
    total = h.new_zeros((), dtype=torch.float32)
    for start in range(0, n, chunk):
        stop = min(start + chunk, n)
        total = total + (stop - start) * modality_supcon(h[start:stop], targets[start:stop], rule, temperature)
    return total / max(n, 1)
