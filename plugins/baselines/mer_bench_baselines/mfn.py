"""MFN: Memory Fusion Network (Zadeh et al., AAAI 2018).

One LSTM cell per modality runs over the word-aligned sequence. At every step a Delta-memory attention looks at the
cell states of the previous and the current step of all three LSTMs (a window of two), and a gated multi-view memory
keeps what matters across modalities: the memory is updated as gamma1 * memory + gamma2 * tanh(proposal). The last
hidden states and the memory go through a two-layer MLP. Needs aligned input (see `aligned.py`). Hyperparameters per
dataset are MMSA's (`config_regression.json`, `mfn`).

Steps past a sample's length leave every state unchanged, so the output is the state at the sample's last step; on
aligned files every padded step counts (they carry no lengths), which is exactly MMSA's loop over all steps.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.model import DataInfo
from mer_bench_baselines.aligned import AlignedBaseline, aligned_steps
from mer_bench_baselines.common import Inputs, length_mask


@dataclass
class MFNConfig:
    hidden_dims: tuple[int, int, int] = (64, 16, 64)   # (text, audio, vision) LSTM cell sizes
    memsize: int = 64                                  # multi-view gated memory size
    att1_size: int = 128                               # hidden size of the Delta-memory attention (NN1)
    att1_dropout: float = 0.2
    att2_size: int = 128                               # hidden size of the memory proposal network (NN2)
    att2_dropout: float = 0.0
    gamma1_size: int = 64                              # hidden size of the retain gate network
    gamma1_dropout: float = 0.2
    gamma2_size: int = 64                              # hidden size of the update gate network
    gamma2_dropout: float = 0.7
    out_size: int = 64                                 # hidden size of the output MLP
    out_dropout: float = 0.7
    batch_size: int = 32                               # training mini-batch
    learning_rate: float = 1e-3                        # Adam step size
    weight_decay: float = 0.0                          # Adam L2 penalty
    patience: int = 8                                  # MMSA's early_stop
    max_epochs: int = 100                              # epoch cap (MMSA has none)


def _mmsa(hidden, mem, nn1, nn2, gamma1, gamma2, out, batch, lr, decay):
    """A preset in the order of MMSA's config: each network as (shapes, drop)."""
    return dict(hidden_dims=hidden, memsize=mem, att1_size=nn1[0], att1_dropout=nn1[1], att2_size=nn2[0],
                att2_dropout=nn2[1], gamma1_size=gamma1[0], gamma1_dropout=gamma1[1], gamma2_size=gamma2[0],
                gamma2_dropout=gamma2[1], out_size=out[0], out_dropout=out[1], batch_size=batch, learning_rate=lr,
                weight_decay=decay)


PRESETS = {   # MMSA's per-dataset values (its simsv2 block for sims-v2); "synthetic" is ours, sized for two CPU cores
    "mosi": _mmsa((256, 32, 256), 400, (32, 0.2), (64, 0.0), (256, 0.7), (32, 0.5), (128, 0.0), 128, 2e-3, 0.0),
    "mosei": _mmsa((128, 32, 128), 128, (128, 0.2), (128, 0.5), (256, 0.7), (256, 0.0), (128, 0.5), 64, 5e-4, 1e-4),
    "sims": _mmsa((64, 16, 64), 64, (128, 0.2), (128, 0.0), (64, 0.2), (64, 0.7), (64, 0.7), 32, 1e-3, 0.0),
    "sims-v2": _mmsa((128, 16, 128), 400, (32, 0.2), (128, 0.5), (32, 0.5), (32, 0.2), (64, 0.2), 64, 1e-3, 0.0),
    "synthetic": {**_mmsa((64, 16, 16), 64, (32, 0.2), (32, 0.0), (32, 0.2), (32, 0.2), (32, 0.2), 32, 2e-3, 0.0),
                  "max_epochs": 30},
}
PRESETS["mosei-aligned"] = PRESETS["mosei"]     # mosi-aligned takes "mosi" through its label style


