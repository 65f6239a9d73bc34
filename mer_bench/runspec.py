"""`RunSpec`: what one run is (model, settings, dataset, seed, text mode, epoch budget). Its hash names the run."""

from __future__ import annotations

import hashlib
import json
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)   # MMSA's protocol


@dataclass(frozen=True)
class RunSpec:
    """Hashable description of one run. Two equal specs are the same run: same result file, skipped when present."""

    model: str
    dataset: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()   # typed (key, value) pairs, sorted by key
    text_mode: str = "features"
    epochs: int | None = None                     # epoch budget per training stage; None = the model's own

    def __post_init__(self) -> None:
        canonical = tuple(sorted((key, _freeze(value)) for key, value in self.overrides))
        object.__setattr__(self, "overrides", canonical)

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, "dataset": self.dataset, "seed": self.seed,
                "overrides": {key: _thaw(value) for key, value in self.overrides},
                "text_mode": self.text_mode, "epochs": self.epochs}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(model=data["model"], dataset=data["dataset"], seed=int(data["seed"]),
                   overrides=tuple(data.get("overrides", {}).items()), text_mode=data.get("text_mode", "features"),
                   epochs=data.get("epochs"))

    @property
    def hash(self) -> str:
        """Stable across processes and machines: SHA-256 of the canonical JSON of the spec."""
        canonical = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @property
    def run_id(self) -> str:
        return f"{self.model}-{self.dataset}-s{self.seed}-{self.hash}"

    def result_path(self, out_dir: Path) -> Path:
        """OUT/<dataset>/<model>/<run-id>.json"""
        return Path(out_dir) / self.dataset / self.model / f"{self.run_id}.json"

    def command(self) -> str:
        """The mer-bench command that reproduces this run (data location options aside)."""
        parts = ["mer-bench", "run", self.model, "--dataset", self.dataset, "--seeds", str(self.seed)]
        for key, value in self.overrides:
            parts += ["--set", f"{key}={_format_value(value)}"]
        if self.text_mode != "features":
            parts += ["--text-mode", self.text_mode]
        if self.epochs is not None:
            parts += ["--epochs", str(self.epochs)]
        return shlex.join(parts)


def _freeze(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def _thaw(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return ",".join(str(item) for item in value)
    if value is None:
        return "none"
    return str(value).lower() if isinstance(value, bool) else str(value)
