"""What CMC reads from a split, resident on the training device, and the frozen-BERT feature cache."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import torch

from mer_bench.data import Split, three_class
from mer_bench.training import autocast
from mer_bench_cmc.encoders import BertText


@dataclass(frozen=True)
class Batch:
    text: torch.Tensor             # (B, Lt, Dt) float features or (B, 3, Lt) int64 token ids
    audio: torch.Tensor            # (B, La, Da)
    vision: torch.Tensor           # (B, Lv, Dv)
    lengths: torch.Tensor | None   # (B, 3) int64 true lengths T/A/V, only with masked pooling
    label: torch.Tensor            # (B,) int64 multimodal class 0/1/2
    unimodal: torch.Tensor | None  # (B, 3) int64 ground-truth T/A/V classes, when the split has them


@dataclass(frozen=True)
class SplitTensors:
    """The tensors of one split CMC uses, on one device; a batch is one `index_select` per tensor."""

    text: torch.Tensor
    audio: torch.Tensor
    vision: torch.Tensor
    lengths: torch.Tensor | None
    label: torch.Tensor
    unimodal: torch.Tensor | None

    @classmethod
    def from_split(cls, split: Split, text_mode: str, device: torch.device, with_lengths: bool) -> SplitTensors:
        text = split.text if text_mode == "features" else split.text_bert
        if text is None:
            raise ValueError(f"split '{split.name}' has no {'text' if text_mode == 'features' else 'text_bert'}")
        lengths = (torch.stack([_text_lengths(split), split.audio_lengths, split.vision_lengths], dim=1)
                   if with_lengths else None)
        unimodal = None if split.unimodal_labels is None else three_class(split.unimodal_labels)
        move = lambda value: None if value is None else value.to(device, non_blocking=True)  # noqa: E731
        return cls(move(text), move(split.audio), move(split.vision), move(lengths), move(three_class(split.label)),
                   move(unimodal))

    def __len__(self) -> int:
        return int(self.label.shape[0])

    @property
    def device(self) -> torch.device:
        return self.label.device

    def batches(self, batch_size: int, generator: torch.Generator | None = None) -> tuple[torch.Tensor, ...]:
        """Index tensors of each batch, on the split's device: in split order, or with `generator` in one random
        order drawn on the CPU and moved once per epoch."""
        if generator is None:
            order = torch.arange(len(self), device=self.device)
        else:
            order = torch.randperm(len(self), generator=generator).to(self.device)
        return order.split(batch_size)

    def batch(self, index: torch.Tensor) -> Batch:
        pick = lambda value: None if value is None else value.index_select(0, index)  # noqa: E731
        return Batch(pick(self.text), pick(self.audio), pick(self.vision), pick(self.lengths), pick(self.label),
                     pick(self.unimodal))

    def with_text(self, text: torch.Tensor) -> SplitTensors:
        return dataclasses.replace(self, text=text)


def _text_lengths(split: Split) -> torch.Tensor:
    """Token counts from the attention mask when the split has token ids, else the full padded length."""
    if split.text_lengths is not None:
        return split.text_lengths.clamp(min=1)
    length = split.text.shape[1] if split.text is not None else 1
    return torch.full((len(split),), length, dtype=torch.long)


class FrozenBert:
    """A BERT that is not trained in the current stage: its outputs are computed without gradients, either once for
    a whole split (eval mode, the cache) or per batch in train mode as the reference does (BERT dropout active)."""

    def __init__(self, text_model: BertText, amp: bool):
        self.text_model, self.amp = text_model, amp

    @torch.no_grad()
    def features(self, token_ids: torch.Tensor, train: bool) -> torch.Tensor:
        """(B, 3, L) ids -> (B, L, H) float32 last hidden states."""
        was_training = self.text_model.training
        self.text_model.train(train)
        with autocast(token_ids.device, self.amp):
            out = self.text_model(token_ids).float()
        self.text_model.train(was_training)
        return out

    def cache(self, tensors: SplitTensors, batch_size: int) -> SplitTensors:
        """The split with its token ids replaced by eval-mode BERT features (N, L, H), computed once."""
        chunks = [self.features(token_ids, train=False) for token_ids in tensors.text.split(batch_size)]
        return tensors.with_text(torch.cat(chunks))
