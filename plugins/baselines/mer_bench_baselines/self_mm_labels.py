"""Self-MM's unimodal label generation module (ULGM; Yu et al., AAAI 2021, section "ULGM").

For every training sample it keeps the latest feature of each task (the output of each head's first layer) and a
generated label per unimodal task, initialised to the multimodal label. After each batch, the class centres of each
task are recomputed over all samples (positive and negative by that task's current labels). From the second epoch
on, each sample's unimodal label moves towards

    y_s = (alpha * y_m + (y_m + delta_s - delta_f)) / 2,   alpha = delta_s / delta_f,

where delta = (d_neg - d_pos) / d_pos is how much closer a feature lies to the positive centre than to the negative
one, for the unimodal (s) and fused (f) features. The update is the paper's momentum rule: after epoch n the label is
(n - 1) / (n + 1) of the old one plus 2 / (n + 1) of the new estimate. Everything is vectorised over the batch.
"""

from __future__ import annotations

import torch

TASKS = ("fusion", "text", "audio", "vision")
UNIMODAL = ("text", "audio", "vision")
EPSILON = 1e-8     # keeps the ratios finite when a distance is zero


class UnimodalLabelGenerator:
    """Per-sample generated labels, last features and class centres of each task, on the training data's device."""

    def __init__(self, labels: torch.Tensor, dims: dict[str, int], bound: float, exclude_zero: bool):
        n = labels.shape[0]
        self.bound, self.exclude_zero = bound, exclude_zero
        self.labels = {task: labels.detach().float().clone() for task in TASKS}     # (N,); "fusion" never changes
        self.features = {task: labels.new_zeros(n, dims[task]) for task in TASKS}   # (N, dim)
        self.centres = {task: (labels.new_zeros(dims[task]), labels.new_zeros(dims[task])) for task in TASKS}

    def targets(self, task: str, index: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(target, weight) of a batch: the task's labels, weighted by tanh(|y_s - y_m|) (1 for the fusion task)."""
        target = self.labels[task][index]
        if task == "fusion":
            return target, torch.ones_like(target)
        return target, torch.tanh((target - self.labels["fusion"][index]).abs())

    def update(self, features: dict[str, torch.Tensor], index: torch.Tensor, epoch: int) -> None:
        """After a training batch: new labels (from epoch 2), then the stored features, then the centres."""
        if epoch > 1:
            self._update_labels(features, index, epoch)
        for task in TASKS:
            self.features[task][index] = features[task]
        self._update_centres()

    def _relative_distance(self, task: str, feature: torch.Tensor) -> torch.Tensor:
        """(B,) (d_neg - d_pos) / d_pos: positive when the feature lies closer to the positive centre."""
        positive, negative = self.centres[task]
        to_positive = (feature - positive).norm(dim=-1)
        to_negative = (feature - negative).norm(dim=-1)
        return (to_negative - to_positive) / (to_positive + EPSILON)

    def _update_labels(self, features: dict[str, torch.Tensor], index: torch.Tensor, epoch: int) -> None:
        multimodal = self.labels["fusion"][index]                                 # (B,)
        delta_fused = self._relative_distance("fusion", features["fusion"])
        for task in UNIMODAL:
            delta = self._relative_distance(task, features[task])
            alpha = delta / (delta_fused + EPSILON)
            estimate = 0.5 * alpha * multimodal + 0.5 * (multimodal + delta - delta_fused)
            estimate = estimate.clamp(-self.bound, self.bound)
            previous = self.labels[task][index]
            self.labels[task][index] = (epoch - 1) / (epoch + 1) * previous + 2 / (epoch + 1) * estimate

    def _update_centres(self) -> None:
        for task in TASKS:
            labels, features = self.labels[task], self.features[task]
            positive = labels > 0 if self.exclude_zero else labels >= 0
            old_positive, old_negative = self.centres[task]
            self.centres[task] = (_masked_centre(features, positive, old_positive),
                                  _masked_centre(features, labels < 0, old_negative))


def _masked_centre(features: torch.Tensor, mask: torch.Tensor, fallback: torch.Tensor) -> torch.Tensor:
    """Mean of the selected rows of (N, D) features, or `fallback` when no row is selected (no device sync)."""
    weights = mask.to(features.dtype)
    count = weights.sum()
    centre = (weights @ features) / count.clamp(min=1)
    return torch.where(count > 0, centre, fallback)
