"""MulT: Multimodal Transformer for unaligned sequences (Tsai et al., ACL 2019).

Each modality is projected by a temporal 1-D convolution to a common size; six crossmodal transformers let every
modality attend to each of the other two (keys and values from the source, queries from the target) with no
alignment; the two streams reaching each target are concatenated and a self-attention transformer summarises them;
the last element of each of the three sequences is concatenated and regressed through a residual MLP.
Hyperparameters per dataset are MMSA's (`config_regression.json`, `mult`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mer_bench.errors import UserError
from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, last_valid, length_mask, sinusoidal_positions
from mer_bench_baselines.training_loop import BaselineModel


@dataclass
class MulTConfig:
    dst_feature_dim_nheads: tuple[int, int] = (50, 10)    # (common size d, attention heads), MMSA's name
    nlevels: int = 2                      # crossmodal transformer layers; the self-attention ones get max(., 3)
    conv1d_kernel_sizes: tuple[int, int, int] = (5, 1, 1)  # (text, audio, vision) temporal projection kernels
    attn_dropout: float = 0.2             # attention dropout where text is the source, and in self-attention
    attn_dropout_a: float = 0.1           # attention dropout where audio is the source
    attn_dropout_v: float = 0.0           # attention dropout where vision is the source
    relu_dropout: float = 0.0             # dropout inside the feed-forward blocks
    res_dropout: float = 0.2              # dropout on each residual branch
    embed_dropout: float = 0.1            # dropout on the scaled, position-coded inputs
    text_dropout: float = 0.3             # dropout on the text features before projection
    output_dropout: float = 0.1           # dropout in the output residual MLP
    batch_size: int = 16                  # training mini-batch
    accumulation: int = 8                 # batches per optimiser step (MMSA's update_epochs)
    learning_rate: float = 2e-3           # Adam step size
    weight_decay: float = 1e-3            # Adam L2 penalty
    grad_clip: float = 0.6                # gradient value clipping
    plateau_patience: int = 10            # epochs without improvement before the learning rate is cut tenfold
    patience: int = 8                     # MMSA's early_stop
    max_epochs: int = 100                 # epoch cap (MMSA has none)


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(dst_feature_dim_nheads=(50, 10), nlevels=4, conv1d_kernel_sizes=(5, 5, 5), attn_dropout=0.3,
                 attn_dropout_a=0.2, attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.0, embed_dropout=0.2,
                 text_dropout=0.5, output_dropout=0.5, batch_size=16, learning_rate=2e-3, weight_decay=5e-3,
                 grad_clip=0.6, plateau_patience=5),
    "mosei": dict(dst_feature_dim_nheads=(30, 6), nlevels=4, conv1d_kernel_sizes=(5, 1, 3), attn_dropout=0.4,
                  attn_dropout_a=0.0, attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.0, embed_dropout=0.0,
                  text_dropout=0.3, output_dropout=0.5, batch_size=4, learning_rate=5e-4, weight_decay=1e-3,
                  grad_clip=0.6, plateau_patience=20),
    "sims": dict(dst_feature_dim_nheads=(50, 10), nlevels=2, conv1d_kernel_sizes=(5, 1, 1), attn_dropout=0.2,
                 attn_dropout_a=0.1, attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.2, embed_dropout=0.1,
                 text_dropout=0.3, output_dropout=0.1, batch_size=16, learning_rate=2e-3, weight_decay=1e-3,
                 grad_clip=0.6, plateau_patience=10),
    "sims-v2": dict(dst_feature_dim_nheads=(30, 6), nlevels=4, conv1d_kernel_sizes=(5, 3, 1), attn_dropout=0.1,
                    attn_dropout_a=0.2, attn_dropout_v=0.0, relu_dropout=0.1, res_dropout=0.0, embed_dropout=0.2,
                    text_dropout=0.5, output_dropout=0.3, batch_size=16, learning_rate=5e-4, weight_decay=5e-3,
                    grad_clip=1.0, plateau_patience=10),
    "synthetic": dict(dst_feature_dim_nheads=(16, 2), nlevels=2, conv1d_kernel_sizes=(3, 1, 1), attn_dropout=0.1,
                      attn_dropout_a=0.1, attn_dropout_v=0.0, relu_dropout=0.0, res_dropout=0.1, embed_dropout=0.1,
                      text_dropout=0.2, output_dropout=0.1, batch_size=32, accumulation=1, learning_rate=1e-3,
                      weight_decay=0.0, grad_clip=0.8, plateau_patience=5, max_epochs=30),
}


PositionCodes = Callable[[int, int, torch.device], torch.Tensor]


class CrossmodalLayer(nn.Module):
    """One pre-norm transformer layer; with a source sequence it is crossmodal (queries from x, keys from source)."""

    def __init__(self, dim: int, heads: int, attn_dropout: float, relu_dropout: float, res_dropout: float):
        super().__init__()
        self.attention = nn.MultiheadAttention(dim, heads, dropout=attn_dropout, batch_first=True)
        self.attention_norm, self.feed_forward_norm = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.feed_forward = nn.Sequential(nn.Linear(dim, 4 * dim), nn.ReLU(), nn.Dropout(relu_dropout),
                                          nn.Linear(4 * dim, dim))
        self.res_dropout = nn.Dropout(res_dropout)

    def forward(self, x: torch.Tensor, source: torch.Tensor, source_padding: torch.Tensor) -> torch.Tensor:
        """x (B, Lq, d) attends to source (B, Lk, d); source_padding (B, Lk) is True at padded steps."""
        query, key = self.attention_norm(x), self.attention_norm(source)   # one norm for both, as in MulT
        attended, _ = self.attention(query, key, key, key_padding_mask=source_padding, need_weights=False)
        x = x + self.res_dropout(attended)
        return x + self.res_dropout(self.feed_forward(self.feed_forward_norm(x)))


class CrossmodalTransformer(nn.Module):
    """A stack of layers over position-coded inputs; `source=None` makes it a self-attention transformer.

    `config` needs `relu_dropout`, `res_dropout` and `embed_dropout` (MulT's, TETFN's and TFR-Net's configs have them).
    """

    def __init__(self, dim: int, heads: int, layers: int, attn_dropout: float, config: MulTConfig,
                 positions: PositionCodes | None = sinusoidal_positions):
        super().__init__()
        self.layers = nn.ModuleList(CrossmodalLayer(dim, heads, attn_dropout, config.relu_dropout, config.res_dropout)
                                    for _ in range(layers))
        self.embed_dropout = nn.Dropout(config.embed_dropout)
        self.final_norm = nn.LayerNorm(dim)
        self.scale = math.sqrt(dim)
        self.positions = positions       # (length, dim, device) -> (length, dim) codes; None: no position codes

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        if self.positions is None:
            return self.embed_dropout(self.scale * x)
        return self.embed_dropout(self.scale * x + self.positions(x.shape[1], x.shape[2], x.device))

    def forward(self, x: torch.Tensor, padding: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """(B, Lq, d) -> (B, Lq, d); `padding` (B, Lk) is True at the padded steps of the keys: of `source`, or of x."""
        x = self.embed(x)
        source = None if source is None else self.embed(source)
        for layer in self.layers:
            x = layer(x, x if source is None else source, padding)     # self-attention: keys are the current x
        return self.final_norm(x)


MODALITIES = ("text", "audio", "vision")


class MulTNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MulTConfig):
        super().__init__()
        dim, heads = config.dst_feature_dim_nheads
        self.kernels = dict(zip(MODALITIES, config.conv1d_kernel_sizes))
        self.text_dropout = nn.Dropout(config.text_dropout)
        self.project = nn.ModuleDict({m: nn.Conv1d(d, dim, kernel_size=self.kernels[m], bias=False)
                                      for m, d in zip(MODALITIES, info.feature_dims)})
        # attention dropout follows the source modality, as in MMSA's configuration
        source_dropout = {"text": config.attn_dropout, "audio": config.attn_dropout_a, "vision": config.attn_dropout_v}
        self.crossmodal = nn.ModuleDict({
            f"{target}<-{source}": CrossmodalTransformer(dim, heads, config.nlevels, source_dropout[source], config)
            for target in MODALITIES for source in MODALITIES if source != target})
        self.memory = nn.ModuleDict({m: CrossmodalTransformer(2 * dim, heads, max(config.nlevels, 3),
                                                              config.attn_dropout, config) for m in MODALITIES})
        combined = 6 * dim
        self.output = nn.Sequential(nn.Linear(combined, combined), nn.ReLU(), nn.Dropout(config.output_dropout),
                                    nn.Linear(combined, combined))
        self.out_layer = nn.Linear(combined, 1)

    def projected(self, inputs: Inputs) -> dict[str, tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Each modality as (B, L - k + 1, d) after its temporal convolution, with its valid lengths (B,) and its
        padding mask (B, L - k + 1), True at padded steps."""
        raw = {"text": (self.text_dropout(inputs.text), inputs.text_lengths),
               "audio": (inputs.audio, inputs.audio_lengths), "vision": (inputs.vision, inputs.vision_lengths)}
        out = {}
        for modality, (x, lengths) in raw.items():
            x = self.project[modality](x.transpose(1, 2)).transpose(1, 2)
            lengths = (lengths - self.kernels[modality] + 1).clamp(min=1)
            out[modality] = (x, lengths, ~length_mask(lengths, x.shape[1]))
        return out

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        streams = self.projected(inputs)
        summaries = []
        for target in MODALITIES:
            x, lengths, padding = streams[target]
            reached = [self.crossmodal[f"{target}<-{source}"](x, source_padding, source_x)      # 2 x (B, Lt, d)
                       for source, (source_x, _, source_padding) in streams.items() if source != target]
            memory = self.memory[target](torch.cat(reached, dim=-1), padding)           # (B, Lt, 2d)
            summaries.append(last_valid(memory, lengths))                               # (B, 2d)
        last = torch.cat(summaries, dim=-1)                                             # (B, 6d)
        return {"score": self.out_layer(self.output(last) + last).squeeze(-1)}


class MulT(BaselineModel):
    name = "mult"
    summary = "Multimodal Transformer (Tsai et al. 2019): crossmodal attention on unaligned sequences"
    Config = MulTConfig
    smoke_settings = {"dst_feature_dim_nheads": (8, 2), "nlevels": 1, "batch_size": 16, "accumulation": 1}

    presets = PRESETS
    network_class = MulTNetwork

    @classmethod
    def check_config(cls, config: MulTConfig) -> None:
        dim, heads = config.dst_feature_dim_nheads
        if dim % heads:
            raise UserError(f"Setting 'dst_feature_dim_nheads' of model 'mult': the heads ({heads}) must divide the "
                            f"common size d ({dim}).")

    def __init__(self, config: MulTConfig, info: DataInfo):
        # A kernel longer than its padded sequence leaves no step to attend to (and Conv1d refuses it).
        too_long = [f"{m} {k} > {n}" for m, k, n in zip(MODALITIES, config.conv1d_kernel_sizes, info.seq_lens) if k > n]
        if too_long:
            raise UserError(f"Setting 'conv1d_kernel_sizes' of model 'mult': a kernel is longer than the dataset's "
                            f"padded sequence ({', '.join(too_long)}).")
        super().__init__(config, info)
