"""The two networks of CMC: a unimodal network per modality (stage 1) and the multimodal CMC network (stage 2)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from mer_bench_cmc.config import CMCConfig
from mer_bench_cmc.encoders import MODALITIES, BertText, add_branch, is_token_ids, residual_head, run_branch
from mer_bench_cmc.fusion import TopKRouter, combine_experts, parameter_free_fusion

CLASSES = 3


class UnimodalNet(nn.Module):
    """Stage 1: one modality's encoder and residual head (the reference's TextModel / AudioModel / VisionModel)."""

    def __init__(self, modality: str, in_dim: int, config: CMCConfig, text_model: BertText | None = None):
        super().__init__()
        self.modality, self.out_dropout = modality, config.out_dropout
        if text_model is not None:          # BERT trained in this stage; a frozen one stays outside the network
            self.text_model = text_model
        add_branch(self, modality, in_dim, config)
        self.proj1 = nn.Linear(config.embed_dim, config.embed_dim)
        self.proj2 = nn.Linear(config.embed_dim, config.embed_dim)
        self.out_layer = nn.Linear(config.embed_dim, CLASSES)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, L, D) frames, or (B, 3, L) token ids for a text network that owns BERT -> (logits (B, 3), h (B, d))."""
        if is_token_ids(x):
            x = self.text_model(x)
        h = run_branch(self, self.modality, x, lengths)
        with _float32(h):
            return residual_head(h, self.proj1, self.proj2, self.out_layer, self.out_dropout, self.training), h


@dataclass(frozen=True)
class CMCOutput:
    logits: torch.Tensor          # (B, 3) fused prediction
    expert_logits: torch.Tensor   # (B, 3 experts T/A/V, 3), zeros where the router did not select the expert
    gates: torch.Tensor           # (B, 3) router weights T/A/V, 0 for unselected experts
    selected: torch.Tensor        # (B, 3) bool
    h: torch.Tensor               # (B, 3, d) unit-norm encodings before fusion (SupCon's input)


class CMCNet(nn.Module):
    """Stage 2: the three encoders, PFM, and the MCR router over the three transferred unimodal heads."""

    def __init__(self, in_dims: tuple[int, int, int], config: CMCConfig, text_model: BertText | None = None):
        super().__init__()
        self.config = config
        if text_model is not None:
            self.text_model = text_model
        for modality, in_dim in zip(MODALITIES, in_dims):
            add_branch(self, modality, in_dim, config)
        self.router = TopKRouter(config.embed_dim, num_experts=3, top_k=config.top_k)
        d = config.embed_dim
        self.proj1s = nn.ModuleList(nn.Linear(d, d) for _ in MODALITIES)
        self.proj2s = nn.ModuleList(nn.Linear(d, d) for _ in MODALITIES)
        self.out_layers = nn.ModuleList(nn.Linear(d, CLASSES) for _ in MODALITIES)

    def encode(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
               lengths: torch.Tensor | None = None) -> torch.Tensor:
        """-> (B, 3, d) unit vectors T/A/V. `text` is BERT features (B, L, H) or token ids (B, 3, L)."""
        if is_token_ids(text):
            text = self.text_model(text)
        inputs = (text, audio, vision)
        return torch.stack([run_branch(self, modality, x, None if lengths is None else lengths[:, i])
                            for i, (modality, x) in enumerate(zip(MODALITIES, inputs))], dim=1)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor,
                lengths: torch.Tensor | None = None) -> CMCOutput:
        h = self.encode(text, audio, vision, lengths)
        with _float32(h):
            refined = parameter_free_fusion(h, self.config.pfm_temperature)          # (B, 3, d)
            gates, selected = self.router(refined.sum(dim=1))
            expert_logits = torch.stack([
                residual_head(refined[:, i], self.proj1s[i], self.proj2s[i], self.out_layers[i],
                              self.config.out_dropout, self.training) for i in range(len(MODALITIES))], dim=1)
            logits, per_expert = combine_experts(expert_logits, gates, selected)
        return CMCOutput(logits, per_expert, gates, selected, h)


def _float32(reference: torch.Tensor):
    """Heads, fusion and everything after the encoders run in float32 even inside a bf16 autocast region: PFM divides
    cosine similarities by 0.07, which would amplify bf16 rounding into the softmax."""
    return torch.autocast(device_type=reference.device.type, enabled=False)
