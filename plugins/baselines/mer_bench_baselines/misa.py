"""MISA: Modality-Invariant and -Specific Representations (Hazarika et al., ACM MM 2020).

Each modality's utterance vector (mean-pooled BERT states for text; a two-stage bidirectional LSTM for audio and
vision) is projected to a common size and split into a shared (modality-invariant) and a private (modality-specific)
code. A one-layer transformer over the six codes feeds the regressor. Training adds three regularisers to the task
loss: central moment discrepancy between the shared codes (similarity), soft orthogonality between shared and private
codes (difference), and reconstruction of each projected vector from its two codes. Hyperparameters per dataset are
MMSA's (`config_regression.json`, `misa`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mer_bench.model import DataInfo
from mer_bench_baselines.common import Inputs, TextInput, masked_mean
from mer_bench_baselines.training_loop import BaselineModel, LoopSettings

MODALITIES = ("text", "audio", "vision")
CMD_MOMENTS = 5     # central moments matched by the similarity loss (the paper's K)


@dataclass
class MISAConfig:
    hidden_size: int = 128          # size of the projected, shared and private codes
    dropout: float = 0.0            # dropout in the regressor
    diff_weight: float = 0.3        # weight of the difference (orthogonality) loss
    sim_weight: float = 1.0         # weight of the similarity (CMD) loss
    recon_weight: float = 0.8       # weight of the reconstruction loss
    batch_size: int = 64            # training mini-batch
    accumulation: int = 2           # batches per optimiser step (MMSA's update_epochs)
    learning_rate: float = 1e-4     # Adam step size, BERT included in text mode "bert"
    weight_decay: float = 5e-5      # Adam L2 penalty
    grad_clip: float = 1.0          # gradient value clipping
    patience: int = 8               # MMSA's early_stop
    max_epochs: int = 100           # epoch cap (MMSA has none)
    bert_model: str = ""            # BERT name or folder for text mode "bert"; empty: the dataset's text model


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(hidden_size=128, dropout=0.2, diff_weight=0.1, sim_weight=0.3, recon_weight=1.0, batch_size=16,
                 learning_rate=1e-4, weight_decay=0.0, grad_clip=0.8),
    "mosei": dict(hidden_size=128, dropout=0.5, diff_weight=0.3, sim_weight=0.8, recon_weight=1.0, batch_size=64,
                  learning_rate=1e-4, weight_decay=5e-5, grad_clip=0.8),
    "sims": dict(hidden_size=128, dropout=0.0, diff_weight=0.3, sim_weight=1.0, recon_weight=0.8, batch_size=64,
                 learning_rate=1e-4, weight_decay=5e-5, grad_clip=1.0),
    "sims-v2": dict(hidden_size=64, dropout=0.5, diff_weight=0.5, sim_weight=1.0, recon_weight=0.5, batch_size=16,
                    learning_rate=1e-4, weight_decay=5e-5, grad_clip=0.8),
    "synthetic": dict(hidden_size=64, dropout=0.2, diff_weight=0.3, sim_weight=1.0, recon_weight=0.8,
                      batch_size=32, accumulation=1, learning_rate=1e-3, weight_decay=0.0, grad_clip=1.0,
                      max_epochs=30),
}


class TwoStageBiLSTM(nn.Module):
    """MISA's audio / vision encoder: biLSTM, layer norm on its outputs, a second biLSTM; both final states."""

    def __init__(self, size: int):
        super().__init__()
        self.first = nn.LSTM(size, size, bidirectional=True, batch_first=True)
        self.norm = nn.LayerNorm(2 * size)
        self.second = nn.LSTM(2 * size, size, bidirectional=True, batch_first=True)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D), (B,) -> (B, 4D): final states of both directions of both LSTMs."""
        cpu_lengths = lengths.cpu()
        steps, (first_final, _) = self.first(pack_padded_sequence(x, cpu_lengths, batch_first=True,
                                                                  enforce_sorted=False))
        steps, _ = pad_packed_sequence(steps, batch_first=True, total_length=x.shape[1])     # (B, L, 2D)
        _, (second_final, _) = self.second(pack_padded_sequence(self.norm(steps), cpu_lengths, batch_first=True,
                                                                enforce_sorted=False))
        return torch.cat([*first_final, *second_final], dim=-1)


def projection(in_size: int, out_size: int) -> nn.Module:
    return nn.Sequential(nn.Linear(in_size, out_size), nn.ReLU(), nn.LayerNorm(out_size))


class MISANetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MISAConfig):
        super().__init__()
        hidden = config.hidden_size
        _, audio_in, vision_in = info.feature_dims
        self.text_input = TextInput(info, config.bert_model)
        self.audio_rnn, self.vision_rnn = TwoStageBiLSTM(audio_in), TwoStageBiLSTM(vision_in)
        self.project = nn.ModuleDict({"text": projection(self.text_input.out_size, hidden),
                                      "audio": projection(4 * audio_in, hidden),
                                      "vision": projection(4 * vision_in, hidden)})
        self.private = nn.ModuleDict({m: nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid()) for m in MODALITIES})
        self.shared = nn.Sequential(nn.Linear(hidden, hidden), nn.Sigmoid())    # one encoder for all modalities
        self.reconstruct = nn.ModuleDict({m: nn.Linear(hidden, hidden) for m in MODALITIES})
        self.fusion_transformer = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(d_model=hidden, nhead=2, batch_first=True), num_layers=1)
        self.regressor = nn.Sequential(nn.Linear(6 * hidden, 3 * hidden), nn.Dropout(config.dropout), nn.ReLU(),
                                       nn.Linear(3 * hidden, 1))

    def utterances(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        text = masked_mean(self.text_input(inputs), inputs.text_lengths)         # (B, Dt)
        audio = self.audio_rnn(inputs.audio, inputs.audio_lengths)               # (B, 4 Da)
        vision = self.vision_rnn(inputs.vision, inputs.vision_lengths)           # (B, 4 Dv)
        return {"text": text, "audio": audio, "vision": vision}

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        out = {}
        for modality, utterance in self.utterances(inputs).items():
            projected = self.project[modality](utterance)                        # (B, H)
            private, shared = self.private[modality](projected), self.shared(projected)
            out[f"projected_{modality}"], out[f"private_{modality}"] = projected, private
            out[f"shared_{modality}"] = shared
            out[f"reconstructed_{modality}"] = self.reconstruct[modality](private + shared)
        codes = torch.stack([out[f"{kind}_{m}"] for kind in ("private", "shared") for m in MODALITIES], dim=1)
        fused = self.fusion_transformer(codes).flatten(1)                        # (B, 6, H) -> (B, 6H)
        out["score"] = self.regressor(fused).squeeze(-1)
        return out


def difference_loss(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Soft orthogonality: mean squared correlation between the centred, row-normalised codes of a batch."""
    a, b = a - a.mean(dim=0, keepdim=True), b - b.mean(dim=0, keepdim=True)
    a = a / (a.norm(dim=1, keepdim=True).detach() + 1e-6)
    b = b / (b.norm(dim=1, keepdim=True).detach() + 1e-6)
    return (a.t() @ b).pow(2).mean()


