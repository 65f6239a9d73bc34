"""ALMT: Adaptive Language-guided Multimodal Transformer (Zhang et al., EMNLP 2023).

Each modality is summarised by a small transformer into a few learned tokens (T = `dst_embedding_length`). Text
leads: a language encoder refines its tokens layer by layer, and at each layer an adaptive hyper-modality learning
(AHL) layer lets the text tokens query audio and vision, adding what they find to a hyper-modality representation
(learned tokens, updated layer by layer). A cross-modal transformer then lets the text tokens attend to the
hyper-modality tokens, and a linear layer regresses the first token. MSE loss, AdamW, a linear warm-up over the
first tenth of the schedule and a cosine decay over the rest, as MMSA trains it. Hyperparameters per dataset are
MMSA's (`config_regression.json`, `almt`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.errors import UserError
from mer_bench.model import DataInfo
from mer_bench.model_config import bounds
from mer_bench_baselines.common import Inputs, TextInput, length_mask
from mer_bench_baselines.training_loop import BaselineModel, LoopSettings

AT_LEAST_ONE = bounds(low=1)


@dataclass
class ALMTConfig:
    dst_feature_dims: int = 128          # d: the size of every token after the input projections
    dst_feature_hidden_dims: int = 128   # feed-forward size in the per-modality embedding transformers
    dst_embedding_length: int = field(default=8, metadata=AT_LEAST_ONE)   # T: tokens summarising each modality
    embedding_depth: tuple[int, int, int] = field(default=(1, 1, 1), metadata=AT_LEAST_ONE)  # (text, audio, vision)
    embedding_heads: tuple[int, int, int] = (8, 8, 8)     # attention heads of the embedding transformers
    l_encoder_heads: int = 8             # attention heads of the language encoder
    AHL_depth: int = field(default=3, metadata=AT_LEAST_ONE)   # AHL layers (the language encoder has one fewer)
    h_hyper_layer_heads: int = 8         # attention heads of the AHL layers (head size d / heads)
    fusion_hidden_d: int = field(default=128, metadata=AT_LEAST_ONE)   # feed-forward size of the fusion transformer
    fusion_heads: int = 8                # attention heads of the fusion transformer
    fusion_layer_depth: int = field(default=2, metadata=AT_LEAST_ONE)  # layers of the fusion transformer
    head_size: int = 64                  # per-head size outside the AHL layers (MMSA: fixed 64)
    batch_size: int = 64                 # training mini-batch
    learning_rate: float = 1e-4          # AdamW peak step size, BERT included in text mode "bert"
    weight_decay: float = 1e-4           # AdamW decoupled weight decay
    schedule_epochs: int = 200           # MMSA's max_epochs: warm-up over its first 10 %, cosine over 90 %
    patience: int = 32                   # MMSA's early_stop
    max_epochs: int = 200                # epoch cap (MMSA has none; its max_epochs only shapes the schedule)
    bert_model: str = ""                 # BERT name or folder for text mode "bert"; empty: the dataset's text model


_MMSA = {}   # the dataclass defaults are MMSA's MOSI values
PRESETS = {   # MMSA's per-dataset values ("sims-v2": MMSA has no simsv2 block, so SIMS's); "synthetic" is ours
    "mosi": _MMSA, "mosei": dict(_MMSA, fusion_layer_depth=4), "sims": dict(_MMSA, fusion_layer_depth=4),
    "sims-v2": dict(_MMSA, fusion_layer_depth=4),
    "synthetic": dict(dst_feature_dims=32, dst_feature_hidden_dims=32, embedding_heads=(2, 2, 2), l_encoder_heads=2,
                      h_hyper_layer_heads=2, fusion_hidden_d=32, fusion_heads=2, head_size=16, batch_size=32,
                      learning_rate=1e-3, schedule_epochs=30, patience=8, max_epochs=30),
}


def warmup_cosine(step: int, total: int) -> float:
    """Learning-rate factor after `step` epochs of a `total`-epoch schedule, as MMSA's scheduler pair gives it: linear
    from 0 over the first 0.1 total epochs (the first epoch trains at 0), then a cosine over 0.9 total epochs."""
    warmup, cosine = 0.1 * total, 0.9 * total
    if step <= warmup:
        return step / warmup
    return 0.5 * (1.0 + math.cos(math.pi * (step - math.floor(warmup) - 1) / cosine))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, heads: int,
           key_valid: torch.Tensor | None = None) -> torch.Tensor:
    """Scaled dot-product attention of projected q (B, Lq, h*s) over k, v (B, Lk, h*s) in `heads` heads of size s
    (scale s^-1/2) -> (B, Lq, h*s); key_valid (B, Lk) is True at the keys that may be attended to."""
    split = lambda t: t.unflatten(-1, (heads, -1)).transpose(1, 2)    # noqa: E731  (B, h, L, s)
    mask = None if key_valid is None else key_valid[:, None, None, :]
    return F.scaled_dot_product_attention(split(q), split(k), split(v), attn_mask=mask).transpose(1, 2).flatten(2)


def output_projection(inner: int, dim: int, single_head: bool) -> nn.Module:
    """Heads back to the model size; none when a single head already has it (as MMSA)."""
    return nn.Identity() if single_head and inner == dim else nn.Linear(inner, dim)


class Attention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections of any head size."""

    def __init__(self, dim: int, heads: int, head_size: int):
        super().__init__()
        inner = heads * head_size
        self.heads = heads
        self.to_q, self.to_k, self.to_v = (nn.Linear(dim, inner, bias=False) for _ in range(3))
        self.to_out = output_projection(inner, dim, heads == 1)

    def forward(self, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """q (B, Lq, d), k and v (B, Lk, d) -> (B, Lq, d)"""
        return self.to_out(attend(self.to_q(q), self.to_k(k), self.to_v(v), self.heads, key_valid))


class PreNormLayer(nn.Module):
    """A pre-norm transformer layer with one layer norm each for queries, keys and values; crossmodal when given a
    source (queries from x, keys and values from the source)."""

    def __init__(self, dim: int, heads: int, head_size: int, mlp_dim: int):
        super().__init__()
        self.norm_q, self.norm_k, self.norm_v, self.norm_ff = (nn.LayerNorm(dim) for _ in range(4))
        self.attention = Attention(dim, heads, head_size)
        self.feed_forward = nn.Sequential(nn.Linear(dim, mlp_dim), nn.GELU(), nn.Linear(mlp_dim, dim))

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None,
                key_valid: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, Lq, d), source (B, Lk, d) or None (self-attention) -> (B, Lq, d)"""
        source = x if source is None else source
        x = x + self.attention(self.norm_q(x), self.norm_k(source), self.norm_v(source), key_valid)
        return x + self.feed_forward(self.norm_ff(x))


class TokenEmbedding(nn.Module):
    """A modality summarised into T learned tokens: a linear projection, the tokens (zeros at first) put before the
    sequence, learned positions, self-attention layers; the first T outputs are kept."""

    def __init__(self, in_size: int, length: int, config: ALMTConfig, depth: int, heads: int):
        super().__init__()
        dim, tokens = config.dst_feature_dims, config.dst_embedding_length
        self.project = nn.Linear(in_size, dim)
        self.tokens = nn.Parameter(torch.zeros(1, tokens, dim))
        self.positions = nn.Parameter(torch.randn(1, tokens + length, dim))
        self.layers = nn.ModuleList(PreNormLayer(dim, heads, config.head_size, config.dst_feature_hidden_dims)
                                    for _ in range(depth))

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D), (B,) -> (B, T, d); padded steps are never attended to."""
        batch, tokens = x.shape[0], self.tokens.shape[1]
        x = torch.cat([self.tokens.expand(batch, -1, -1), self.project(x)], dim=1)     # (B, T + L, d)
        x = x + self.positions[:, : x.shape[1]]
        valid = torch.cat([length_mask(lengths.new_full((batch,), tokens), tokens),
                           length_mask(lengths, x.shape[1] - tokens)], dim=1)          # (B, T + L)
        for layer in self.layers:
            x = layer(x, key_valid=valid)
        return x[:, :tokens]


