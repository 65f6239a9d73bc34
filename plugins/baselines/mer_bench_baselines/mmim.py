"""MMIM: hierarchical mutual information maximisation (Han et al., EMNLP 2021).

Text (BERT), audio and vision are encoded to one vector each and fused by an MLP. Two kinds of mutual information
(MI) bounds are maximised besides the task: between modality pairs (text-vision, text-audio) a variational lower
bound (MMILB: a Gaussian log-likelihood of one modality given the other, plus an entropy estimate of the positive and
negative samples), and between the fused vector and each modality a contrastive (CPC / InfoNCE) bound. Every epoch
has two stages, as MMSA trains it: first the MMILB estimators alone maximise their likelihood, then the rest of the
network minimises task loss + alpha NCE - beta (likelihood + entropy). Hyperparameters per dataset are MMSA's
(`config_regression.json`, `mmim`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext
from mer_bench.model_config import bounds
from mer_bench.training import batch_indices
from mer_bench_baselines.common import Inputs, LSTMEncoder, TextInput, masked_mean
from mer_bench_baselines.training_loop import BaselineModel, LoopSettings, trainable

PAIRS = ("tv", "ta", "va")      # MMILB pairs (x predicts y): text-vision, text-audio, and vision-audio if add_va


@dataclass
class MMIMConfig:
    d_vh: int = field(default=16, metadata=bounds(low=1))   # vision LSTM state size
    d_ah: int = field(default=16, metadata=bounds(low=1))   # audio LSTM state size
    d_vout: int = 16                     # vision vector size
    d_aout: int = 16                     # audio vector size
    d_prjh: int = field(default=128, metadata=bounds(low=1))   # fusion MLP hidden size (the fused vector)
    n_layer: int = field(default=1, metadata=bounds(low=1))   # LSTM layers
    bidirectional: bool = True           # bidirectional audio / vision LSTMs
    dropout_a: float = 0.1               # audio LSTM dropout (between layers only, as MMSA: unused with one layer)
    dropout_v: float = 0.1               # vision LSTM dropout (likewise)
    dropout_prj: float = 0.1             # dropout before the fusion MLP
    cpc_layers: int = 1                  # layers of each CPC predictor
    add_va: bool = False                 # also bound MI between vision and audio
    mem_size: int = 1                    # past batches kept for the entropy estimate
    alpha: float = field(default=0.1, metadata=bounds(low=0))   # weight of the CPC (NCE) loss
    beta: float = field(default=0.1, metadata=bounds(low=0))    # weight of the MMILB likelihood and entropy
    mmilb_batch_fraction: float = field(default=1.0, metadata=bounds(low=0, low_inclusive=False, high=1))
    # ^ share of an epoch's batches the MMILB stage trains on (MMSA: half on MOSEI)
    batch_size: int = 32                 # training mini-batch
    lr_main: float = 1e-3                # Adam step size of the encoders, CPC and fusion
    weight_decay_main: float = 1e-4      # their L2 penalty
    lr_bert: float = 5e-5                # Adam step size of BERT (text mode "bert")
    weight_decay_bert: float = 1e-4      # BERT's L2 penalty
    lr_mmilb: float = 1e-3               # Adam step size of the MMILB estimators (their own optimiser)
    weight_decay_mmilb: float = 1e-4     # their L2 penalty
    max_grad_norm: float = field(default=1.0, metadata=bounds(low=0, low_inclusive=False))  # MMSA's grad_clip
    plateau_patience: int = 20           # MMSA's `when`: epochs before the main learning rates are halved
    text_pooling: str = "mean"           # text vector: "cls" (BERT's first token, the paper's) or masked "mean"
    patience: int = 8                    # MMSA's early_stop
    max_epochs: int = 100                # epoch cap (MMSA has none)
    bert_model: str = ""                 # BERT name or folder for text mode "bert"; empty: the dataset's text model


_MMSA = {}      # MMSA's values are the same for mosi, mosei and sims: the dataclass defaults
PRESETS = {   # MMSA's per-dataset values ("sims-v2": MMSA has no simsv2 block, so SIMS's); "synthetic" is ours
    "mosi": _MMSA, "mosei": dict(_MMSA, mmilb_batch_fraction=0.5), "sims": _MMSA, "sims-v2": _MMSA,
    "synthetic": dict(d_prjh=64, max_epochs=30),
}


class RNNEncoder(nn.Module):
    """MMIM's audio / vision encoder: a (bi)LSTM over the valid steps, its final states through a linear layer."""

    def __init__(self, in_size: int, hidden_size: int, out_size: int, layers: int, dropout: float,
                 bidirectional: bool):
        super().__init__()
        self.lstm = LSTMEncoder(in_size, hidden_size, layers, dropout, bidirectional)
        self.dropout = nn.Dropout(dropout if layers > 1 else 0.0)
        self.linear = nn.Linear(self.lstm.out_size, out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, out_size)"""
        return self.linear(self.dropout(self.lstm(x, lengths)))


class MMILB(nn.Module):
    """Lower bound of I(x; y): the log-likelihood of y under a Gaussian whose mean and log-variance x predicts, and
    an entropy projection of y for the class-conditional entropy estimate."""

    def __init__(self, x_size: int, y_size: int):
        super().__init__()
        self.mlp_mu = nn.Sequential(nn.Linear(x_size, y_size), nn.ReLU(), nn.Linear(y_size, y_size))
        self.mlp_logvar = nn.Sequential(nn.Linear(x_size, y_size), nn.ReLU(), nn.Linear(y_size, y_size))
        self.entropy_prj = nn.Sequential(nn.Linear(y_size, y_size // 4), nn.Tanh())

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, Dx), y (B, Dy) -> () batch mean of the log-likelihood (without its constant and log-variance
        terms, as the authors' code and MMSA)."""
        mu, logvar = self.mlp_mu(x), self.mlp_logvar(x)                             # (B, Dy) each
        return (-(mu - y) ** 2 / 2.0 / torch.exp(logvar)).sum(dim=-1).mean()


