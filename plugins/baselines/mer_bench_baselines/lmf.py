"""LMF: Low-rank Multimodal Fusion (Liu et al., ACL 2018).

The same modality embeddings as TFN, but the fusion weight tensor is factorised into `rank` modality-specific factors,
so the output is computed without ever forming the outer product: per rank, project each [1, h_m] with its factor,
multiply the three projections elementwise, and combine the ranks linearly. Hyperparameters per dataset are MMSA's
(`config_regression.json`, `lmf`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders
from mer_bench_baselines.tfn import with_one
from mer_bench_baselines.training_loop import BaselineModel, trainable


@dataclass
class LMFConfig:
    hidden_dims: tuple[int, int, int] = (64, 16, 64)   # (text LSTM, audio MLP, vision MLP); text embedding = half
    dropouts: tuple[float, float, float] = (0.2, 0.2, 0.2)   # (audio, vision, text) subnetwork dropout
    rank: int = 4                                        # rank of the factorised fusion tensor
    batch_size: int = 64                                 # training mini-batch
    learning_rate: float = 2e-3                          # Adam step size of the subnetworks
    factor_lr: float = 5e-4                              # Adam step size of the fusion factors and rank weights
    weight_decay: float = 5e-3                           # Adam L2 penalty, every parameter
    patience: int = 8                                    # MMSA's early_stop
    max_epochs: int = 100                                # epoch cap (MMSA has none)


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(hidden_dims=(128, 16, 128), dropouts=(0.3, 0.3, 0.3), rank=3, batch_size=64, learning_rate=1e-3,
                 factor_lr=1e-3, weight_decay=5e-3),
    "mosei": dict(hidden_dims=(128, 16, 128), dropouts=(0.2, 0.2, 0.2), rank=4, batch_size=32, learning_rate=1e-3,
                  factor_lr=1e-3, weight_decay=1e-3),
    "sims": dict(hidden_dims=(64, 16, 64), dropouts=(0.2, 0.2, 0.2), rank=4, batch_size=64, learning_rate=2e-3,
                 factor_lr=5e-4, weight_decay=5e-3),
    "sims-v2": dict(hidden_dims=(64, 32, 64), dropouts=(0.3, 0.3, 0.3), rank=4, batch_size=32,
                    learning_rate=2e-3, factor_lr=5e-4, weight_decay=1e-4),
    "synthetic": dict(hidden_dims=(64, 16, 16), dropouts=(0.2, 0.2, 0.2), rank=4, batch_size=32,
                      learning_rate=2e-3, factor_lr=1e-3, weight_decay=1e-3, max_epochs=40),
}


class LMFNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: LMFConfig):
        super().__init__()
        text_hidden, audio_hidden, vision_hidden = config.hidden_dims
        text_out = text_hidden // 2
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts, text_out)
        self.audio_factor = nn.Parameter(nn.init.xavier_normal_(torch.empty(config.rank, audio_hidden + 1, 1)))
        self.vision_factor = nn.Parameter(nn.init.xavier_normal_(torch.empty(config.rank, vision_hidden + 1, 1)))
        self.text_factor = nn.Parameter(nn.init.xavier_normal_(torch.empty(config.rank, text_out + 1, 1)))
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, config.rank)))
        self.bias = nn.Parameter(torch.zeros(1))

    def fusion_parameters(self) -> list[nn.Parameter]:
        return [self.audio_factor, self.vision_factor, self.text_factor, self.rank_weights, self.bias]

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = map(with_one, self.subnets(inputs))           # (B, Ha+1), (B, Hv+1), (B, Ht/2+1)
        # (B, D) @ (R, D, 1) -> (R, B, 1) per modality; their product is the rank-R view of the fused tensor
        fused = torch.matmul(audio, self.audio_factor) * torch.matmul(vision, self.vision_factor) \
            * torch.matmul(text, self.text_factor)
        score = torch.matmul(self.rank_weights, fused.squeeze(-1)).squeeze(0) + self.bias       # (B,)
        return {"score": score}


class LMF(BaselineModel):
    name = "lmf"
    summary = "Low-rank Multimodal Fusion (Liu et al. 2018): TFN's fusion with a low-rank weight tensor"
    Config = LMFConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "rank": 2, "batch_size": 16}

    presets = PRESETS
    network_class = LMFNetwork

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Fusion factors, rank weights and bias at `factor_lr`; the subnetworks at `learning_rate`."""
        fusion = self.network.fusion_parameters()
        fusion_ids = {id(parameter) for parameter in fusion}
        others = [p for p in trainable(self.network.parameters()) if id(p) not in fusion_ids]
        decay = self.config.weight_decay
        return [{"params": fusion, "lr": self.config.factor_lr, "weight_decay": decay},
                {"params": others, "lr": self.config.learning_rate, "weight_decay": decay}]
