"""MTFN: the Tensor Fusion Network with unimodal heads trained on the T/A/V labels (Yu et al., ACL 2020, CH-SIMS).

TFN's network (modality subnetworks, a 1 appended to each embedding, their three-way outer product into a
three-layer MLP whose sigmoid output is stretched over the label range) plus one regression head per modality on its
subnetwork's output; trained on the weighted sum of the four L1 losses (`multitask.py`). Hyperparameters per
dataset are MMSA's (`config_regression.json`, `mtfn`, which has SIMS presets only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders, regression_head
from mer_bench_baselines.multitask import MultiTaskConfig, MultiTaskModel, UnimodalHeads
from mer_bench_baselines.tfn import with_one


@dataclass
class MTFNConfig(MultiTaskConfig):
    hidden_dims: tuple[int, int, int] = (256, 32, 256)   # (text LSTM, audio MLP, vision MLP) hidden sizes
    text_out: int = 256                                  # text embedding size entering the fusion tensor
    post_fusion_dim: int = 64                            # hidden size of the MLP after the fusion tensor
    dropouts: tuple[float, float, float] = (0.2, 0.2, 0.2)   # (audio, vision, text) subnetwork dropout
    post_fusion_dropout: float = 0.2                     # dropout on the fusion tensor (MMSA's post_dropouts[3])


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "sims": dict(hidden_dims=(256, 32, 256), text_out=256, post_fusion_dim=64, post_text_dim=64, post_audio_dim=4,
                 post_video_dim=8, dropouts=(0.2, 0.2, 0.2), post_dropouts=(0.2, 0.2, 0.2), post_fusion_dropout=0.2,
                 batch_size=64, learning_rate=5e-3, fusion_loss_weight=0.6, text_loss_weight=0.4,
                 audio_loss_weight=0.0, vision_loss_weight=1.0, text_weight_decay=1e-3, audio_weight_decay=1e-4,
                 video_weight_decay=1e-5, weight_decay=5e-3),
    "sims-v2": dict(hidden_dims=(64, 16, 64), text_out=32, post_fusion_dim=64, post_text_dim=16, post_audio_dim=5,
                    post_video_dim=64, dropouts=(0.3, 0.3, 0.3), post_dropouts=(0.5, 0.5, 0.5),
                    post_fusion_dropout=0.5, batch_size=32, learning_rate=5e-4, fusion_loss_weight=1.0,
                    text_loss_weight=0.4, audio_loss_weight=0.4, vision_loss_weight=0.8, text_weight_decay=1e-5,
                    audio_weight_decay=1e-4, video_weight_decay=1e-4, weight_decay=1e-2),
    "synthetic": dict(hidden_dims=(64, 16, 16), text_out=32, post_fusion_dim=32, post_text_dim=16, post_audio_dim=8,
                      post_video_dim=8, dropouts=(0.2, 0.2, 0.2), post_dropouts=(0.2, 0.2, 0.2),
                      post_fusion_dropout=0.2, batch_size=32, learning_rate=1e-3, fusion_loss_weight=0.6,
                      text_loss_weight=0.4, audio_loss_weight=0.4, vision_loss_weight=0.4, text_weight_decay=1e-4,
                      audio_weight_decay=1e-4, video_weight_decay=1e-5, weight_decay=1e-3, max_epochs=40),
}


class MTFNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MTFNConfig):
        super().__init__()
        _, audio_hidden, vision_hidden = config.hidden_dims
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts, config.text_out)
        fused = (config.text_out + 1) * (audio_hidden + 1) * (vision_hidden + 1)
        self.post_fusion = regression_head(fused, config.post_fusion_dim, config.post_fusion_dropout)
        self.heads = UnimodalHeads(config.text_out, audio_hidden, vision_hidden, config)
        self.low, self.high = info.label_range    # the sigmoid output is stretched over the dataset's label range

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = self.subnets(inputs)                           # (B, Ha), (B, Hv), (B, To)
        # outer product of [1, a] x [1, v] x [1, t], flattened in MMSA's (audio, vision, text) order
        fusion = torch.einsum("ba,bv,bt->bavt", with_one(audio), with_one(vision), with_one(text)).flatten(1)
        unit = torch.sigmoid(self.post_fusion(fusion).squeeze(-1))                  # (B,) in (0, 1)
        return {"score": self.low + (self.high - self.low) * unit, **self.heads(text, audio, vision)}


class MTFN(MultiTaskModel):
    name = "mtfn"
    summary = "MTFN (Yu et al. 2020): Tensor Fusion Network with unimodal heads on the T/A/V labels (SIMS-style data)"
    Config = MTFNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "text_out": 4, "post_fusion_dim": 8, "post_text_dim": 4,
                      "post_audio_dim": 4, "post_video_dim": 4, "batch_size": 16}
    single_task = "tfn"

    presets = PRESETS
    network_class = MTFNNetwork
