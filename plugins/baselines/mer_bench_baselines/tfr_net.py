"""TFR-Net: Transformer-based Feature Reconstruction Network (Yuan et al., ACM MM 2021), as MMSA implements it.

Trained on inputs with random missing steps: a fixed share of each training sample's words and audio / vision
frames is dropped once, before training (missing words become [UNK] in text mode "bert", zero vectors in "features";
missing frames become zero). Each modality is projected by a temporal convolution; a self-attention transformer and
two crossmodal transformers (the modality attending to each other one) give three streams per step, concatenated
(B, L, 3d). A temporal transformer and a linear generator reconstruct the clean input from them, and the
reconstruction loss (smooth L1 plus weighted CMD, over the missing steps only, per modality weights) joins the L1
task loss from the second epoch. The prediction comes from a gated fusion: per modality a bidirectional GRU, a
convolutional gate, a tanh projection max-pooled over time; then batch norm and a two-layer classifier.
Hyperparameters per dataset are MMSA's (`config_regression.json`, `tfr_net`).

Only training sees missing data: validation and test inputs are read as given, so the harness's robustness probes
perturb this model's test inputs exactly as every other model's.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mer_bench.data.split import Split
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext
from mer_bench.model_config import bounds
from mer_bench_baselines.common import Inputs, TextInput, length_mask
from mer_bench_baselines.misa import cmd_loss
from mer_bench_baselines.mult import MODALITIES, CrossmodalTransformer
from mer_bench_baselines.positions import offset_sinusoids
from mer_bench_baselines.self_mm import adam_groups, bert_groups
from mer_bench_baselines.training_loop import BaselineModel

UNK_ID = 100             # BERT's [UNK] in bert-base-uncased and bert-base-chinese, as MMSA writes it
CMD_MOMENTS = 3          # moments of TFR-Net's CMD term (MMSA's default n_moments)
RECONSTRUCTION_EPS = 1e-4    # added to the count of missing values the reconstruction loss divides by (MMSA's)


@dataclass
class TFRNetConfig:
    text_dropout: float = 0.2            # dropout on the text states before projection
    conv1d_kernel_sizes: tuple[int, int, int] = (1, 5, 3)  # (text, audio, vision) projection kernels, odd
    dst_feature_dim_nheads: tuple[int, int] = (30, 6)      # (common size d, attention heads), MMSA's name
    nlevels: int = 2                     # crossmodal transformer layers; the self-attention ones get max(., 3)
    attn_dropout: float = 0.2            # attention dropout where text is the source, and in self-attention
    attn_dropout_a: float = 0.1          # attention dropout where audio is the source
    attn_dropout_v: float = 0.0          # attention dropout where vision is the source
    relu_dropout: float = 0.0            # dropout inside the feed-forward blocks
    embed_dropout: float = 0.1           # dropout on the scaled, position-coded transformer inputs
    res_dropout: float = 0.2             # dropout on each residual branch
    fusion_hidden_sizes: tuple[int, int, int] = (36, 20, 48)  # (text, audio, vision) gated-fusion GRU sizes
    fusion_gru_layers: int = 3           # layers of each fusion GRU
    fusion_dropout: float = 0.2          # dropout on each modality's pooled fusion vector (MMSA's fusion_drop)
    cls_hidden_dim: int = 128            # hidden size of the classifier
    cls_dropout: float = 0.1             # dropout inside the classifier
    weight_gen_loss: tuple[float, float, float] = field(default=(1.0, 0.01, 1e-4), metadata=bounds(low=0))
    # ^ (text, audio, vision) weights of the reconstruction losses
    weight_sim_loss: float = field(default=5.0, metadata=bounds(low=0))    # weight of CMD inside each reconstruction
    missing_rates: tuple[float, float, float] = field(default=(0.2, 0.2, 0.2),
                                                      metadata=bounds(low=0, high=1, high_inclusive=False))
    # ^ (text, audio, vision) share of valid steps dropped from the training data
    missing_seed: int = field(default=1111, metadata=bounds(low=0, high=2 ** 32 - 1))  # seed of the missing steps
    batch_size: int = 16                 # training mini-batch
    accumulation: int = 4                # batches per optimiser step (MMSA's update_epochs)
    learning_rate_bert: float = 1e-5     # Adam step size of BERT (text mode "bert")
    learning_rate_other: float = 2e-3    # Adam step size of everything else
    weight_decay_bert: float = 1e-4      # L2 penalty of BERT (biases and LayerNorm excluded)
    weight_decay_other: float = 1e-3     # L2 penalty of everything else
    grad_clip: float = 0.8               # gradient value clipping
    plateau_patience: int = 10           # epochs before the learning rate is cut tenfold (MMSA's `patience`)
    patience: int = 6                    # MMSA's early_stop
    max_epochs: int = 100                # epoch cap (MMSA has none)
    bert_model: str = ""                 # BERT name or folder for text mode "bert"; empty: the dataset's text model


_SHARED = dict(text_dropout=0.2, conv1d_kernel_sizes=(1, 5, 3), attn_dropout=0.2, attn_dropout_a=0.1,
               attn_dropout_v=0.0, res_dropout=0.2, dst_feature_dim_nheads=(30, 6), fusion_hidden_sizes=(36, 20, 48),
               fusion_gru_layers=3, fusion_dropout=0.2, cls_hidden_dim=128, grad_clip=0.8, weight_decay_bert=1e-4,
               weight_decay_other=1e-3, weight_sim_loss=5.0, missing_rates=(0.2, 0.2, 0.2), missing_seed=1111)
PRESETS = {   # MMSA's per-dataset values (no sims-v2 block there: it takes sims's); "synthetic" is ours
    "mosi": dict(_SHARED, relu_dropout=0.2, embed_dropout=0.2, nlevels=3, cls_dropout=0.0, batch_size=24,
                 learning_rate_bert=2e-6, learning_rate_other=1e-3, plateau_patience=5,
                 weight_gen_loss=(5.0, 2.0, 20.0)),
    "mosei": dict(_SHARED, relu_dropout=0.2, embed_dropout=0.2, nlevels=3, cls_dropout=0.0, batch_size=24,
                  learning_rate_bert=1e-5, learning_rate_other=2e-3, plateau_patience=5,
                  weight_gen_loss=(5e-6, 2e-6, 2e-5)),
    "sims": dict(_SHARED, relu_dropout=0.0, embed_dropout=0.1, nlevels=2, cls_dropout=0.1, batch_size=16,
                 learning_rate_bert=1e-5, learning_rate_other=2e-3, plateau_patience=10,
                 weight_gen_loss=(1.0, 0.01, 1e-4)),
}
PRESETS["synthetic"] = dict(PRESETS["sims"], dst_feature_dim_nheads=(12, 2), fusion_hidden_sizes=(16, 8, 8),
                            fusion_gru_layers=1, cls_hidden_dim=32, batch_size=32, accumulation=1, plateau_patience=5,
                            max_epochs=30)


class FeatureExtraction(nn.Module):
    """Per modality, three streams over its steps: self-attention, and attention to each of the other two.

    Projections keep the length (odd kernels, zero padding); a modality already d wide is not projected (MMSA).
    """

    def __init__(self, in_sizes: tuple[int, int, int], config: TFRNetConfig):
        super().__init__()
        dim, heads = config.dst_feature_dim_nheads
        self.text_dropout = nn.Dropout(config.text_dropout)
        self.project = nn.ModuleDict({
            m: nn.Identity() if size == dim else nn.Conv1d(size, dim, kernel_size=k, padding=(k - 1) // 2, bias=False)
            for m, size, k in zip(MODALITIES, in_sizes, config.conv1d_kernel_sizes)})
        source_dropout = {"text": config.attn_dropout, "audio": config.attn_dropout_a, "vision": config.attn_dropout_v}
        transformer = lambda layers, dropout: CrossmodalTransformer(  # noqa: E731
            dim, heads, layers, dropout, config, offset_sinusoids)
        self.crossmodal = nn.ModuleDict({f"{target}<-{source}": transformer(config.nlevels, source_dropout[source])
                                         for target in MODALITIES for source in MODALITIES if source != target})
        self.own = nn.ModuleDict({m: transformer(max(config.nlevels, 3), config.attn_dropout) for m in MODALITIES})

    def forward(self, sequences: dict[str, torch.Tensor], padding: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """(B, L_m, D_m) per modality, padding (B, L_m) True at padded steps -> (B, L_m, 3d) per modality."""
        sequences = dict(sequences, text=self.text_dropout(sequences["text"]))
        projected = {m: self.project[m](x.transpose(1, 2)).transpose(1, 2) for m, x in sequences.items()}
        streams = {}
        for target in MODALITIES:
            x = projected[target]
            reached = [self.crossmodal[f"{target}<-{source}"](x, padding[source], projected[source])
                       for source in MODALITIES if source != target]
            streams[target] = torch.cat([self.own[target](x, padding[target]), *reached], dim=-1)
        return streams


class GatedEncoder(nn.Module):
    """One modality of the gated fusion (MMSA's C_GATE): bidirectional GRU, a convolutional gate over its states,
    a tanh projection of [input, gated states], max-pooled over the valid steps."""

    def __init__(self, in_size: int, hidden_size: int, layers: int, dropout: float):
        super().__init__()
        self.gru = nn.GRU(in_size, hidden_size, num_layers=layers, bidirectional=True, batch_first=True)
        self.gate = nn.Conv1d(2 * hidden_size, 1, kernel_size=3, padding=1)
        self.project = nn.Linear(in_size + 2 * hidden_size, hidden_size)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D), (B,) -> (B, hidden_size)"""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        states, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True, total_length=x.shape[1])  # (B, L, 2H)
        gate = torch.sigmoid(self.gate(states.transpose(1, 2)).transpose(1, 2))                       # (B, L, 1)
        projected = torch.tanh(self.project(torch.cat([x, torch.tanh(states) * gate], dim=-1)))       # (B, L, H)
        valid = length_mask(lengths, x.shape[1]).unsqueeze(-1)
        return self.dropout(projected.masked_fill(~valid, float("-inf")).amax(dim=1))


class TFRNetNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: TFRNetConfig):
        super().__init__()
        c = config
        dim, heads = c.dst_feature_dim_nheads
        self.text_model = TextInput(info, c.bert_model)
        in_sizes = (self.text_model.out_size, *info.feature_dims[1:])
        self.extraction = FeatureExtraction(in_sizes, c)
        # MMSA's "temporal" transformers read a (B, 3d, L) tensor as (sequence, batch, width); here they attend
        # over each sample's steps, 3d wide (see the README's deviations)
        self.temporal = nn.ModuleDict({m: CrossmodalTransformer(3 * dim, heads, max(c.nlevels, 3), c.attn_dropout, c,
                                                                positions=None) for m in MODALITIES})
        self.generators = nn.ModuleDict({m: nn.Linear(3 * dim, size) for m, size in zip(MODALITIES, in_sizes)})
        self.fusion = nn.ModuleDict({m: GatedEncoder(3 * dim, hidden, c.fusion_gru_layers, c.fusion_dropout)
                                     for m, hidden in zip(MODALITIES, c.fusion_hidden_sizes)})
        fused = sum(c.fusion_hidden_sizes)
        self.classifier = nn.Sequential(nn.BatchNorm1d(fused), nn.Linear(fused, c.cls_hidden_dim), nn.LeakyReLU(),
                                        nn.Dropout(c.cls_dropout), nn.Linear(c.cls_hidden_dim, 1))

    def streams(self, inputs: Inputs) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(B, L_m, 3d) per modality, and each modality's valid lengths (B,)."""
        lengths = _lengths(inputs)
        sequences = {"text": self.text_model(inputs), "audio": inputs.audio, "vision": inputs.vision}
        padding = {m: ~length_mask(lengths[m], x.shape[1]) for m, x in sequences.items()}
        return self.extraction(sequences, padding), lengths

    def predict_from(self, streams: dict[str, torch.Tensor], lengths: dict[str, torch.Tensor]) -> torch.Tensor:
        """(B,) scores from the gated fusion of the three modalities' streams."""
        pooled = [self.fusion[m](streams[m], lengths[m]) for m in MODALITIES]                     # (B, H_m) each
        return self.classifier(torch.cat(pooled, dim=-1)).squeeze(-1)

    def reconstructed(self, streams: dict[str, torch.Tensor],
                      lengths: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Each modality's input (B, L_m, D_m) rebuilt from its streams."""
        return {m: self.generators[m](self.temporal[m](x, ~length_mask(lengths[m], x.shape[1])))
                for m, x in streams.items()}

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        streams, lengths = self.streams(inputs)
        return {"score": self.predict_from(streams, lengths)}


def _lengths(inputs: Inputs) -> dict[str, torch.Tensor]:
    return {"text": inputs.text_lengths, "audio": inputs.audio_lengths, "vision": inputs.vision_lengths}


def reconstruction_loss(rebuilt: torch.Tensor, target: torch.Tensor, missing: torch.Tensor,
                        sim_weight: float) -> torch.Tensor:
    """MMSA's RECLoss: smooth L1 (summed) plus `sim_weight` x CMD, both on the missing steps only (others zeroed)
    and divided by the number of missing values. rebuilt, target (B, L, D); missing (B, L) bool."""
    mask = missing.unsqueeze(-1).expand_as(rebuilt).to(rebuilt.dtype)                          # (B, L, D)
    rebuilt, target = rebuilt * mask, target * mask
    count = mask.sum() + RECONSTRUCTION_EPS
    flat = lambda x: x.reshape(-1, x.shape[-1])  # noqa: E731
    return (F.smooth_l1_loss(rebuilt, target, reduction="sum")
            + sim_weight * cmd_loss(flat(rebuilt), flat(target), CMD_MOMENTS)) / count


def kept_steps(valid: torch.Tensor, rate: float, seed: int) -> torch.Tensor:
    """(N, L) bool: the valid steps that stay, each dropped with probability `rate`.

    Drawn as MMSA draws them (NumPy's legacy generator seeded with `seed`, one uniform per padded step, kept when
    above the rate), so the same data gives MMSA's masks; a private generator leaves NumPy's global state alone.
    """
    uniform = np.random.RandomState(seed).uniform(size=tuple(valid.shape))
    return torch.from_numpy(uniform > rate).to(valid.device) & valid


def missing_masks(inputs: Inputs, rates: tuple[float, float, float], seed: int) -> dict[str, torch.Tensor]:
    """(N, L_m) bool per modality, True at the valid steps dropped from the data; text keeps its first and last
    token ([CLS] and [SEP], as MMSA)."""
    masks = {}
    text = inputs.text if inputs.text is not None else inputs.text_ids[:, 0]        # (N, Lt, ...) either way
    steps = {"text": text.shape[1], "audio": inputs.audio.shape[1], "vision": inputs.vision.shape[1]}
    for (m, lengths), rate in zip(_lengths(inputs).items(), rates):
        length = steps[m]
        valid = length_mask(lengths, length)
        kept = kept_steps(valid, rate, seed)
        if m == "text":
            rows = torch.arange(len(lengths), device=valid.device)
            kept[rows, 0] = True
            kept[rows, lengths - 1] = True
        masks[m] = valid & ~kept
    return masks


def with_missing_steps(inputs: Inputs, missing: dict[str, torch.Tensor]) -> Inputs:
    """The batch with its missing steps removed: frames and word features zeroed, token ids set to [UNK]."""
    zeroed = lambda x, m: x * (~m).unsqueeze(-1).to(x.dtype)  # noqa: E731
    changes: dict[str, Any] = {"audio": zeroed(inputs.audio, missing["audio"]),
                               "vision": zeroed(inputs.vision, missing["vision"])}
    if inputs.text is not None:
        changes["text"] = zeroed(inputs.text, missing["text"])
    if inputs.text_ids is not None:
        ids = inputs.text_ids.clone()                                                        # (B, 3, Lt)
        ids[:, 0] = torch.where(missing["text"], torch.full_like(ids[:, 0], UNK_ID), ids[:, 0])
        changes["text_ids"] = ids
    return dataclasses.replace(inputs, **changes)


class TFRNet(BaselineModel):
    name = "tfr-net"
    summary = "TFR-Net (Yuan et al. 2021): transformer features reconstructed from randomly missing steps"
    Config = TFRNetConfig
    text_modes = ("features", "bert")
    smoke_settings = {"dst_feature_dim_nheads": (6, 2), "nlevels": 1, "fusion_hidden_sizes": (4, 4, 4),
                      "fusion_gru_layers": 1, "cls_hidden_dim": 8, "batch_size": 16, "accumulation": 1}
    presets = PRESETS
    network_class = TFRNetNetwork

    @classmethod
    def check_config(cls, config: TFRNetConfig) -> None:
        dim, heads = config.dst_feature_dim_nheads
        if dim % heads:
            raise UserError(f"Setting 'dst_feature_dim_nheads' of model 'tfr-net': the heads ({heads}) must divide "
                            f"the common size d ({dim}).")
        if any(k % 2 == 0 for k in config.conv1d_kernel_sizes):
            raise UserError(f"Setting 'conv1d_kernel_sizes' of model 'tfr-net' must be odd, so the projection keeps "
                            f"each sequence's length (got {config.conv1d_kernel_sizes}).")

    def __init__(self, config: TFRNetConfig, info: DataInfo):
        self.check_config(config)
        super().__init__(config, info)
        self.missing: dict[str, torch.Tensor] | None = None    # (N, L_m) per modality, drawn in on_fit_start

    def parameter_groups(self) -> list[dict[str, Any]]:
        c, network = self.config, self.network
        text = {id(p) for p in network.text_model.parameters()}
        return adam_groups([*bert_groups(network.text_model, c.learning_rate_bert, c.weight_decay_bert),
                            ([p for p in network.parameters() if id(p) not in text], c.learning_rate_other,
                             c.weight_decay_other)])

    def on_fit_start(self, train: Inputs, ctx: FitContext) -> None:
        self.missing = missing_masks(train, self.config.missing_rates, self.config.missing_seed)

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """In training: the score from the inputs with their missing steps, and the weighted reconstruction loss of
        the clean ones; otherwise the score from the inputs as given."""
        if not (self.network.training and self.missing is not None):
            return self.network(inputs)
        missing = {m: mask[inputs.index] for m, mask in self.missing.items()}
        streams, lengths = self.network.streams(with_missing_steps(inputs, missing))
        rebuilt = self.network.reconstructed(streams, lengths)
        targets = {"text": self.network.text_model(inputs), "audio": inputs.audio, "vision": inputs.vision}
        weighted = sum(weight * reconstruction_loss(rebuilt[m], targets[m], missing[m], self.config.weight_sim_loss)
                       for m, weight in zip(MODALITIES, self.config.weight_gen_loss))
        return {"score": self.network.predict_from(streams, lengths), "reconstruction_loss": weighted}

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """L1 on the label; from the second epoch plus the reconstruction loss (MMSA's schedule)."""
        loss = F.l1_loss(outputs["score"], inputs.label)
        return loss + outputs["reconstruction_loss"] if epoch > 1 else loss

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        super().fit(train, valid, ctx)
        self.missing = None     # training-time state only