def two_layer(in_size: int, hidden: int, out_size: int, dropout: float) -> nn.Sequential:
    """Linear, ReLU, dropout, linear: the shape of every small network inside MFN. (B, in) -> (B, out)"""
    return nn.Sequential(nn.Linear(in_size, hidden), nn.ReLU(), nn.Dropout(dropout), nn.Linear(hidden, out_size))


class MFNNetwork(nn.Module):
    """MFN; with `with_head=False` only the recurrence, read through `final_state` (MFM's multimodal encoder). The
    head is built last, so the other layers draw the same initial weights either way."""

    def __init__(self, info: DataInfo, config: MFNConfig, with_head: bool = True):
        super().__init__()
        self.hidden_dims = config.hidden_dims
        self.cells = nn.ModuleList(nn.LSTMCell(dim, hidden)                     # text, audio, vision
                                   for dim, hidden in zip(info.feature_dims, config.hidden_dims))
        window = 2 * sum(config.hidden_dims)           # cell states of the previous and the current step
        self.attention = two_layer(window, config.att1_size, window, config.att1_dropout)
        self.proposal = two_layer(window, config.att2_size, config.memsize, config.att2_dropout)
        self.retain_gate = two_layer(window + config.memsize, config.gamma1_size, config.memsize, config.gamma1_dropout)
        self.update_gate = two_layer(window + config.memsize, config.gamma2_size, config.memsize, config.gamma2_dropout)
        self.memsize = config.memsize
        if with_head:
            self.head = two_layer(self.final_size, config.out_size, 1, config.out_dropout)

    @property
    def final_size(self) -> int:
        return sum(self.hidden_dims) + self.memsize

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return {"score": self.head(self.final_state(inputs)).squeeze(-1)}

    def final_state(self, inputs: Inputs) -> torch.Tensor:
        """(B, sum(H) + M): the hidden states of the three LSTMs and the memory at each sample's last step."""
        sequences = (inputs.text, inputs.audio, inputs.vision)               # (B, L, D*) each, one L
        batch, length = inputs.text.shape[:2]
        valid = length_mask(aligned_steps(inputs), length)                  # (B, L)
        hidden = [inputs.text.new_zeros(batch, size) for size in self.hidden_dims]
        cells = [inputs.text.new_zeros(batch, size) for size in self.hidden_dims]
        memory = inputs.text.new_zeros(batch, self.memsize)                  # (B, M)
        for step in range(length):
            keep = valid[:, step, None]                                      # (B, 1): past the end, nothing changes
            new = [cell(x[:, step], (h, c)) for cell, x, h, c in zip(self.cells, sequences, hidden, cells)]
            window = torch.cat([*cells, *(c for _, c in new)], dim=1)        # (B, 2 * sum(H))
            attended = F.softmax(self.attention(window), dim=1) * window
            both = torch.cat([attended, memory], dim=1)                      # (B, 2 * sum(H) + M)
            updated = (torch.sigmoid(self.retain_gate(both)) * memory
                       + torch.sigmoid(self.update_gate(both)) * torch.tanh(self.proposal(attended)))
            memory = torch.where(keep, updated, memory)
            hidden = [torch.where(keep, h, old) for (h, _), old in zip(new, hidden)]
            cells = [torch.where(keep, c, old) for (_, c), old in zip(new, cells)]
        return torch.cat([*hidden, memory], dim=1)


class MFN(AlignedBaseline):
    name = "mfn"
    summary = "Memory Fusion Network (Zadeh et al. 2018): per-modality LSTMs with a gated multi-view memory (aligned)"
    Config = MFNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "memsize": 8, "att1_size": 8, "att2_size": 8, "gamma1_size": 8,
                      "gamma2_size": 8, "out_size": 8, "batch_size": 16}

    presets = PRESETS
    network_class = MFNNetwork
