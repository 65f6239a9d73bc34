"""`RunSpec`: what one run is (model, settings, dataset and its checksum, seed, text mode, epoch budget). Its hash
names the run.

The data's identity is part of the spec: two files both called "sims-v2" but with different content are different
runs, with different ids, so a result on one is never reused for the other. It is the SHA-256 a result records as
``dataset.sha256`` (of the file, or for generated data of its arrays; see `mer_bench.data.loading.dataset_checksum`).

Result files written before the checksum was part of the spec read back with ``data_sha256=None``; such a spec hashes
exactly as it did then (the field is left out of the hash when it is None), so an old file keeps its run id and stays
readable, and no new run ever reuses it: every run made now has a checksum, hence a different id.
"""

from __future__ import annotations

import hashlib
import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_SEEDS = (1111, 1112, 1113, 1114, 1115)   # MMSA's protocol
SEED_RANGE = (0, 2**32 - 1)   # what numpy's and torch's seeding accept
SHA256_PATTERN = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class RunSpec:
    """Hashable description of one run. Two equal specs are the same run: same result file, skipped when present."""

    model: str
    dataset: str
    seed: int
    overrides: tuple[tuple[str, Any], ...] = ()   # typed (key, value) pairs, sorted by key
    text_mode: str = "features"
    epochs: int | None = None                     # epoch budget per training stage; None = the model's own
    data_sha256: str | None = None                # the data's checksum (64 hex); None only in old result files

    def __post_init__(self) -> None:
        canonical = tuple(sorted((key, _freeze(value)) for key, value in self.overrides))
        object.__setattr__(self, "overrides", canonical)
        if self.data_sha256 is not None and not SHA256_PATTERN.fullmatch(str(self.data_sha256)):
            raise ValueError(f"data_sha256 must be 64 lowercase hex digits, got {self.data_sha256!r}")
        if not SEED_RANGE[0] <= self.seed <= SEED_RANGE[1]:
            raise ValueError(f"seed {self.seed} is outside {SEED_RANGE[0]}..{SEED_RANGE[1]}")

    def to_dict(self) -> dict[str, Any]:
        record = {"model": self.model, "dataset": self.dataset, "seed": self.seed,
                  "overrides": {key: _thaw(value) for key, value in self.overrides},
                  "text_mode": self.text_mode, "epochs": self.epochs}
        if self.data_sha256 is not None:   # left out when unknown: old specs keep their old hash (module docstring)
            record["data_sha256"] = self.data_sha256
        return record

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunSpec:
        return cls(model=data["model"], dataset=data["dataset"], seed=int(data["seed"]),
                   overrides=tuple(data.get("overrides", {}).items()), text_mode=data.get("text_mode", "features"),
                   epochs=data.get("epochs"), data_sha256=data.get("data_sha256"))

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

    def command(self, data_options: tuple[str, ...] = ()) -> str:
        """The mer-bench command that reproduces this run. `data_options` are where the data was found (e.g.
        ("--data-file", "/abs/x.pkl")): not part of the spec, since the same data may sit elsewhere on another
        machine, but part of the recorded command (see `mer_bench.runner.data_options`)."""
        parts = ["mer-bench", "run", self.model, "--dataset", self.dataset, *data_options, "--seeds", str(self.seed)]
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
