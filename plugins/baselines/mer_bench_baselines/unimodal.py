"""Unimodal references: one modality through an LSTM (outputs mean-pooled) and an MLP head (`unimodal-t`, `unimodal-a`, `unimodal-v`).

All three share one architecture and one set of hyperparameters, so their gap measures how much sentiment each
modality carries on its own; a multimodal model scoring close to `unimodal-t` is text-dominated.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, LSTMEncoder
from mer_bench_baselines.training_loop import BaselineModel

MODALITY_INDEX = {"text": 0, "audio": 1, "vision": 2}


@dataclass
class UnimodalConfig:
    hidden_size: int = 64        # LSTM state size
    head_size: int = 64          # hidden layer of the regression head
    dropout: float = 0.2         # on the encoder state and inside the head
    batch_size: int = 32         # training mini-batch
    learning_rate: float = 1e-3  # Adam step size
    weight_decay: float = 0.0    # Adam L2 penalty
    patience: int = 8            # epochs without validation improvement before stopping (MMSA's early_stop)
    max_epochs: int = 100        # epoch cap (MMSA has none; the run's --epochs overrides)


class UnimodalNetwork(nn.Module):
    def __init__(self, modality: str, in_size: int, config: UnimodalConfig):
        super().__init__()
        self.modality = modality
        self.encoder = LSTMEncoder(in_size, config.hidden_size, pooling="mean")
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden_size, config.head_size),
                                  nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.head_size, 1))

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        sequence = getattr(inputs, self.modality)                      # (B, L, D)
        lengths = getattr(inputs, f"{self.modality}_lengths")          # (B,)
        return {"score": self.head(self.encoder(sequence, lengths)).squeeze(-1)}


class UnimodalModel(BaselineModel):
    Config = UnimodalConfig
    modality: ClassVar[str] = "text"
    smoke_settings = {"hidden_size": 8, "head_size": 8, "batch_size": 16}

    @classmethod
    def default_config(cls, info: DataInfo) -> UnimodalConfig:
        # One setting for every dataset (ours, not MMSA's); synthetic only gets a tighter epoch cap.
        return UnimodalConfig(max_epochs=30) if info.synthetic else UnimodalConfig()

    def build_network(self) -> nn.Module:
        return UnimodalNetwork(self.modality, self.info.feature_dims[MODALITY_INDEX[self.modality]], self.config)


class UnimodalText(UnimodalModel):
    name = "unimodal-t"
    summary = "Text only (precomputed BERT features): LSTM + MLP head; what text alone carries"
    modality = "text"


class UnimodalAudio(UnimodalModel):
    name = "unimodal-a"
    summary = "Audio only: LSTM + MLP head; what audio alone carries"
    modality = "audio"


class UnimodalVision(UnimodalModel):
    name = "unimodal-v"
    summary = "Vision only: LSTM + MLP head; what vision alone carries"
    modality = "vision"
