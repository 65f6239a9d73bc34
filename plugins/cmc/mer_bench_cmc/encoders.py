"""The unimodal encoders CMC shares between its two stages.

Per modality: (audio, vision only) BatchNorm over feature channels, a bias-free 1x1 convolution to d=32, a pre-norm
Transformer encoder without positional encoding, mean pooling over time, L2 normalisation. A residual MLP head turns
the pooled vector into 3-class logits.

Modules keep the reference's names (`norm_a`, `proj_l`, `encoder_v.layers.0.self_attn.in_proj_weight`, `proj1`, ...)
so that stage-1 weights map onto stage 2 with the reference's key mapping and the reference's checkpoints, once
converted to state dicts, load here. The maths runs batch-first; attention goes through `attention.attention`: the
fused `scaled_dot_product_attention` kernels, or on the CPU with attention dropout a cache-blocked equivalent.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench_cmc.attention import attention
from mer_bench_cmc.config import CMCConfig

MODALITIES = ("text", "audio", "vision")
SUFFIX = {"text": "l", "audio": "a", "vision": "v"}   # the reference's module name suffixes


class PreNormEncoderLayer(nn.Module):
    """`nn.TransformerEncoderLayer(norm_first=True)` (ReLU, ffn 4d, LayerNorm eps 1e-5), same parameters and names."""

    def __init__(self, d_model: int, nhead: int, dropout: float, attention_dropout: bool):
        super().__init__()
        # nn.MultiheadAttention only holds in_proj / out_proj here, so they get PyTorch's own initialisation.
        self.self_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, 4 * d_model)
        self.linear2 = nn.Linear(4 * d_model, d_model)
        self.norm1 = nn.LayerNorm(d_model)
        self.norm2 = nn.LayerNorm(d_model)
        self.nhead, self.dropout = nhead, dropout
        self.attention_dropout = dropout if attention_dropout else 0.0

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        """x (B, L, d); key_mask (B, 1, 1, L) bool, True where a frame may be attended to, or None."""
        x = x + F.dropout(self._attend(self.norm1(x), key_mask), self.dropout, self.training)
        hidden = F.dropout(F.relu(self.linear1(self.norm2(x))), self.dropout, self.training)
        return x + F.dropout(self.linear2(hidden), self.dropout, self.training)

    def _attend(self, x: torch.Tensor, key_mask: torch.Tensor | None) -> torch.Tensor:
        batch, length, width = x.shape
        qkv = F.linear(x, self.self_attn.in_proj_weight, self.self_attn.in_proj_bias)  # (B, L, 3d)
        q, k, v = qkv.view(batch, length, 3, self.nhead, width // self.nhead).permute(2, 0, 3, 1, 4)  # (B, H, L, dh)
        p = self.attention_dropout if self.training else 0.0
        out = attention(q, k, v, key_mask, p)                                                # (B, H, L, dh)
        return self.self_attn.out_proj(out.transpose(1, 2).reshape(batch, length, width))


class PreNormEncoder(nn.Module):
    """A stack of identical layers. Like `nn.TransformerEncoder`, every layer starts as a copy of the first."""

    def __init__(self, layer: PreNormEncoderLayer, num_layers: int):
        super().__init__()
        self.layers = nn.ModuleList(copy.deepcopy(layer) for _ in range(num_layers))

    def forward(self, x: torch.Tensor, key_mask: torch.Tensor | None = None) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, key_mask)
        return x


def add_branch(module: nn.Module, modality: str, in_dim: int, config: CMCConfig) -> None:
    """Register one modality's encoder on `module` under the reference's names (norm_*, proj_*, encoder_*)."""
    suffix = SUFFIX[modality]
    if modality != "text":
        module.add_module(f"norm_{suffix}", nn.BatchNorm1d(in_dim))
    module.add_module(f"proj_{suffix}", nn.Conv1d(in_dim, config.embed_dim, kernel_size=1, bias=False))
    layer = PreNormEncoderLayer(config.embed_dim, config.heads, config.dropout, config.attention_dropout)
    module.add_module(f"encoder_{suffix}", PreNormEncoder(layer, config.layers))


def run_branch(module: nn.Module, modality: str, x: torch.Tensor, lengths: torch.Tensor | None) -> torch.Tensor:
    """x (B, L, D) frames -> (B, d) float32 unit vectors. `lengths` (B,) enables masked attention and pooling."""
    suffix = SUFFIX[modality]
    batch, length, dim = x.shape
    if modality != "text":
        # BatchNorm1d over (B*L, D) computes exactly the per-channel statistics of the reference's (B, D, L) input,
        # padded frames included, without transposing the data.
        x = getattr(module, f"norm_{suffix}")(x.reshape(batch * length, dim)).view(batch, length, dim)
    x = F.linear(x, getattr(module, f"proj_{suffix}").weight.squeeze(-1))   # 1x1 conv = per-frame linear map
    if lengths is not None:
        # An empty sequence (length 0) attends to and pools its first, padded step: with no key to attend to, the
        # softmax over all -inf scores would be NaN (0/0) and poison the whole batch's gradients.
        lengths = lengths.clamp(min=1)
    frame_mask = None if lengths is None else torch.arange(length, device=x.device) < lengths.unsqueeze(1)  # (B, L)
    key_mask = None if frame_mask is None else frame_mask[:, None, None, :]
    hidden = getattr(module, f"encoder_{suffix}")(x, key_mask).float()      # (B, L, d)
    if frame_mask is None:
        pooled = hidden.mean(dim=1)                                          # padding included, as the reference
    else:
        pooled = (hidden * frame_mask.unsqueeze(-1)).sum(dim=1) / lengths.unsqueeze(1).float()
    return F.normalize(pooled, p=2, dim=-1)


def residual_head(h: torch.Tensor, proj1: nn.Linear, proj2: nn.Linear, out_layer: nn.Linear, dropout: float,
                  training: bool) -> torch.Tensor:
    """(B, d) -> (B, 3) logits: out_layer(proj2(dropout(relu(proj1(h)))) + h)."""
    return out_layer(proj2(F.dropout(F.relu(proj1(h)), dropout, training)) + h)


class BertText(nn.Module):
    """BERT over MMSA `text_bert` ids; registered as `text_model`, so its keys are `text_model.model.*` as in the
    reference's BertTextEncoder."""

    def __init__(self, bert: nn.Module):
        super().__init__()
        self.model = bert

    @property
    def hidden_size(self) -> int:
        return int(self.model.config.hidden_size)

    def forward(self, text_bert: torch.Tensor) -> torch.Tensor:
        """(B, 3, L) input ids / attention mask / segment ids -> (B, L, H) last hidden states."""
        ids, mask, segments = text_bert[:, 0], text_bert[:, 1], text_bert[:, 2]
        return self.model(input_ids=ids, attention_mask=mask, token_type_ids=segments).last_hidden_state


def is_token_ids(text: torch.Tensor) -> bool:
    """Text arrives either as BERT features (float) or as token ids (integer) that still have to go through BERT."""
    return not text.is_floating_point()
