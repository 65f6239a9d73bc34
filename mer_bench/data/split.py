"""In-memory dataset splits. Every field is a tensor over the same N samples, so a batch is one index gather."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from mer_bench.data.specs import DatasetSpec

MODALITIES = ("text", "audio", "vision")
SPLITS = ("train", "valid", "test")


@dataclass(frozen=True, eq=False)
class Split:
    """One split (train, valid or test) of a dataset, everything resident in memory as tensors.

    `text` holds precomputed BERT features and `text_bert` holds token ids; a dataset may carry either or both.
    """

    name: str
    ids: tuple[str, ...]                      # (N,) "video$_$clip" as in the MMSA files
    label: torch.Tensor                       # (N,) float32 multimodal sentiment label
    audio: torch.Tensor                       # (N, La, Da) float32, zero padded after audio_lengths
    vision: torch.Tensor                      # (N, Lv, Dv) float32, zero padded after vision_lengths
    audio_lengths: torch.Tensor               # (N,) int64 true lengths
    vision_lengths: torch.Tensor              # (N,) int64 true lengths
    text: torch.Tensor | None = None          # (N, Lt, 768) float32 BERT last hidden states
    text_bert: torch.Tensor | None = None     # (N, 3, Lt) int64: input ids / attention mask / segment ids
    unimodal_labels: torch.Tensor | None = None  # (N, 3) float32 labels of T, A, V (SIMS-style datasets only)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def take(self, index: torch.Tensor) -> Split:
        """The samples at `index` (a 1-D integer tensor), as a new Split. Tensors are gathered, never copied per sample."""
        index = index.to(torch.long)
        gathered = {field: _gather(value, index) for field, value in self.tensors().items()}
        ids = tuple(self.ids[i] for i in index.cpu().tolist())
        return dataclasses.replace(self, ids=ids, **gathered)

    def to(self, device: torch.device | str) -> Split:
        """The same split with every tensor on `device` (for GPU-resident training data)."""
        moved = {field: value.to(device) for field, value in self.tensors().items() if value is not None}
        return dataclasses.replace(self, **moved)

    def replace(self, **fields: object) -> Split:
        """A copy with some fields replaced (probes use this to perturb one modality)."""
        return dataclasses.replace(self, **fields)

    @property
    def text_lengths(self) -> torch.Tensor | None:
        """(N,) int64 token counts from the attention mask, when token ids are present."""
        if self.text_bert is None:
            return None
        return self.text_bert[:, 1].sum(dim=1).to(torch.long)

    def tensors(self) -> dict[str, torch.Tensor | None]:
        """Every per-sample tensor field by name, in `TENSOR_FIELDS` order (None where the split lacks it)."""
        return {name: getattr(self, name) for name in TENSOR_FIELDS}


TENSOR_FIELDS = tuple(field.name for field in dataclasses.fields(Split) if field.name not in ("name", "ids"))


def _gather(value: torch.Tensor | None, index: torch.Tensor) -> torch.Tensor | None:
    return None if value is None else value.index_select(0, index.to(value.device))


@dataclass(frozen=True, eq=False)
class MERData:
    """A whole dataset: its spec, the three splits, where it came from and what loading had to fix."""

    spec: DatasetSpec
    train: Split
    valid: Split
    test: Split
    source: str                 # file path, or a description such as "synthetic(seed=0)"
    sha256: str                 # checksum of the source file (or of the generated arrays)
    notes: tuple[str, ...] = ()  # what loading changed, e.g. "set 12 -inf audio values to 0"

    def split(self, name: str) -> Split:
        return {"train": self.train, "valid": self.valid, "test": self.test}[name]

    @property
    def feature_dims(self) -> tuple[int, int, int]:
        """(text, audio, vision) feature sizes read off the data, not the spec."""
        text_dim = self.train.text.shape[-1] if self.train.text is not None else 768
        return (int(text_dim), int(self.train.audio.shape[-1]), int(self.train.vision.shape[-1]))

    @property
    def seq_lens(self) -> tuple[int, int, int]:
        """(text, audio, vision) padded lengths read off the data."""
        if self.train.text is not None:
            text_len = self.train.text.shape[1]
        else:
            text_len = self.train.text_bert.shape[-1] if self.train.text_bert is not None else 0
        return (int(text_len), int(self.train.audio.shape[1]), int(self.train.vision.shape[1]))