class HyperModalityLayer(nn.Module):
    """One AHL layer: text tokens query audio and vision (one query projection, keys and values per modality); what
    they find is added to the (normalised) hyper-modality tokens."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads = heads
        self.norm_t, self.norm_a, self.norm_v, self.norm_hyper = (nn.LayerNorm(dim) for _ in range(4))
        self.to_q, self.to_k_ta, self.to_k_tv, self.to_v_ta, self.to_v_tv = (
            nn.Linear(dim, dim, bias=False) for _ in range(5))       # heads of size d / heads: inner size d
        self.to_out = output_projection(dim, dim, heads == 1)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                hyper: torch.Tensor) -> torch.Tensor:
        """text, audio, vision, hyper: (B, T, d) -> new hyper (B, T, d)."""
        text, audio, vision = self.norm_t(text), self.norm_a(audio), self.norm_v(vision)
        query = self.to_q(text)
        from_audio = attend(query, self.to_k_ta(audio), self.to_v_ta(audio), self.heads)
        from_vision = attend(query, self.to_k_tv(vision), self.to_v_tv(vision), self.heads)
        # The residual adds to the normalised tokens, as the authors' code and MMSA do (their in-place += on the
        # output of the layer norm).
        return self.norm_hyper(hyper) + self.to_out(from_audio + from_vision)


class ALMTNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: ALMTConfig):
        super().__init__()
        c = config
        dim, tokens = c.dst_feature_dims, c.dst_embedding_length
        self.text_input = TextInput(info, c.bert_model)
        in_sizes = (self.text_input.out_size, *info.feature_dims[1:])
        self.embed = nn.ModuleList(TokenEmbedding(size, length, c, depth, heads) for size, length, depth, heads
                                   in zip(in_sizes, info.seq_lens, c.embedding_depth, c.embedding_heads))
        self.hyper_tokens = nn.Parameter(torch.ones(1, tokens, dim))
        self.language_positions = nn.Parameter(torch.randn(1, tokens, dim))
        self.language_layers = nn.ModuleList(PreNormLayer(dim, c.l_encoder_heads, c.head_size, dim)
                                             for _ in range(c.AHL_depth - 1))
        self.hyper_layers = nn.ModuleList(HyperModalityLayer(dim, c.h_hyper_layer_heads) for _ in range(c.AHL_depth))
        self.fusion_token = nn.Parameter(torch.zeros(1, 1, dim))     # put before both fusion inputs
        self.fusion_positions = nn.ParameterDict({side: nn.Parameter(torch.randn(1, tokens + 1, dim))
                                                  for side in ("source", "target")})
        self.fusion_layers = nn.ModuleList(PreNormLayer(dim, c.fusion_heads, c.head_size, c.fusion_hidden_d)
                                           for _ in range(c.fusion_layer_depth))
        self.regression_head = nn.Linear(dim, 1)

    def language_levels(self, text: torch.Tensor) -> list[torch.Tensor]:
        """(B, T, d) text tokens -> AHL_depth levels: position-coded input, then each language layer's output."""
        levels = [text + self.language_positions]
        for layer in self.language_layers:
            levels.append(layer(levels[-1]))
        return levels

    def fuse(self, hyper: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Text tokens (target) attend to the hyper-modality tokens (source): (B, T, d) x 2 -> (B, d) first token."""
        token = self.fusion_token.expand(text.shape[0], -1, -1)
        source = torch.cat([token, hyper], dim=1) + self.fusion_positions["source"]          # (B, T + 1, d)
        target = torch.cat([token, text], dim=1) + self.fusion_positions["target"]
        for layer in self.fusion_layers:
            target = layer(target, source)
        return target[:, 0]

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        sequences = ((self.text_input(inputs), inputs.text_lengths), (inputs.audio, inputs.audio_lengths),
                     (inputs.vision, inputs.vision_lengths))
        text, audio, vision = (embed(x, lengths) for embed, (x, lengths) in zip(self.embed, sequences))  # (B, T, d)
        levels = self.language_levels(text)
        hyper = self.hyper_tokens.expand(text.shape[0], -1, -1)
        for level, layer in zip(levels, self.hyper_layers):
            hyper = layer(level, audio, vision, hyper)
        return {"score": self.regression_head(self.fuse(hyper, levels[-1])).squeeze(-1)}


class ALMT(BaselineModel):
    name = "almt"
    summary = "ALMT (Zhang et al. 2023): language-guided hyper-modality learning in a transformer"
    Config = ALMTConfig
    text_modes = ("features", "bert")
    smoke_settings = {"dst_feature_dims": 8, "dst_feature_hidden_dims": 8, "dst_embedding_length": 2,
                      "embedding_heads": (2, 2, 2), "l_encoder_heads": 2, "h_hyper_layer_heads": 2,
                      "fusion_hidden_d": 8, "fusion_heads": 2, "head_size": 4, "AHL_depth": 2,
                      "fusion_layer_depth": 1, "batch_size": 16}
    presets = PRESETS
    network_class = ALMTNetwork

    @classmethod
    def check_config(cls, config: ALMTConfig) -> None:
        if config.dst_feature_dims % config.h_hyper_layer_heads:
            raise UserError(f"Setting 'h_hyper_layer_heads' of model 'almt': the heads ({config.h_hyper_layer_heads})"
                            f" must divide 'dst_feature_dims' ({config.dst_feature_dims}).")

    def loop_settings(self) -> LoopSettings:
        return dataclasses.replace(super().loop_settings(), valid_loss="mse")     # MSE is ALMT's loss in MMSA

    def make_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameter_groups())

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        return F.mse_loss(outputs["score"], inputs.label)

    def _train_epoch(self, train: Inputs, optimizer: torch.optim.Optimizer, settings: LoopSettings,
                     generator: torch.Generator, epoch: int, device: torch.device) -> float:
        """Set this epoch's learning rate from the warm-up / cosine schedule, then train as every baseline."""
        for group in optimizer.param_groups:
            group["lr"] = self.config.learning_rate * warmup_cosine(epoch - 1, self.config.schedule_epochs)
        return super()._train_epoch(train, optimizer, settings, generator, epoch, device)