class CPC(nn.Module):
    """Contrastive predictive coding: InfoNCE of predicting x from the fused vector, other samples as negatives."""

    def __init__(self, x_size: int, y_size: int, layers: int):
        super().__init__()
        stack: list[nn.Module] = [nn.Linear(y_size, x_size)]
        for _ in range(layers - 1):
            stack += [nn.Tanh(), nn.Linear(x_size, x_size)]
        self.net = nn.Sequential(*stack) if layers > 1 else stack[0]

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x (B, Dx), y (B, Dy) -> () NCE loss (lower is more MI)."""
        predicted = self.net(y)
        predicted = predicted / predicted.norm(dim=1, keepdim=True)
        x = x / x.norm(dim=1, keepdim=True)
        positive = (x * predicted).sum(dim=-1)                                      # (B,)
        negative = torch.logsumexp(x @ predicted.t(), dim=-1)                       # (B,)
        return -(positive - negative).mean()


class FusionMLP(nn.Module):
    """Dropout, two tanh layers (the fused vector), one output."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.drop = nn.Dropout(dropout)
        self.linear_1, self.linear_2 = nn.Linear(in_size, hidden_size), nn.Linear(hidden_size, hidden_size)
        self.linear_3 = nn.Linear(hidden_size, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, in_size) -> fused (B, hidden_size), score (B,)"""
        fused = torch.tanh(self.linear_2(torch.tanh(self.linear_1(self.drop(x)))))
        return fused, self.linear_3(fused).squeeze(-1)


class MMIMNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MMIMConfig):
        super().__init__()
        c = config
        _, audio_in, vision_in = info.feature_dims
        self.text_pooling = c.text_pooling
        self.text_model = TextInput(info, c.bert_model)
        text_out = self.text_model.out_size
        self.visual_enc = RNNEncoder(vision_in, c.d_vh, c.d_vout, c.n_layer, c.dropout_v, c.bidirectional)
        self.acoustic_enc = RNNEncoder(audio_in, c.d_ah, c.d_aout, c.n_layer, c.dropout_a, c.bidirectional)
        sizes = {"t": text_out, "a": c.d_aout, "v": c.d_vout}
        pairs = PAIRS if c.add_va else PAIRS[:2]
        self.mmilb = nn.ModuleDict({pair: MMILB(sizes[pair[0]], sizes[pair[1]]) for pair in pairs})
        self.cpc = nn.ModuleDict({m: CPC(sizes[m], c.d_prjh, c.cpc_layers) for m in "tva"})
        self.fusion = FusionMLP(sum(sizes.values()), c.d_prjh, c.dropout_prj)
        self._init_weights()

    def _init_weights(self) -> None:
        """Xavier-normal for every matrix outside BERT, as MMSA's trainer initialises them before training."""
        for name, parameter in self.named_parameters():
            if parameter.dim() > 1 and not name.startswith("text_model."):
                nn.init.xavier_normal_(parameter)

    def encode(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """The three modality vectors: t (B, Dt), a (B, d_aout), v (B, d_vout)."""
        words = self.text_model(inputs)                                              # (B, Lt, Dt)
        text = words[:, 0] if self.text_pooling == "cls" else masked_mean(words, inputs.text_lengths)
        return {"t": text, "a": self.acoustic_enc(inputs.audio, inputs.audio_lengths),
                "v": self.visual_enc(inputs.vision, inputs.vision_lengths)}

    def likelihood(self, vectors: dict[str, torch.Tensor]) -> torch.Tensor:
        """() sum of the MMILB log-likelihoods over the pairs."""
        return sum(bound(vectors[pair[0]], vectors[pair[1]]) for pair, bound in self.mmilb.items())

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        vectors = self.encode(inputs)
        fused, score = self.fusion(torch.cat([vectors["t"], vectors["a"], vectors["v"]], dim=-1))
        nce = sum(self.cpc[m](vectors[m], fused) for m in "tva")
        return {"score": score, "lld": self.likelihood(vectors), "nce": nce, "fused": fused,
                **{f"vector_{m}": vector for m, vector in vectors.items()}}


class EntropyMemory:
    """The entropy term of MMILB: the (log-det) spread of the projected positive and negative samples of this batch
    and the last `size` batches. Kept per epoch, as MMSA (its memory starts empty each epoch)."""

    def __init__(self, size: int):
        self.size, self.batches = size, 0
        self.history: dict[str, dict[str, list[torch.Tensor]]] = {}

    def entropy(self, network: MMIMNetwork, outputs: dict[str, torch.Tensor], label: torch.Tensor) -> torch.Tensor:
        """() sum over the pairs of 0.25 (log det Sigma_pos + log det Sigma_neg) of this batch's projected samples
        with the remembered ones (0 for the first mem_size + 1 batches of an epoch), then remember this batch."""
        total = label.new_zeros(())
        for pair, bound in network.mmilb.items():
            projected = bound.entropy_prj(outputs[f"vector_{pair[1]}"])              # (B, Dy / 4)
            current = {"pos": projected[label > 0], "neg": projected[label < 0]}
            if self.batches > self.size:         # MMSA adds the term from the batch after the memory fills
                spreads = [_log_det_spread(torch.cat(self.history[pair][k] + [current[k]])) for k in ("pos", "neg")]
                total = total + 0.25 * (spreads[0] + spreads[1])
            self._remember(pair, {k: v.detach() for k, v in current.items()})
        self.batches += 1
        return total

    def _remember(self, pair: str, current: dict[str, torch.Tensor]) -> None:
        slots = self.history.setdefault(pair, {"pos": [], "neg": []})
        for kind, samples in current.items():
            if len(slots[kind]) < self.size:
                slots[kind].append(samples)
            else:                                # full: replace the oldest
                slots[kind][self.batches % self.size] = samples


def _log_det_spread(samples: torch.Tensor) -> torch.Tensor:
    """log det of the (biased) covariance of (N, D) samples; 0 when N <= D, where it is singular (MMSA: -inf)."""
    if samples.shape[0] <= samples.shape[1]:
        return samples.new_zeros(())
    centred = samples - samples.mean(dim=0)
    return torch.logdet(centred.t() @ centred / samples.shape[0])


class MMIM(BaselineModel):
    name = "mmim"
    summary = "MMIM (Han et al. 2021): hierarchical mutual information maximisation (MMILB and CPC bounds)"
    Config = MMIMConfig
    text_modes = ("features", "bert")
    smoke_settings = {"d_vh": 4, "d_ah": 4, "d_vout": 4, "d_aout": 4, "d_prjh": 8, "batch_size": 16}
    presets = PRESETS
    network_class = MMIMNetwork

    @classmethod
    def default_config(cls, info: DataInfo) -> MMIMConfig:
        # As Self-MM: the paper reads BERT's [CLS] state, which only fine-tuning shapes; frozen features are pooled
        # by their mean over the valid tokens.
        config = super().default_config(info)
        return dataclasses.replace(config, text_pooling="cls" if info.text_mode == "bert" else "mean")

    @classmethod
    def check_config(cls, config: MMIMConfig) -> None:
        if config.text_pooling not in ("cls", "mean"):
            raise UserError(f"Setting 'text_pooling' of model 'mmim' must be 'cls' or 'mean' "
                            f"(got {config.text_pooling!r}).")
        if min(config.d_vout, config.d_aout) < 4:
            raise UserError(f"Settings 'd_vout' and 'd_aout' of model 'mmim' must be at least 4: the entropy "
                            f"estimate projects them to a quarter of their size (got {config.d_vout}, "
                            f"{config.d_aout}).")

    def __init__(self, config: MMIMConfig, info: DataInfo):
        self.check_config(config)
        super().__init__(config, info)
        self.mmilb_optimizer: torch.optim.Optimizer | None = None     # built in on_fit_start
        self.memory = EntropyMemory(config.mem_size)

    def loop_settings(self) -> LoopSettings:
        return dataclasses.replace(super().loop_settings(), plateau_factor=0.5)   # MMSA halves the rates

    def parameter_groups(self) -> list[dict[str, Any]]:
        """The main optimiser: BERT and the rest at their own rates; the MMILB estimators have their own."""
        c, network = self.config, self.network
        bert = trainable(network.text_model.parameters())
        main = [p for name, p in network.named_parameters()
                if p.requires_grad and not name.startswith(("text_model.", "mmilb."))]
        groups = [{"params": bert, "lr": c.lr_bert, "weight_decay": c.weight_decay_bert},
                  {"params": main, "lr": c.lr_main, "weight_decay": c.weight_decay_main}]
        return [group for group in groups if group["params"]]

    def on_fit_start(self, train: Inputs, ctx: FitContext) -> None:
        c = self.config
        self.mmilb_optimizer = torch.optim.Adam(trainable(self.network.mmilb.parameters()), lr=c.lr_mmilb,
                                                weight_decay=c.weight_decay_mmilb)

    def _train_epoch(self, train: Inputs, optimizer: torch.optim.Optimizer, settings: LoopSettings,
                     generator: torch.Generator, epoch: int, device: torch.device) -> float:
        """Stage 1 (the MMILB estimators), then stage 2 (everything else) through the shared loop."""
        self._train_mmilb(train, settings, generator)
        self.memory = EntropyMemory(self.config.mem_size)
        return super()._train_epoch(train, optimizer, settings, generator, epoch, device)

    def _train_mmilb(self, train: Inputs, settings: LoopSettings, generator: torch.Generator) -> None:
        """Maximise the MMILB likelihood; only the estimators step, but the clipped norm spans every gradient."""
        network, parameters = self.network, trainable(self.network.parameters())
        network.train()
        batches = list(batch_indices(len(train), settings.batch_size, True, generator))
        for number, index in enumerate(batches):
            if number >= self.config.mmilb_batch_fraction * len(batches):
                break
            network.zero_grad(set_to_none=True)
            loss = -network.likelihood(network.encode(train.take(index)))
            loss.backward()
            nn.utils.clip_grad_norm_(parameters, self.config.max_grad_norm)
            self.mmilb_optimizer.step()
        network.zero_grad(set_to_none=True)

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """Stage 2: L1 + alpha NCE - beta (likelihood + entropy)."""
        c = self.config
        loss = F.l1_loss(outputs["score"], inputs.label) + c.alpha * outputs["nce"] - c.beta * outputs["lld"]
        return loss - c.beta * self.memory.entropy(self.network, outputs, inputs.label)

    def after_batch(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> None:
        # The main optimiser clears only its own gradients; MMSA clears every gradient before each batch, so the
        # estimators' stage-2 gradients (clipped with the rest, never applied) must not pile up across batches.
        self.network.mmilb.zero_grad(set_to_none=True)
