"""Graph-MFN: MFN with a Dynamic Fusion Graph (Zadeh et al., ACL 2018, the CMU-MOSEI paper).

As MFN (see mfn.py), one LSTM cell per modality runs over the word-aligned sequence and a gated multi-view memory
keeps what matters across steps; but the Delta-memory attention is replaced by the Dynamic Fusion Graph (DFG). At
every step each modality's vertex is ReLU(linear(previous and current hidden state)); every pair and the triple of
modalities gets a vertex computed from its sub-vertices, each scaled by an efficacy (one scalar per edge, predicted
from the three unimodal vertices); a last network reads all seven vertices, scaled the same way, into tau, which
replaces MFN's attended states in the memory update. Needs aligned input (see `aligned.py`). Hyperparameters per
dataset are MMSA's (`config_regression.json`, `graph_mfn`).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.model import DataInfo
from mer_bench_baselines.aligned import AlignedBaseline, aligned_steps
from mer_bench_baselines.common import Inputs, length_mask
from mer_bench_baselines.mfn import two_layer

PATTERN_WIDTH = 100     # width of the first layer of every DFG network; fixed in MMSA and the CMU-MultimodalSDK


@dataclass
class GraphMFNConfig:
    hidden_dims: tuple[int, int, int] = (256, 32, 256)   # (text, audio, vision) LSTM cell sizes = vertex sizes
    memsize: int = 64                                  # multi-view gated memory size
    inner_node_dim: int = 128                          # size of every multimodal vertex and of tau
    proposal_size: int = 256                           # hidden size of the memory proposal network (MMSA's NN)
    proposal_dropout: float = 0.5
    gamma1_size: int = 32                              # hidden size of the retain gate network
    gamma1_dropout: float = 0.2
    gamma2_size: int = 32                              # hidden size of the update gate network
    gamma2_dropout: float = 0.7
    out_size: int = 256                                # hidden size of the output MLP
    out_dropout: float = 0.2
    batch_size: int = 64                               # training mini-batch
    learning_rate: float = 5e-4                        # Adam step size
    weight_decay: float = 1e-3                         # Adam L2 penalty
    patience: int = 8                                  # MMSA's early_stop
    max_epochs: int = 100                              # epoch cap (MMSA has none)


def _mmsa(hidden, mem, inner, proposal, gamma1, gamma2, out, batch, lr, decay):
    """A preset in the order of MMSA's config: each network as (shapes, drop)."""
    return dict(hidden_dims=hidden, memsize=mem, inner_node_dim=inner, proposal_size=proposal[0],
                proposal_dropout=proposal[1], gamma1_size=gamma1[0], gamma1_dropout=gamma1[1],
                gamma2_size=gamma2[0], gamma2_dropout=gamma2[1], out_size=out[0], out_dropout=out[1],
                batch_size=batch, learning_rate=lr, weight_decay=decay)


PRESETS = {   # MMSA's per-dataset values (its simsv2 block for sims-v2); "synthetic" is ours, sized for two CPU cores
    "mosi": _mmsa((256, 32, 256), 300, 64, (32, 0.0), (128, 0.5), (64, 0.5), (256, 0.0), 32, 2e-3, 5e-3),
    "mosei": _mmsa((64, 16, 64), 300, 128, (32, 0.5), (64, 0.0), (256, 0.7), (128, 0.7), 64, 2e-3, 1e-3),
    "sims": _mmsa((256, 32, 256), 64, 128, (256, 0.5), (32, 0.2), (32, 0.7), (256, 0.2), 64, 5e-4, 1e-3),
    "sims-v2": _mmsa((64, 16, 64), 400, 32, (32, 0.7), (256, 0.5), (256, 0.2), (256, 0.2), 32, 2e-3, 0.0),
    "synthetic": {**_mmsa((32, 16, 16), 32, 16, (32, 0.0), (32, 0.2), (32, 0.2), (32, 0.2), 32, 2e-3, 0.0),
                  "max_epochs": 30},
}
PRESETS["mosei-aligned"] = PRESETS["mosei"]     # mosi-aligned takes "mosi" through its label style


def pattern_network(in_size: int, out_size: int) -> nn.Sequential:
    """Two linear layers without an activation between them, the shape of every DFG vertex network."""
    return nn.Sequential(nn.Linear(in_size, PATTERN_WIDTH), nn.Linear(PATTERN_WIDTH, out_size))


