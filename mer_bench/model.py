"""The model contract every plugin model follows: a config dataclass, fit, predict, save and load.

A model is constructed from its config and a `DataInfo` (shapes and conventions of the dataset, never its data). The
runner then calls ``fit(train, valid, ctx)`` once, and ``predict`` on the test split only after ``fit`` has returned.
"""

from __future__ import annotations

import abc
import dataclasses
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Protocol

import torch

from mer_bench.data.specs import LABEL_RANGES
from mer_bench.data.split import Split
from mer_bench.errors import NonFiniteError, UserError
from mer_bench.model_config import parse_overrides, validate_config  # noqa: F401  (parse_overrides: re-exported)

OUTPUT_KINDS = ("score", "probs")
TEXT_MODES = ("features", "bert")


@dataclass(frozen=True)
class DataInfo:
    """What a model may know about the dataset when it is built: shapes and conventions, no samples."""

    dataset: str                          # dataset name, e.g. "sims-v2"
    style: str                            # "mosi" (labels in [-3, 3]) or "sims" (labels in [-1, 1])
    feature_dims: tuple[int, int, int]    # (text, audio, vision) feature sizes in the data
    seq_lens: tuple[int, int, int]        # padded (text, audio, vision) lengths
    has_unimodal_labels: bool             # train/valid splits carry T/A/V labels
    text_model: str                       # BERT name or local path for text_mode "bert"
    text_mode: str = "features"           # "features": precomputed BERT features; "bert": token ids through BERT
    synthetic: bool = False
    aligned: bool = False                 # the dataset is word-aligned (MMSA's aligned_50 files): one step per word

    @property
    def label_range(self) -> tuple[float, float]:
        return LABEL_RANGES[self.style]


class Progress(Protocol):
    """Where a model reports training progress; the CLI shows it, tests ignore it."""

    def start_stage(self, name: str, total: int | None) -> None: ...

    def advance(self, **status: float) -> None: ...


class NullProgress:
    def start_stage(self, name: str, total: int | None) -> None:
        pass

    def advance(self, **status: float) -> None:
        pass


@dataclass
class FitContext:
    """Everything `fit` may depend on besides the data. Models read no global state."""

    device: torch.device
    seed: int
    run_dir: Path                          # scratch folder for checkpoints, deleted after the run
    progress: Progress = field(default_factory=NullProgress)
    max_epochs: int | None = None          # epoch budget that overrides the model's own, per training stage


@dataclass(frozen=True, eq=False)
class Predictions:
    """A model's outputs on a split, in the split's sample order."""

    score: torch.Tensor | None = None      # (N,) continuous sentiment in the dataset's label range
    probs: torch.Tensor | None = None      # (N, 3) probabilities of negative / neutral / positive
    extras: Mapping[str, torch.Tensor] = field(default_factory=dict)  # per-sample extras, e.g. "gates": (N, 3)

    def take(self, index: torch.Tensor) -> Predictions:
        pick = lambda value: None if value is None else value.index_select(0, index)  # noqa: E731
        return Predictions(pick(self.score), pick(self.probs), {k: pick(v) for k, v in self.extras.items()})

    def check(self, n: int, outputs: frozenset[str], model: str, split: Split | None = None,
              require_finite: bool = True) -> Predictions:
        """Raise if the predictions do not match what the model declared; return them moved to the CPU as float32.

        With `require_finite` (the scored passes), any NaN or infinity is a `NonFiniteError`: a diverged model must
        fail its run, never be scored. `split` (the split predicted) only makes that message name the split and the
        first offending sample id.
        """
        for kind in OUTPUT_KINDS:
            value = getattr(self, kind)
            if kind in outputs and value is None:
                raise RuntimeError(f"model '{model}' declares output '{kind}' but predict() did not return it")
        if self.score is not None and tuple(self.score.shape) != (n,):
            raise RuntimeError(f"model '{model}' returned score of shape {tuple(self.score.shape)}, expected ({n},)")
        if self.probs is not None and tuple(self.probs.shape) != (n, 3):
            raise RuntimeError(f"model '{model}' returned probs of shape {tuple(self.probs.shape)}, expected ({n}, 3)")
        cpu = lambda value: None if value is None else value.detach().float().cpu()  # noqa: E731
        checked = Predictions(cpu(self.score), cpu(self.probs), {k: cpu(v) for k, v in self.extras.items()})
        if require_finite:
            checked.require_finite(model, split)
        return checked

    def named_outputs(self) -> dict[str, torch.Tensor]:
        """Every output tensor by name: "score", "probs" and the extras."""
        main = {kind: getattr(self, kind) for kind in OUTPUT_KINDS if getattr(self, kind) is not None}
        return {**main, **self.extras}

    def require_finite(self, model: str, split: Split | None = None) -> None:
        """Raise `NonFiniteError` naming the model, the output, the split and the first bad sample if any value is
        NaN or infinite."""
        for name, value in self.named_outputs().items():
            finite = torch.isfinite(value)
            bad = ~(finite.flatten(1).all(dim=1) if finite.dim() > 1 else finite)    # (N,) per sample
            count = int(bad.sum())
            if count:
                first = int(torch.nonzero(bad)[0])
                where = f" on the {split.name} split" if split is not None else ""
                sample = f"sample id {split.ids[first]!r}" if split is not None else f"sample {first}"
                raise NonFiniteError(
                    f"Model '{model}' produced non-finite {name} (NaN or infinity) for {count} of {value.shape[0]} "
                    f"samples{where} (first at {sample}); the run failed and nothing was scored. The training "
                    f"diverged or the model is broken: try a smaller learning rate.")