def cmd_loss(a: torch.Tensor, b: torch.Tensor, moments: int = CMD_MOMENTS) -> torch.Tensor:
    """Central moment discrepancy (Zellinger et al. 2017) between two (B, H) code batches in [0, 1]."""
    mean_a, mean_b = a.mean(dim=0), b.mean(dim=0)
    loss = (mean_a - mean_b).norm()
    centred_a, centred_b = a - mean_a, b - mean_b
    for k in range(2, moments + 1):
        loss = loss + (centred_a.pow(k).mean(dim=0) - centred_b.pow(k).mean(dim=0)).norm()
    return loss


class MISA(BaselineModel):
    name = "misa"
    summary = "MISA (Hazarika et al. 2020): modality-invariant and -specific codes fused by a transformer"
    Config = MISAConfig
    text_modes = ("features", "bert")
    smoke_settings = {"hidden_size": 8, "batch_size": 16, "accumulation": 1}

    presets = PRESETS
    network_class = MISANetwork

    def loop_settings(self) -> LoopSettings:
        # MSE is MISA's task loss (paper, and MMSA's trainer), so it also selects the epoch.
        return dataclasses.replace(super().loop_settings(), valid_loss="mse")

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        c = self.config
        task = F.mse_loss(outputs["score"], inputs.label)
        shared = [outputs[f"shared_{m}"] for m in MODALITIES]
        private = [outputs[f"private_{m}"] for m in MODALITIES]
        similarity = (cmd_loss(shared[0], shared[1]) + cmd_loss(shared[0], shared[2])
                      + cmd_loss(shared[1], shared[2])) / 3
        difference = sum(difference_loss(p, s) for p, s in zip(private, shared)) \
            + difference_loss(private[1], private[0]) + difference_loss(private[1], private[2]) \
            + difference_loss(private[0], private[2])
        reconstruction = sum(F.mse_loss(outputs[f"reconstructed_{m}"], outputs[f"projected_{m}"])
                             for m in MODALITIES) / 3
        return task + c.diff_weight * difference + c.sim_weight * similarity + c.recon_weight * reconstruction
