"""Perturbed inputs for the probes: a modality emptied, swapped between samples, masked for some samples, or noised.

Each function returns new tensors as a dict of Split fields (for `Split.replace`) and never changes its input.
Text is perturbed in both representations a split may carry (`text` features and `text_bert` token ids), so a probe
reaches the text whichever of the two the model reads, without knowing the model's text mode.
"""

from __future__ import annotations

import numpy as np
import torch

from mer_bench.data.split import MODALITIES, Split

# The Split fields that make up each modality; perturbing a modality replaces all of them together.
MODALITY_FIELDS = {
    "text": ("text", "text_bert"),
    "audio": ("audio", "audio_lengths"),
    "vision": ("vision", "vision_lengths"),
}
NOISED_MODALITIES = ("audio", "vision")   # Gaussian noise goes on the continuous non-text features only


def emptied(split: Split, modality: str, rows: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """`modality` replaced by its empty version on `rows` ((N,) bool), or on every sample when `rows` is None.

    Empty means all-zero features. Token ids keep only the first and the last attended token ([CLS] and [SEP] for
    BERT tokenizers, read off the data rather than assumed), so a BERT still sees a well-formed empty sentence.
    Audio and vision lengths are kept: the frames are zero anyway, and a length of 0 would break models that pack
    sequences by length.
    """
    fields: dict[str, torch.Tensor] = {}
    if modality == "text":
        if split.text is not None:
            fields["text"] = torch.zeros_like(split.text)
        if split.text_bert is not None:
            fields["text_bert"] = special_tokens_only(split.text_bert)
    else:
        fields[modality] = torch.zeros_like(getattr(split, modality))
    if rows is None:
        return fields
    return {name: _where_rows(rows, value, getattr(split, name)) for name, value in fields.items()}


def special_tokens_only(text_bert: torch.Tensor) -> torch.Tensor:
    """(N, 3, L) ids / mask / segments -> the same layout holding only each sample's first and last attended token."""
    ids, mask = text_bert[:, 0], text_bert[:, 1]                          # (N, L) each
    n, length = ids.shape
    empty = torch.zeros_like(text_bert)
    empty[:, 0, 0] = ids[:, 0]
    empty[:, 1, 0] = 1
    if length >= 2:
        lengths = mask.to(torch.long).sum(dim=1).clamp(min=1)            # (N,) attended tokens
        last = ids.gather(1, (lengths - 1).unsqueeze(1)).squeeze(1)       # (N,) e.g. [SEP]
        has_last = lengths >= 2                                           # a one-token sample keeps just that token
        empty[:, 0, 1] = torch.where(has_last, last, torch.zeros_like(last))
        empty[:, 1, 1] = has_last.to(text_bert.dtype)
    return empty


def swapped(split: Split, modality: str, source: torch.Tensor) -> dict[str, torch.Tensor]:
    """`modality` of sample `source[i]` given to sample i ((N,) long), lengths travelling with their frames."""
    fields = {}
    for name in MODALITY_FIELDS[modality]:
        value = getattr(split, name)
        if value is not None:
            fields[name] = value.index_select(0, source.to(value.device))
    return fields


def derangement(n: int, rng: np.random.Generator) -> torch.Tensor:
    """(N,) long: a random permutation with no fixed point (for N >= 2), so every sample gets another's modality.

    The samples are put in a random order and each takes the modality of the next one in that cycle.
    """
    order = rng.permutation(n)
    source = np.empty(n, dtype=np.int64)
    source[order] = np.roll(order, -1)
    return torch.from_numpy(source)


def valid_frames(lengths: torch.Tensor, padded_length: int) -> torch.Tensor:
    """(N, L) bool: True on the frames before each sample's length (the rest is padding)."""
    return torch.arange(padded_length, device=lengths.device).unsqueeze(0) < lengths.to(torch.long).unsqueeze(1)


def feature_std(frames: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(D,) standard deviation of each feature over the valid frames of (N, L, D) `frames` (padding left out)."""
    valid = frames[valid_frames(lengths, frames.shape[1])]               # (M, D) valid frames only
    if valid.shape[0] < 2:
        return torch.zeros(frames.shape[-1], dtype=frames.dtype, device=frames.device)
    return valid.to(torch.float64).std(dim=0, unbiased=False).to(frames.dtype)


def draw_noise(split: Split, rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """Unit Gaussian noise shaped like each noised modality, drawn once and scaled per rate (common random numbers,
    so the curve over rates is smooth and each point differs from the previous one by its rate only)."""
    noise = {}
    for name in NOISED_MODALITIES:
        frames = getattr(split, name)                                     # (N, L, D)
        noise[name] = torch.from_numpy(rng.standard_normal(tuple(frames.shape), dtype=np.float32)).to(frames.device)
    return noise


def noised(split: Split, rate: float, noise: dict[str, torch.Tensor],
           stds: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Audio and vision plus `rate` x (each feature's std) x `noise`, on valid frames only (padding stays zero)."""
    fields = {}
    for name in NOISED_MODALITIES:
        frames = getattr(split, name)                                     # (N, L, D)
        valid = valid_frames(getattr(split, f"{name}_lengths"), frames.shape[1]).unsqueeze(-1)   # (N, L, 1)
        fields[name] = frames + rate * stds[name] * noise[name] * valid
    return fields


def mask_ranks(n: int, rng: np.random.Generator) -> torch.Tensor:
    """(N, 3) long: for each modality (T, A, V) an independent random rank of the samples, 0 .. N-1."""
    return torch.from_numpy(np.stack([rng.permutation(n) for _ in MODALITIES], axis=1))


def masked_at(ranks: torch.Tensor, rate: float) -> torch.Tensor:
    """(N, 3) bool: modality m is masked on the round(rate x N) samples of lowest rank for m.

    Masks are nested across rates (a sample masked at 0.2 stays masked at 0.3), so the curve changes only by the
    extra samples each rate adds.
    """
    count = int(round(rate * ranks.shape[0]))
    return ranks < count


def _where_rows(rows: torch.Tensor, new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    shape = (-1,) + (1,) * (new.dim() - 1)
    return torch.where(rows.to(new.device).view(shape), new, old)