def proper_subsets(vertex: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The non-empty proper subsets of a vertex, smallest first: its incoming edges."""
    return [subset for size in range(1, len(vertex)) for subset in combinations(vertex, size)]


class DynamicFusionGraph(nn.Module):
    """Vertices for every non-empty subset of the modalities; tau (B, inner) summarises all of them."""

    def __init__(self, vertex_sizes: tuple[int, ...], inner: int):
        super().__init__()
        modalities = tuple(range(len(vertex_sizes)))
        self.multimodal = [subset for size in range(2, len(modalities) + 1)
                           for subset in combinations(modalities, size)]       # (0,1), (0,2), (1,2), (0,1,2)
        size_of = {(m,): vertex_sizes[m] for m in modalities} | {v: inner for v in self.multimodal}
        self.vertices = nn.ModuleList(pattern_network(sum(size_of[s] for s in proper_subsets(v)), inner)
                                      for v in self.multimodal)
        self.all_vertices = proper_subsets(modalities) + [modalities]             # tau's incoming edges
        self.tau = pattern_network(sum(size_of[s] for s in self.all_vertices), inner)
        edges = sum(len(proper_subsets(v)) for v in self.multimodal) + len(self.all_vertices)   # 19 for three
        self.efficacy = nn.Sequential(pattern_network(sum(vertex_sizes), inner), nn.Linear(inner, edges))

    def forward(self, unimodal: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Unimodal vertices (B, H_m) each -> tau (B, inner), efficacies (B, edges)."""
        efficacies = self.efficacy(torch.cat(unimodal, dim=1))                # unbounded, as in MMSA and the SDK
        values = {(m,): vertex for m, vertex in enumerate(unimodal)}
        edge = 0
        for vertex, network in zip(self.multimodal, self.vertices):
            sources = proper_subsets(vertex)
            values[vertex] = network(self._weighted(values, sources, efficacies, edge))
            edge += len(sources)
        return self.tau(self._weighted(values, self.all_vertices, efficacies, edge)), efficacies

    @staticmethod
    def _weighted(values: dict, sources: list, efficacies: torch.Tensor, first: int) -> torch.Tensor:
        """The source vertices, each times its edge's efficacy, concatenated."""
        return torch.cat([values[s] * efficacies[:, first + i, None] for i, s in enumerate(sources)], dim=1)


class GraphMFNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: GraphMFNConfig):
        super().__init__()
        self.hidden_dims = config.hidden_dims
        self.cells = nn.ModuleList(nn.LSTMCell(dim, hidden)                     # text, audio, vision
                                   for dim, hidden in zip(info.feature_dims, config.hidden_dims))
        self.singletons = nn.ModuleList(nn.Linear(2 * hidden, hidden) for hidden in config.hidden_dims)
        self.graph = DynamicFusionGraph(config.hidden_dims, config.inner_node_dim)
        gate_in = config.inner_node_dim + config.memsize
        self.proposal = two_layer(config.inner_node_dim, config.proposal_size, config.memsize,
                                  config.proposal_dropout)
        self.retain_gate = two_layer(gate_in, config.gamma1_size, config.memsize, config.gamma1_dropout)
        self.update_gate = two_layer(gate_in, config.gamma2_size, config.memsize, config.gamma2_dropout)
        self.head = two_layer(sum(config.hidden_dims) + config.memsize, config.out_size, 1, config.out_dropout)
        self.memsize = config.memsize

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        sequences = (inputs.text, inputs.audio, inputs.vision)               # (B, L, D*) each, one L
        batch, length = inputs.text.shape[:2]
        valid = length_mask(aligned_steps(inputs), length)                  # (B, L)
        hidden = [inputs.text.new_zeros(batch, size) for size in self.hidden_dims]
        cells = [inputs.text.new_zeros(batch, size) for size in self.hidden_dims]
        memory = inputs.text.new_zeros(batch, self.memsize)                  # (B, M)
        for step in range(length):
            keep = valid[:, step, None]                                      # (B, 1): past the end, nothing changes
            new = [cell(x[:, step], (h, c)) for cell, x, h, c in zip(self.cells, sequences, hidden, cells)]
            unimodal = [F.relu(singleton(torch.cat([old, h], dim=1)))       # previous and current hidden state
                        for singleton, old, (h, _) in zip(self.singletons, hidden, new)]
            tau, _ = self.graph(unimodal)                                    # (B, inner)
            both = torch.cat([tau, memory], dim=1)                           # (B, inner + M)
            updated = (torch.sigmoid(self.retain_gate(both)) * memory
                       + torch.sigmoid(self.update_gate(both)) * torch.tanh(self.proposal(tau)))
            memory = torch.where(keep, updated, memory)
            hidden = [torch.where(keep, h, old) for (h, _), old in zip(new, hidden)]
            cells = [torch.where(keep, c, old) for (_, c), old in zip(new, cells)]
        return {"score": self.head(torch.cat([*hidden, memory], dim=1)).squeeze(-1)}


class GraphMFN(AlignedBaseline):
    name = "graph-mfn"
    summary = "Graph-MFN (Zadeh et al. 2018): MFN's memory fed by a Dynamic Fusion Graph (aligned)"
    Config = GraphMFNConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "memsize": 8, "inner_node_dim": 8, "proposal_size": 8,
                      "gamma1_size": 8, "gamma2_size": 8, "out_size": 8, "batch_size": 16}

    presets = PRESETS
    network_class = GraphMFNNetwork
