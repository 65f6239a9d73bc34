"""MLMF: Low-rank Multimodal Fusion with unimodal heads trained on the T/A/V labels (Yu et al., ACL 2020, CH-SIMS).

LMF's network (TFN's subnetworks with a text embedding of half the text LSTM size; the fusion weight tensor
factorised into `rank` modality-specific factors, the per-rank products combined by rank weights plus a bias) plus
one regression head per modality on its subnetwork's output; trained on the weighted sum of the four L1 losses
(`multitask.py`). Hyperparameters per dataset are MMSA's (`config_regression.json`, `mlmf`, SIMS presets only).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders
from mer_bench_baselines.multitask import MultiTaskConfig, MultiTaskModel, UnimodalHeads
from mer_bench_baselines.tfn import with_one


@dataclass
class MLMFConfig(MultiTaskConfig):
    hidden_dims: tuple[int, int, int] = (256, 32, 256)   # (text LSTM, audio MLP, vision MLP); text embedding = half
    dropouts: tuple[float, float, float] = (0.3, 0.3, 0.3)   # (audio, vision, text) subnetwork dropout
    rank: int = 3                                        # rank of the factorised fusion tensor
    factor_lr: float = 1e-3                              # Adam step size of the fusion factors and rank weights


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "sims": dict(hidden_dims=(256, 32, 256), post_text_dim=8, post_audio_dim=4, post_video_dim=32,
                 post_dropouts=(0.4, 0.4, 0.4), dropouts=(0.3, 0.3, 0.3), rank=3, batch_size=128,
                 learning_rate=1e-3, factor_lr=1e-3, fusion_loss_weight=0.2, text_loss_weight=1.0,
                 audio_loss_weight=0.4, vision_loss_weight=0.8, text_weight_decay=1e-4, audio_weight_decay=0.0,
                 video_weight_decay=1e-4, weight_decay=5e-3),
    "sims-v2": dict(hidden_dims=(64, 16, 64), post_text_dim=16, post_audio_dim=5, post_video_dim=16,
                    post_dropouts=(0.4, 0.4, 0.4), dropouts=(0.3, 0.3, 0.3), rank=6, batch_size=64,
                    learning_rate=5e-3, factor_lr=5e-4, fusion_loss_weight=0.4, text_loss_weight=0.0,
                    audio_loss_weight=0.4, vision_loss_weight=1.0, text_weight_decay=0.0, audio_weight_decay=1e-5,
                    video_weight_decay=1e-5, weight_decay=1e-3),
    "synthetic": dict(hidden_dims=(64, 16, 16), post_text_dim=16, post_audio_dim=8, post_video_dim=8,
                      post_dropouts=(0.2, 0.2, 0.2), dropouts=(0.2, 0.2, 0.2), rank=4, batch_size=32,
                      learning_rate=2e-3, factor_lr=1e-3, fusion_loss_weight=0.6, text_loss_weight=0.4,
                      audio_loss_weight=0.4, vision_loss_weight=0.4, text_weight_decay=1e-4, audio_weight_decay=0.0,
                      video_weight_decay=1e-4, weight_decay=1e-3, max_epochs=40),
}


def factor(rank: int, size: int) -> nn.Parameter:
    """(rank, size, 1) modality-specific factor, Xavier-normal initialised as LMF's code."""
    return nn.Parameter(nn.init.xavier_normal_(torch.empty(rank, size, 1)))


class MLMFNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MLMFConfig):
        super().__init__()
        text_hidden, audio_hidden, vision_hidden = config.hidden_dims
        text_out = text_hidden // 2
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts, text_out)
        self.audio_factor = factor(config.rank, audio_hidden + 1)
        self.vision_factor = factor(config.rank, vision_hidden + 1)
        self.text_factor = factor(config.rank, text_out + 1)
        self.rank_weights = nn.Parameter(nn.init.xavier_normal_(torch.empty(1, config.rank)))
        self.bias = nn.Parameter(torch.zeros(1))
        self.heads = UnimodalHeads(text_out, audio_hidden, vision_hidden, config)

    def fusion_parameters(self) -> list[nn.Parameter]:
        return [self.audio_factor, self.vision_factor, self.text_factor, self.rank_weights, self.bias]

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = self.subnets(inputs)                           # (B, Ha), (B, Hv), (B, Ht/2)
        # (B, D+1) @ (R, D+1, 1) -> (R, B, 1) per modality; their product is the rank-R view of the fused tensor
        fused = torch.matmul(with_one(audio), self.audio_factor) * torch.matmul(with_one(vision), self.vision_factor) \
            * torch.matmul(with_one(text), self.text_factor)
        score = torch.matmul(self.rank_weights, fused.squeeze(-1)).squeeze(0) + self.bias       # (B,)
        return {"score": score, **self.heads(text, audio, vision)}


class MLMF(MultiTaskModel):
    name = "mlmf"
    summary = "MLMF (Yu et al. 2020): Low-rank Multimodal Fusion with unimodal heads on the T/A/V labels (SIMS-style)"
    Config = MLMFConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "rank": 2, "post_text_dim": 4, "post_audio_dim": 4,
                      "post_video_dim": 4, "batch_size": 16}
    single_task = "lmf"

    presets = PRESETS
    network_class = MLMFNetwork

    def separate_parameter_ids(self) -> set[int]:
        return {id(parameter) for parameter in self.network.fusion_parameters()}

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The subnetwork and head groups, plus the factors, rank weights and bias at `factor_lr`."""
        fusion = {"params": self.network.fusion_parameters(), "lr": self.config.factor_lr,
                  "weight_decay": self.config.weight_decay}
        return [fusion] + super().parameter_groups()
