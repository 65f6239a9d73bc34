"""The regression training loop every baseline uses, as MMSA's trainers run it but written once.

Protocol (MMSA's, `trains/*/*.py`): Adam, shuffled mini-batches, optional gradient value clipping and gradient
accumulation, one validation pass per epoch; the state with the lowest validation loss is kept, and training stops
after `patience` epochs without an improvement of more than 1e-6. Unlike MMSA, an epoch cap always applies
(`max_epochs`, or the run's budget), and a partial accumulation group at the end of an epoch is applied rather
than dropped. The small networks train in float32 on every device (bf16 would put the LSTM recurrences and the L1
regression at a precision that changes results); only BERT runs under autocast (see `common.TextInput`).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Any, ClassVar

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.data.split import Split
from mer_bench.model import DataInfo, FitContext, Predictions, TorchModel
from mer_bench.training import EarlyStopping, StateSnapshot, batch_indices, epoch_budget, require_finite_loss
from mer_bench_baselines.common import Inputs

MIN_IMPROVEMENT = 1e-6      # MMSA saves a checkpoint only when the validation loss drops by more than this
PREDICT_BATCH = 256         # inference batch size: memory only, results do not depend on it


@dataclass(frozen=True)
class LoopSettings:
    """How `BaselineModel.fit` trains; each model derives these from its config."""

    batch_size: int
    max_epochs: int
    patience: int = 8                    # MMSA's `early_stop`
    grad_clip: float | None = None       # clip each gradient value to [-c, c] (MMSA's clip_grad_value_), None: off
    max_grad_norm: float | None = None   # clip the gradients' total L2 norm (MMSA's clip_grad_norm_), None: off
    accumulation: int = 1                # batches per optimiser step (MMSA's `update_epochs`)
    valid_loss: str = "l1"               # validation criterion: "l1", or "mse" for models MMSA trains with MSE
    plateau_patience: int | None = None  # epochs before ReduceLROnPlateau cuts the learning rate (MulT, MMIM)
    plateau_factor: float = 0.1          # the cut: learning rates are multiplied by this


class BaselineModel(TorchModel):
    """A regression baseline: subclasses build `self.network` and say how to compute outputs and the loss."""

    outputs = frozenset({"score"})
    presets: ClassVar[dict[str, dict[str, Any]]] = {}   # per-dataset config values, chosen by `preset_key`
    network_class: ClassVar[type[nn.Module]]             # built as network_class(info, config)

    def __init__(self, config: Any, info: DataInfo):
        super().__init__(config, info)
        self.network = self.build_network()

    @classmethod
    def default_config(cls, info: DataInfo) -> Any:
        """The preset of this dataset (MMSA's per-dataset values), else of its label style."""
        return cls.Config(**cls.presets[preset_key(info, cls.presets)]) if cls.presets else cls.Config()

    def build_network(self) -> nn.Module:
        """The trainable module; `forward` below receives an `Inputs` batch."""
        return self.network_class(self.info, self.config)

    def loop_settings(self) -> LoopSettings:
        """The loop's knobs, read from the config fields of the same names (batch_size, max_epochs, ...)."""
        names = {f.name for f in fields(LoopSettings)}
        return LoopSettings(**{name: getattr(self.config, name) for name in names if hasattr(self.config, name)})

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        """Outputs of a batch; must contain "score": (B,) predicted sentiment."""
        return self.network(inputs)

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """The loss minimised on a training batch (default: L1 on the multimodal label, as MMSA)."""
        return F.l1_loss(outputs["score"], inputs.label)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """Adam parameter groups (default: every trainable parameter at the config's learning rate and decay)."""
        return [{"params": trainable(self.network.parameters()), "lr": self.config.learning_rate,
                 "weight_decay": getattr(self.config, "weight_decay", 0.0)}]

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser `fit` steps (default: Adam over `parameter_groups`)."""
        return torch.optim.Adam(self.parameter_groups())

    def on_fit_start(self, train: Inputs, ctx: FitContext) -> None:
        """Called once before the first epoch (e.g. to set up per-sample state)."""

    def after_batch(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> None:
        """Called after each training batch's backward pass (e.g. to update pseudo labels)."""

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        settings = self.loop_settings()
        train_inputs = Inputs.from_split(train, self.info.text_mode, ctx.device)
        valid_inputs = Inputs.from_split(valid, self.info.text_mode, ctx.device)
        self.network.to(ctx.device)
        optimizer = self.make_optimizer()
        scheduler = None if settings.plateau_patience is None else torch.optim.lr_scheduler.ReduceLROnPlateau(
            optimizer, mode="min", factor=settings.plateau_factor, patience=settings.plateau_patience)
        generator = torch.Generator().manual_seed(ctx.seed)     # data order depends on the run's seed only
        stopping, best = EarlyStopping(settings.patience, min_delta=MIN_IMPROVEMENT), StateSnapshot()
        epochs = epoch_budget(settings.max_epochs, ctx.max_epochs)
        self.on_fit_start(train_inputs, ctx)
        ctx.progress.start_stage("train", epochs)
        for epoch in range(1, epochs + 1):
            train_loss = self._train_epoch(train_inputs, optimizer, settings, generator, epoch, ctx.device)
            require_finite_loss(self.name, "training", epoch, train_loss=train_loss)   # diverged: stop now
            valid_loss = self.validation_loss(valid_inputs, settings.valid_loss)
            if scheduler is not None:
                scheduler.step(valid_loss)
            if stopping.update(valid_loss, epoch):
                best.save(self.network)
            ctx.progress.advance(train_loss=train_loss, valid_loss=valid_loss, best_epoch=stopping.best_epoch)
            if stopping.should_stop:
                break
        best.restore(self.network)

    def _train_epoch(self, train: Inputs, optimizer: torch.optim.Optimizer, settings: LoopSettings,
                     generator: torch.Generator, epoch: int, device: torch.device) -> float:
        """One pass over the shuffled training data; returns the mean training loss."""
        self.network.train()
        parameters = trainable(self.network.parameters())     # listed once per epoch, not per batch
        total, batches = torch.zeros((), device=device), 0
        optimizer.zero_grad(set_to_none=True)
        for step, index in enumerate(batch_indices(len(train), settings.batch_size, True, generator), start=1):
            if index.numel() < 2:
                continue     # batch norm cannot train on one sample; at most one sample per epoch is skipped
            batch = train.take(index)
            outputs = self.forward(batch)
            loss = self.training_loss(batch, outputs, epoch)
            loss.backward()
            if settings.grad_clip is not None:
                nn.utils.clip_grad_value_(parameters, settings.grad_clip)
            if settings.max_grad_norm is not None:
                nn.utils.clip_grad_norm_(parameters, settings.max_grad_norm)
            self.after_batch(batch, {key: value.detach() for key, value in outputs.items()}, epoch)
            total, batches = total + loss.detach(), batches + 1
            if step % settings.accumulation == 0:
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
        if batches % settings.accumulation:
            optimizer.step()     # the last, partial group
        return float(total) / max(batches, 1)    # the epoch's one device sync

    @torch.no_grad()
    def predict_inputs(self, inputs: Inputs) -> torch.Tensor:
        """(N,) scores in eval mode, batch by batch."""
        self.network.eval()
        scores = [self.forward(batch)["score"].float() for batch in inputs.batches(PREDICT_BATCH)]
        return torch.cat(scores) if scores else torch.zeros(0, device=inputs.label.device)

    def validation_loss(self, valid: Inputs, kind: str) -> float:
        scores = self.predict_inputs(valid)
        error = scores - valid.label
        return float(error.abs().mean() if kind == "l1" else error.pow(2).mean())

    def predict(self, split: Split) -> Predictions:
        device = next(self.network.parameters()).device
        return Predictions(score=self.predict_inputs(Inputs.from_split(split, self.info.text_mode, device)).cpu())


def trainable(parameters: Iterable[nn.Parameter]) -> list[nn.Parameter]:
    return [parameter for parameter in parameters if parameter.requires_grad]


def preset_key(info: DataInfo, presets: dict[str, Any]) -> str:
    """Which per-dataset preset applies: the dataset's own, else synthetic's, else the one of its label style."""
    if info.dataset in presets:
        return info.dataset
    if info.synthetic and "synthetic" in presets:
        return "synthetic"
    return "mosi" if info.style == "mosi" else "sims"
