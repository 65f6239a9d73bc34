"""TFN: Tensor Fusion Network (Zadeh et al., EMNLP 2017).

Each modality is embedded (text by an LSTM, time-averaged audio and vision by three-layer MLPs); a 1 is appended to
each embedding and their three-way outer product, which holds every unimodal, bimodal and trimodal interaction, feeds
a three-layer MLP. The regression output is a sigmoid scaled to the label range (the constrained output of the TFN
code MMSA follows). Hyperparameters per dataset are MMSA's (`config_regression.json`, `tfn`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders, regression_head
from mer_bench_baselines.training_loop import BaselineModel


@dataclass
class TFNConfig:
    hidden_dims: tuple[int, int, int] = (128, 32, 128)   # (text LSTM, audio MLP, vision MLP) hidden sizes
    text_out: int = 256                                  # text embedding size entering the fusion tensor
    post_fusion_dim: int = 32                            # hidden size of the MLP after the fusion tensor
    dropouts: tuple[float, float, float, float] = (0.4, 0.4, 0.4, 0.4)  # (audio, vision, text, fusion) dropout
    batch_size: int = 32                                 # training mini-batch
    learning_rate: float = 5e-4                          # Adam step size (MMSA uses no weight decay for TFN)
    patience: int = 8                                    # MMSA's early_stop
    max_epochs: int = 100                                # epoch cap (MMSA has none)


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(hidden_dims=(128, 32, 128), text_out=32, post_fusion_dim=64, dropouts=(0.3, 0.3, 0.3, 0.5),
                 batch_size=32, learning_rate=1e-3),
    "mosei": dict(hidden_dims=(128, 16, 128), text_out=128, post_fusion_dim=16, dropouts=(0.4, 0.4, 0.4, 0.4),
                  batch_size=128, learning_rate=5e-3),
    "sims": dict(hidden_dims=(128, 32, 128), text_out=256, post_fusion_dim=32, dropouts=(0.4, 0.4, 0.4, 0.4),
                 batch_size=32, learning_rate=5e-4),
    "sims-v2": dict(hidden_dims=(128, 32, 128), text_out=128, post_fusion_dim=32, dropouts=(0.3, 0.3, 0.3, 0.5),
                    batch_size=128, learning_rate=2e-3),
    "synthetic": dict(hidden_dims=(64, 16, 16), text_out=32, post_fusion_dim=32, dropouts=(0.3, 0.3, 0.3, 0.3),
                      batch_size=32, learning_rate=1e-3, max_epochs=40),
}


def with_one(x: torch.Tensor) -> torch.Tensor:
    """(B, D) -> (B, D + 1) with a constant 1 first, so the outer product keeps the lower-order terms."""
    return torch.cat([x.new_ones(x.shape[0], 1), x], dim=1)


class TFNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: TFNConfig):
        super().__init__()
        _, audio_hidden, vision_hidden = config.hidden_dims
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts[:3], config.text_out)
        fused = (config.text_out + 1) * (audio_hidden + 1) * (vision_hidden + 1)
        self.post_fusion = regression_head(fused, config.post_fusion_dim, config.dropouts[3])
        self.low, self.high = info.label_range    # the sigmoid output is stretched over the dataset's label range

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = map(with_one, self.subnets(inputs))           # (B, Ha+1), (B, Hv+1), (B, To+1)
        fusion = torch.einsum("ba,bv,bt->bavt", audio, vision, text).flatten(1)    # (B, (Ha+1)(Hv+1)(To+1))
        unit = torch.sigmoid(self.post_fusion(fusion).squeeze(-1))                  # (B,) in (0, 1)
        return {"score": self.low + (self.high - self.low) * unit}


class TFN(BaselineModel):
    name = "tfn"
    summary = "Tensor Fusion Network (Zadeh et al. 2017): outer product of the three modality embeddings"
    Config = TFNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "text_out": 4, "post_fusion_dim": 8, "batch_size": 16}

    presets = PRESETS
    network_class = TFNNetwork