@dataclass
class NoConfig:
    """A model without hyperparameters."""


class Model(abc.ABC):
    """Base class of every model. Subclasses set the class attributes and implement `fit` and `predict`."""

    name: ClassVar[str] = ""                         # what users type, lower-case with dashes
    summary: ClassVar[str] = ""                      # one line for `mer-bench models list`
    Config: ClassVar[type] = NoConfig                # dataclass of hyperparameters, every field with a default
    outputs: ClassVar[frozenset[str]] = frozenset({"score"})  # "score" (regression) and/or "probs" (3-class)
    text_modes: ClassVar[tuple[str, ...]] = ("features",)   # text modes the model supports
    smoke_settings: ClassVar[dict[str, Any]] = {}   # config overrides that make it tiny for tests and smoke runs
    # Reads word-aligned input (one step per word in every modality). On unaligned data such a model passes each split
    # through `mer_bench.data.align.aligned_input(split, info.aligned)`, the harness's one alignment step, and the
    # result file records the alignment it saw (`dataset.alignment`).
    needs_aligned: ClassVar[bool] = False

    def __init__(self, config: Any, info: DataInfo):
        self.config, self.info = config, info

    @classmethod
    def check_dataset(cls, info: DataInfo) -> None:
        """Raise `UserError` if the model cannot run on this dataset or text mode. Override to add conditions."""
        if info.text_mode not in cls.text_modes:
            raise UserError(f"Model '{cls.name}' does not support text mode '{info.text_mode}' "
                            f"(supported: {', '.join(cls.text_modes)}).")

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Raise `UserError` for settings that cannot work together (e.g. heads that do not divide a width). Types and
        bounds of single settings are checked before this, for every model (see `mer_bench.model_config`)."""

    @classmethod
    def default_config(cls, info: DataInfo) -> Any:
        """The config used when the user sets nothing: override to apply per-dataset presets."""
        return cls.Config()

    @abc.abstractmethod
    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        """Train on `train`, select (epochs, checkpoints) on `valid` only."""

    @abc.abstractmethod
    def predict(self, split: Split) -> Predictions:
        """Predict every sample of `split`, in order. Must not change the model."""

    def state_dict(self) -> dict[str, torch.Tensor]:
        """Tensors that fully describe the trained model (default: none)."""
        return {}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        if state:
            raise NotImplementedError(f"model '{self.name}' saved a state but does not implement load_state_dict")

    def parameter_count(self) -> int:
        return sum(int(value.numel()) for value in self.state_dict().values() if value.is_floating_point())

    def save(self, directory: Path) -> None:
        """Write the trained state (tensors only, loadable with weights_only=True) and the config."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        torch.save(self.state_dict(), directory / "state.pt")
        (directory / "config.json").write_text(json.dumps(config_to_dict(self.config), indent=2))

    def load(self, directory: Path) -> None:
        """Restore a state written by `save` into a model built with the same config and DataInfo."""
        state = torch.load(Path(directory) / "state.pt", map_location="cpu", weights_only=True)
        self.load_state_dict(state)


class TorchModel(Model):
    """A model whose state is one `torch.nn.Module`, `self.network`, built in `__init__`."""

    network: torch.nn.Module

    def state_dict(self) -> dict[str, torch.Tensor]:
        return {key: value.detach().cpu() for key, value in self.network.state_dict().items()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.network.load_state_dict(state)

    def parameter_count(self) -> int:
        return sum(parameter.numel() for parameter in self.network.parameters())


def config_to_dict(config: Any) -> dict[str, Any]:
    return dataclasses.asdict(config)


def build_config(model_class: type[Model], info: DataInfo, overrides: Mapping[str, Any]) -> Any:
    """The model's default config for this dataset with `overrides` applied (values already parsed), validated: every
    setting against its type and bounds, then the model's `check_config` (see `mer_bench.model_config`)."""
    config = dataclasses.replace(model_class.default_config(info), **dict(overrides))
    validate_config(model_class, config)
    return config
