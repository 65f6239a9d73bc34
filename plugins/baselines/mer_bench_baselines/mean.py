"""The floor every model must beat: predict the training mean (regression) and the training class frequencies."""

from __future__ import annotations

import torch

from mer_bench.data import Split, three_class
from mer_bench.model import FitContext, Model, Predictions


class MeanPredictor(Model):
    name = "mean"
    summary = "Training-label mean (score) and class frequencies (3-class): the floor every model must beat"
    outputs = frozenset({"score", "probs"})
    text_modes = ("features", "bert")

    def __init__(self, config, info):
        super().__init__(config, info)
        self.mean = torch.zeros(())          # () training-label mean
        self.frequencies = torch.full((3,), 1 / 3)  # (3,) training class frequencies

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        self.mean = train.label.float().mean()
        self.frequencies = torch.bincount(three_class(train.label), minlength=3).float() / len(train)

    def predict(self, split: Split) -> Predictions:
        n = len(split)
        return Predictions(score=self.mean.expand(n).clone(), probs=self.frequencies.expand(n, 3).clone())

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {"mean": self.mean.clone(), "frequencies": self.frequencies.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.mean, self.frequencies = state["mean"], state["frequencies"]

    def parameter_count(self) -> int:
        return 0
