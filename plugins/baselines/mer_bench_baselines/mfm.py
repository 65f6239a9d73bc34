"""MFM: Multimodal Factorization Model (Tsai et al., ICLR 2019).

The representation is factorised into one multimodal discriminative factor and one generative factor per modality.
The discriminative factor z_y comes from an MFN encoder over all three sequences (its final LSTM states and memory
through a linear); each modality-specific factor z_m from an LSTM over that modality alone. The score is predicted
from f_y = MLP(z_y) only; each modality's sequence is reconstructed by an LSTM decoder from [f_y, f_m]. Training
minimises L1 on the label + the weighted reconstruction errors + lda_mmd x the maximum mean discrepancy between each
factor and samples of a standard normal (the Wasserstein-autoencoder prior term of the paper). Needs aligned input
(see `aligned.py`). Hyperparameters per dataset are MMSA's (`config_regression.json`, `mfm`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.model import DataInfo
from mer_bench_baselines.aligned import AlignedBaseline, aligned_steps
from mer_bench_baselines.common import Inputs, length_mask, masked_mse
from mer_bench_baselines.mfn import MFNNetwork


@dataclass
class MFMConfig:
    hidden_dims: tuple[int, int, int] = (64, 16, 64)   # MFN encoder: (text, audio, vision) LSTM cell sizes
    memsize: int = 128                                 # MFN encoder: multi-view memory size
    att1_size: int = 32                                # MFN encoder: its four small networks (see mfn.py)
    att1_dropout: float = 0.5
    att2_size: int = 64
    att2_dropout: float = 0.5
    gamma1_size: int = 64
    gamma1_dropout: float = 0.7
    gamma2_size: int = 256
    gamma2_dropout: float = 0.0
    zy_size: int = 48                                  # multimodal discriminative factor z_y
    z_sizes: tuple[int, int, int] = (256, 32, 80)      # modality-specific generative factors z_l, z_a, z_v
    fy_size: int = 48                                  # f_y = MLP(z_y), read by the predictor and every decoder
    f_sizes: tuple[int, int, int] = (256, 80, 48)      # f_m = MLP(z_m)
    zy_dropout: float = 0.5                            # inside the z_y -> f_y MLP
    z_dropouts: tuple[float, float, float] = (0.0, 0.7, 0.0)   # inside the z_m -> f_m MLPs
    fy_dropout: float = 0.7                            # inside the f_y -> score MLP
    lda_mmd: float = 200.0                             # weight of the MMD prior term
    lda_x: tuple[float, float, float] = (0.5, 0.01, 0.01)   # weights of the text, audio, vision reconstructions
    batch_size: int = 128                              # training mini-batch
    learning_rate: float = 2e-3                        # Adam step size
    weight_decay: float = 5e-3                         # Adam L2 penalty
    patience: int = 8                                  # MMSA's early_stop
    max_epochs: int = 100                              # epoch cap (MMSA has none)


def _mmsa(hidden, mem, nn1, nn2, gamma1, gamma2, z, f, drops, lda_mmd, lda_x, batch, lr, decay):
    """A preset from MMSA's config: z and f as (y, l, a, v) sizes, drops as (zy, zl, za, zv, fy), networks as
    (shapes, drop); MMSA's outConfig is not used by MFM (its MFN's output layers are never called)."""
    return dict(hidden_dims=hidden, memsize=mem, att1_size=nn1[0], att1_dropout=nn1[1], att2_size=nn2[0],
                att2_dropout=nn2[1], gamma1_size=gamma1[0], gamma1_dropout=gamma1[1], gamma2_size=gamma2[0],
                gamma2_dropout=gamma2[1], zy_size=z[0], z_sizes=z[1:], fy_size=f[0], f_sizes=f[1:],
                zy_dropout=drops[0], z_dropouts=drops[1:4], fy_dropout=drops[4], lda_mmd=lda_mmd, lda_x=lda_x,
                batch_size=batch, learning_rate=lr, weight_decay=decay)


PRESETS = {   # MMSA's per-dataset values; it has none for SIMS v2, which takes SIMS's. "synthetic" is ours (2 cores)
    "mosi": _mmsa((128, 32, 128), 64, (32, 0.7), (64, 0.0), (32, 0.0), (64, 0.5), (80, 64, 80, 80),
                  (64, 32, 16, 64), (0.5, 0.5, 0.7, 0.5, 0.0), 100.0, (0.5, 0.01, 0.5), 64, 2e-3, 1e-3),
    "mosei": _mmsa((256, 32, 256), 64, (1278, 0.5), (32, 0.7), (64, 0.5), (128, 0.2), (32, 256, 80, 80),
                   (16, 32, 80, 32), (0.2, 0.7, 0.7, 0.7, 0.2), 10.0, (5.0, 2.0, 5.0), 64, 1e-3, 5e-4),
    "sims": _mmsa((64, 16, 64), 128, (32, 0.5), (64, 0.5), (64, 0.7), (256, 0.0), (48, 256, 32, 80),
                  (48, 256, 80, 48), (0.5, 0.0, 0.7, 0.0, 0.7), 200.0, (0.5, 0.01, 0.01), 128, 2e-3, 5e-3),
    "synthetic": {**_mmsa((32, 16, 16), 32, (32, 0.2), (32, 0.0), (32, 0.2), (32, 0.2), (16, 16, 8, 8),
                          (16, 16, 8, 8), (0.2, 0.2, 0.2, 0.2, 0.0), 10.0, (0.5, 0.01, 0.01), 32, 2e-3, 0.0),
                  "max_epochs": 20},
}
PRESETS["mosei-aligned"] = PRESETS["mosei"]     # mosi-aligned takes "mosi" and sims-v2 "sims" through the label style


def factor_mlp(in_size: int, out_size: int, dropout: float) -> nn.Sequential:
    """Linear, ReLU, dropout, linear, ReLU: from a factor z to its f. (B, in) -> (B, out)"""
    return nn.Sequential(nn.Linear(in_size, out_size), nn.ReLU(), nn.Dropout(dropout),
                         nn.Linear(out_size, out_size), nn.ReLU())


def gaussian_kernel(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """(N, Z), (M, Z) -> (N, M): exp(-mean squared difference / Z), MMSA's kernel (the mean is divided by Z again)."""
    return torch.exp(-(x.unsqueeze(1) - y.unsqueeze(0)).pow(2).mean(2) / x.shape[1])


