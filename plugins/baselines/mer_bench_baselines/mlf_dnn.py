"""MLF-DNN: the late-fusion DNN with unimodal heads trained on the T/A/V labels (Yu et al., ACL 2020, CH-SIMS).

LF-DNN's network (text LSTM, time-averaged audio and vision through three-layer MLPs, the three vectors concatenated
into a three-layer MLP) plus one regression head per modality on its subnetwork's output; trained on the weighted
sum of the four L1 losses (`multitask.py`). Hyperparameters per dataset are MMSA's (`config_regression.json`,
`mlf_dnn`, which has SIMS presets only).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, SubnetEncoders, regression_head
from mer_bench_baselines.multitask import MultiTaskConfig, MultiTaskModel, UnimodalHeads


@dataclass
class MLFDNNConfig(MultiTaskConfig):
    hidden_dims: tuple[int, int, int] = (64, 32, 64)     # (text LSTM, audio MLP, vision MLP) hidden sizes
    text_out: int = 32                                   # text utterance vector size
    post_fusion_dim: int = 32                            # hidden size of the fusion MLP
    dropouts: tuple[float, float, float] = (0.3, 0.3, 0.3)   # (audio, vision, text) subnetwork dropout
    post_fusion_dropout: float = 0.5                     # dropout before the fusion MLP (MMSA's post_dropouts[3])


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "sims": dict(hidden_dims=(64, 32, 64), text_out=32, post_fusion_dim=32, post_text_dim=16, post_audio_dim=4,
                 post_video_dim=32, dropouts=(0.3, 0.3, 0.3), post_dropouts=(0.5, 0.5, 0.5), post_fusion_dropout=0.5,
                 batch_size=32, learning_rate=2e-3, fusion_loss_weight=0.6, text_loss_weight=0.2,
                 audio_loss_weight=0.8, vision_loss_weight=0.8, text_weight_decay=1e-4, audio_weight_decay=1e-3,
                 video_weight_decay=1e-4, weight_decay=0.0),
    "sims-v2": dict(hidden_dims=(128, 32, 128), text_out=32, post_fusion_dim=64, post_text_dim=32, post_audio_dim=4,
                    post_video_dim=64, dropouts=(0.2, 0.2, 0.2), post_dropouts=(0.3, 0.3, 0.3),
                    post_fusion_dropout=0.3, batch_size=64, learning_rate=5e-3, fusion_loss_weight=0.8,
                    text_loss_weight=1.0, audio_loss_weight=0.6, vision_loss_weight=0.8, text_weight_decay=0.0,
                    audio_weight_decay=1e-5, video_weight_decay=1e-5, weight_decay=1e-4),
    "synthetic": dict(hidden_dims=(64, 16, 32), text_out=32, post_fusion_dim=32, post_text_dim=16, post_audio_dim=8,
                      post_video_dim=16, dropouts=(0.2, 0.2, 0.2), post_dropouts=(0.2, 0.2, 0.2),
                      post_fusion_dropout=0.2, batch_size=32, learning_rate=2e-3, fusion_loss_weight=0.6,
                      text_loss_weight=0.2, audio_loss_weight=0.8, vision_loss_weight=0.8, text_weight_decay=1e-4,
                      audio_weight_decay=1e-3, video_weight_decay=1e-4, weight_decay=0.0, max_epochs=40),
}


class MLFDNNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MLFDNNConfig):
        super().__init__()
        _, audio_hidden, vision_hidden = config.hidden_dims
        self.subnets = SubnetEncoders(info, config.hidden_dims, config.dropouts, config.text_out)
        self.fusion = regression_head(config.text_out + audio_hidden + vision_hidden, config.post_fusion_dim,
                                      config.post_fusion_dropout)
        self.heads = UnimodalHeads(config.text_out, audio_hidden, vision_hidden, config)

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        audio, vision, text = self.subnets(inputs)                        # (B, Ha), (B, Hv), (B, text_out)
        score = self.fusion(torch.cat([audio, vision, text], dim=-1)).squeeze(-1)          # (B,)
        return {"score": score, **self.heads(text, audio, vision)}


class MLFDNN(MultiTaskModel):
    name = "mlf-dnn"
    summary = "MLF-DNN (Yu et al. 2020): late-fusion DNN with unimodal heads on the T/A/V labels (SIMS-style data)"
    Config = MLFDNNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "text_out": 8, "post_fusion_dim": 8, "post_text_dim": 4,
                      "post_audio_dim": 4, "post_video_dim": 4, "batch_size": 16}
    single_task = "lf-dnn"

    presets = PRESETS
    network_class = MLFDNNNetwork
