"""LF-DNN: late fusion of per-modality networks (Williams et al. 2018; the LF-DNN of Cambria et al. 2017's benchmark).

Text goes through an LSTM, time-averaged audio and vision through three-layer MLPs; the three utterance vectors are
concatenated and a three-layer MLP regresses the sentiment. Hyperparameters per dataset are MMSA's
(`config_regression.json`, `lf_dnn`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders, regression_head
from mer_bench_baselines.training_loop import BaselineModel


@dataclass
class LFDNNConfig:
    hidden_dims: tuple[int, int, int] = (128, 32, 128)   # (text LSTM, audio MLP, vision MLP) hidden sizes
    text_out: int = 256                                  # text utterance vector size
    post_fusion_dim: int = 32                            # hidden size of the fusion MLP
    dropouts: tuple[float, float, float, float] = (0.3, 0.3, 0.3, 0.5)  # (audio, vision, text, fusion) dropout
    batch_size: int = 128                                # training mini-batch
    learning_rate: float = 5e-3                          # Adam step size
    weight_decay: float = 5e-3                           # Adam L2 penalty
    patience: int = 8                                    # MMSA's early_stop
    max_epochs: int = 100                                # epoch cap (MMSA has none)


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(hidden_dims=(128, 16, 128), text_out=256, post_fusion_dim=128, dropouts=(0.2, 0.2, 0.2, 0.2),
                 batch_size=128, learning_rate=1e-3, weight_decay=1e-2),
    "mosei": dict(hidden_dims=(128, 32, 128), text_out=128, post_fusion_dim=128, dropouts=(0.2, 0.2, 0.2, 0.2),
                  batch_size=64, learning_rate=2e-3, weight_decay=1e-3),
    "sims": dict(hidden_dims=(128, 32, 128), text_out=256, post_fusion_dim=32, dropouts=(0.3, 0.3, 0.3, 0.5),
                 batch_size=128, learning_rate=5e-3, weight_decay=5e-3),
    "sims-v2": dict(hidden_dims=(64, 32, 64), text_out=256, post_fusion_dim=32, dropouts=(0.4, 0.4, 0.4, 0.4),
                    batch_size=128, learning_rate=5e-3, weight_decay=0.0),
    "synthetic": dict(hidden_dims=(64, 32, 32), text_out=64, post_fusion_dim=32, dropouts=(0.3, 0.3, 0.3, 0.3),
                      batch_size=32, learning_rate=2e-3, weight_decay=1e-3, max_epochs=40),
}


class LFDNNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: LFDNNConfig):
        super().__init__()
        _, audio_hidden, vision_hidden = config.hidden_dims
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts[:3], config.text_out)
        fused = config.text_out + audio_hidden + vision_hidden
        self.fusion = regression_head(fused, config.post_fusion_dim, config.dropouts[3])

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = self.subnets(inputs)                        # (B, Ha), (B, Hv), (B, text_out)
        return {"score": self.fusion(torch.cat([audio, vision, text], dim=-1)).squeeze(-1)}


class LFDNN(BaselineModel):
    name = "lf-dnn"
    summary = "Late-fusion DNN: text LSTM + audio/vision MLPs, concatenated (MMSA's LF-DNN)"
    Config = LFDNNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "text_out": 8, "post_fusion_dim": 8, "batch_size": 16}

    presets = PRESETS
    network_class = LFDNNNetwork
