"""EF-LSTM: early fusion LSTM (the early-fusion baseline of Cambria et al. 2017 / Williams et al. 2018).

The three modalities are concatenated step by step into one sequence and a stacked LSTM reads it; its final state
goes through a small MLP. Early fusion needs word-aligned sequences: on unaligned files the harness aligns them
(`mer_bench.data.align`: audio and vision frames averaged over equal slices of each sample's valid span, one slice per
text token; MMSA pools the padded sequence the same way, padding included); aligned files are read as they are.
Hyperparameters per dataset are MMSA's (`config_regression.json`, `ef_lstm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.aligned import AlignedBaseline, aligned_steps
from mer_bench_baselines.common import Inputs, LSTMEncoder, length_mask


@dataclass
class EFLSTMConfig:
    hidden_dims: int = 32              # LSTM state size (MMSA's name)
    num_layers: int = 3                # stacked LSTM layers
    dropout: float = 0.5               # between LSTM layers and in the output MLP
    batch_size: int = 128              # training mini-batch
    learning_rate: float = 5e-4        # Adam step size
    weight_decay: float = 1e-3         # Adam L2 penalty
    patience: int = 8                  # MMSA's early_stop
    max_epochs: int = 100              # epoch cap (MMSA has none)


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(hidden_dims=128, num_layers=4, dropout=0.5, batch_size=32, learning_rate=1e-3, weight_decay=5e-3),
    "mosei": dict(hidden_dims=256, num_layers=2, dropout=0.4, batch_size=128, learning_rate=5e-3, weight_decay=1e-4),
    "sims": dict(hidden_dims=32, num_layers=3, dropout=0.5, batch_size=128, learning_rate=5e-4, weight_decay=1e-3),
    "sims-v2": dict(hidden_dims=128, num_layers=3, dropout=0.2, batch_size=32, learning_rate=5e-4, weight_decay=0.0),
    "synthetic": dict(hidden_dims=64, num_layers=2, dropout=0.3, batch_size=32, learning_rate=1e-3,
                      weight_decay=0.0, max_epochs=40),
}


class MaskedBatchNorm(nn.Module):
    """Batch norm over feature channels using the valid steps only, so padding does not skew the statistics."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, C) -> (B, L, C), zeros at padded steps."""
        mask = length_mask(lengths, x.shape[1])                 # (B, L)
        out = torch.zeros_like(x)
        out[mask] = self.norm(x[mask])
        return out


class EFLSTMNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: EFLSTMConfig):
        super().__init__()
        in_size = sum(info.feature_dims)
        self.norm = MaskedBatchNorm(in_size)
        self.lstm = LSTMEncoder(in_size, config.hidden_dims, num_layers=config.num_layers, dropout=config.dropout)
        self.head = nn.Sequential(nn.Dropout(config.dropout), nn.Linear(config.hidden_dims, config.hidden_dims),
                                  nn.ReLU(), nn.Dropout(config.dropout), nn.Linear(config.hidden_dims, 1))

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        steps = aligned_steps(inputs)                                                          # (B,)
        fused = self.norm(torch.cat([inputs.text, inputs.audio, inputs.vision], dim=-1), steps)  # (B, L, Dt+Da+Dv)
        return {"score": self.head(self.lstm(fused, steps)).squeeze(-1)}


class EFLSTM(AlignedBaseline):
    name = "ef-lstm"
    summary = "Early-fusion LSTM: per-token concatenation of text, audio and vision (MMSA's EF-LSTM)"
    Config = EFLSTMConfig
    smoke_settings = {"hidden_dims": 8, "num_layers": 2, "batch_size": 16}

    presets = PRESETS
    network_class = EFLSTMNetwork