def mmd_to_normal(z: torch.Tensor) -> torch.Tensor:
    """Maximum mean discrepancy between the rows of z (B, Z) and as many draws from a standard normal."""
    prior = torch.randn(z.shape).to(z.device)    # drawn on the CPU generator, as MMSA, so seeds give the same draws
    return gaussian_kernel(prior, prior).mean() + gaussian_kernel(z, z).mean() - 2.0 * gaussian_kernel(prior, z).mean()


class SequenceEncoder(nn.Module):
    """An LSTM over one modality; its hidden state at each sample's last step through a linear: z_m (B, Z)."""

    def __init__(self, in_size: int, z_size: int):
        super().__init__()
        self.cell = nn.LSTMCell(in_size, z_size)
        self.out = nn.Linear(z_size, z_size)

    def forward(self, x: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        hidden = cell = x.new_zeros(x.shape[0], self.cell.hidden_size)
        for step in range(x.shape[1]):
            keep = valid[:, step, None]                                   # (B, 1): past the end, nothing changes
            new_hidden, new_cell = self.cell(x[:, step], (hidden, cell))
            hidden, cell = torch.where(keep, new_hidden, hidden), torch.where(keep, new_cell, cell)
        return self.out(hidden)


class SequenceDecoder(nn.Module):
    """An LSTM fed [f_y, f_m] at the first step and its own hidden state after; each state through a linear:
    the reconstructed sequence (B, L, D)."""

    def __init__(self, in_size: int, out_size: int):
        super().__init__()
        self.cell = nn.LSTMCell(in_size, in_size)
        self.out = nn.Linear(in_size, out_size)

    def forward(self, code: torch.Tensor, length: int) -> torch.Tensor:
        hidden = cell = torch.zeros_like(code)
        states, step_input = [], code
        for _ in range(length):
            hidden, cell = self.cell(step_input, (hidden, cell))
            states.append(hidden)
            step_input = hidden
        return self.out(torch.stack(states, dim=1))


class MFMNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MFMConfig):
        super().__init__()
        self.encoders = nn.ModuleList(SequenceEncoder(dim, z) for dim, z in zip(info.feature_dims, config.z_sizes))
        self.decoders = nn.ModuleList(SequenceDecoder(config.fy_size + f, dim)
                                      for dim, f in zip(info.feature_dims, config.f_sizes))
        self.mfn = MFNNetwork(info, config, with_head=False)
        self.to_zy = nn.Linear(self.mfn.final_size, config.zy_size)
        self.zy_to_fy = factor_mlp(config.zy_size, config.fy_size, config.zy_dropout)
        self.z_to_f = nn.ModuleList(factor_mlp(z, f, drop)
                                    for z, f, drop in zip(config.z_sizes, config.f_sizes, config.z_dropouts))
        self.head = nn.Sequential(nn.Linear(config.fy_size, config.fy_size), nn.ReLU(),
                                  nn.Dropout(config.fy_dropout), nn.Linear(config.fy_size, 1))
        self.lda_x = config.lda_x

    def forward(self, inputs: Inputs, generate: bool = False) -> dict[str, torch.Tensor]:
        """The score from f_y; with `generate`, also the weighted reconstruction error and the MMD sum (training)."""
        zy = self.to_zy(self.mfn.final_state(inputs))                    # (B, Zy)
        fy = self.zy_to_fy(zy)
        outputs = {"score": self.head(fy).squeeze(-1)}
        if generate:
            sequences = (inputs.text, inputs.audio, inputs.vision)       # (B, L, D*) each
            valid = length_mask(aligned_steps(inputs), inputs.text.shape[1])
            factors = [encoder(x, valid) for encoder, x in zip(self.encoders, sequences)]     # z_l, z_a, z_v
            rebuilt = [decoder(torch.cat([fy, to_f(z)], dim=1), x.shape[1])
                       for decoder, to_f, z, x in zip(self.decoders, self.z_to_f, factors, sequences)]
            outputs["reconstruction"] = sum(weight * masked_mse(r, x, valid)
                                            for weight, r, x in zip(self.lda_x, rebuilt, sequences))
            outputs["mmd"] = sum(mmd_to_normal(z) for z in (*factors, zy))
        return outputs


class MFM(AlignedBaseline):
    name = "mfm"
    summary = "Multimodal Factorization Model (Tsai et al. 2019): MFN factor plus generative factors (aligned)"
    Config = MFMConfig
    smoke_settings = {"hidden_dims": (8, 4, 4), "memsize": 8, "att1_size": 8, "att2_size": 8, "gamma1_size": 8,
                      "gamma2_size": 8, "zy_size": 4, "z_sizes": (4, 4, 4), "fy_size": 4, "f_sizes": (4, 4, 4),
                      "batch_size": 16}

    presets = PRESETS
    network_class = MFMNetwork

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return self.network(inputs, generate=self.network.training)

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """L1 on the label + weighted reconstructions + lda_mmd x MMD (MMSA's sum)."""
        return (F.l1_loss(outputs["score"], inputs.label) + outputs["reconstruction"]
                + self.config.lda_mmd * outputs["mmd"])
