"""Shared pieces a model may use: seeding, devices, batching from in-memory tensors, early stopping, autocast."""

from __future__ import annotations

import contextlib
import math
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import torch

from mer_bench.errors import NonFiniteError, UserError


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch (CPU and CUDA); return a torch generator for data order drawn from the same seed."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)   # also seeds every CUDA device
    generator = torch.Generator()
    generator.manual_seed(seed)
    return generator


def resolve_device(name: str) -> torch.device:
    """'auto' picks CUDA when present; 'cuda' without a GPU is a user error, not a crash deep inside training."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError("--device cuda was asked for, but torch sees no CUDA device (use --device auto or cpu).")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise UserError(f"Unknown device '{name}' (use auto, cpu or cuda).")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({os.cpu_count()} cores, {torch.get_num_threads()} torch threads)"


def batch_indices(n: int, batch_size: int, shuffle: bool, generator: torch.Generator | None = None,
                  drop_last: bool = False) -> Iterator[torch.Tensor]:
    """Index tensors of each batch; with shuffle, one permutation per call drawn from `generator`."""
    order = torch.randperm(n, generator=generator) if shuffle else torch.arange(n)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        yield order[start:start + batch_size]


@dataclass
class EarlyStopping:
    """Stop after `patience` epochs without improvement of a validation quantity (lower is better by default)."""

    patience: int
    lower_is_better: bool = True
    min_delta: float = 0.0
    best: float | None = None
    best_epoch: int = -1
    bad_epochs: int = 0

    def update(self, value: float, epoch: int) -> bool:
        """Record this epoch's value; True when it is a new best (the caller then saves a checkpoint)."""
        improved = self.best is None or (
            value < self.best - self.min_delta if self.lower_is_better else value > self.best + self.min_delta)
        if improved:
            self.best, self.best_epoch, self.bad_epochs = value, epoch, 0
        else:
            self.bad_epochs += 1
        return improved

    @property
    def should_stop(self) -> bool:
        return self.bad_epochs >= self.patience


def require_finite_loss(model: str, stage: str, epoch: int, **losses: float) -> None:
    """Raise `NonFiniteError` if an epoch's mean loss is NaN or infinite: training has diverged and every later epoch
    would be wasted. Meant for the per-epoch means a loop already syncs to the host, so it costs no extra sync."""
    bad = {name: value for name, value in losses.items() if not math.isfinite(value)}
    if bad:
        listed = ", ".join(f"{name}={value}" for name, value in bad.items())
        raise NonFiniteError(f"Model '{model}' diverged: {stage} loss is not finite after epoch {epoch} ({listed}); "
                             f"the run failed. Try a smaller learning rate.")


def autocast(device: torch.device, enabled: bool = True):
    """bf16 autocast on CUDA (where it does not change results beyond noise); a no-op on the CPU."""
    if enabled and device.type == "cuda":
        return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def epoch_budget(default: int, override: int | None) -> int:
    """The number of epochs a stage may run: the model's default unless the run sets a budget."""
    return default if override is None else max(1, int(override))


class StateSnapshot:
    """The best state of a module kept in memory (a copy of its state dict), cheaper than writing a checkpoint file."""

    def __init__(self) -> None:
        self.state: dict[str, torch.Tensor] | None = None

    def save(self, module: torch.nn.Module) -> None:
        self.state = {key: value.detach().clone() for key, value in module.state_dict().items()}

    def restore(self, module: torch.nn.Module) -> None:
        if self.state is not None:
            module.load_state_dict(self.state)
