"""Word alignment of unaligned data: the one step that gives models needing aligned input (MFN, Graph-MFN, MFM,
MCTN, MAG-BERT, EF-LSTM) their input on MMSA's unaligned files.

MMSA's aligned files (`aligned_50.pkl`) were aligned by CMU with word timings (P2FA), which the unaligned files do
not carry. Without timings, the harness aligns by *segment means*: each sample's valid audio (or vision) frames are
cut into as many equal slices as its text has tokens, and each slice is averaged, so step i of every modality belongs
to token i. After alignment the three modalities share one padded length (the text's) and one true length (the
token count).

Which alignment a model saw is recorded in the result file (`dataset.alignment`):
- "native": the dataset's files are word-aligned (`DatasetSpec.aligned`), the model reads them as they are;
- "segment-mean": the model needs aligned input and the harness aligned unaligned data with `align_split`;
- None: the model takes unaligned input.
"""

from __future__ import annotations

import torch

from mer_bench.data.split import Split

NATIVE = "native"
SEGMENT_MEAN = "segment-mean"
ALIGNMENTS = (NATIVE, SEGMENT_MEAN)


def alignment_seen(needs_aligned: bool, data_aligned: bool) -> str | None:
    """What a model saw: "native", "segment-mean" or None (see the module docstring)."""
    if data_aligned:
        return NATIVE
    return SEGMENT_MEAN if needs_aligned else None


def aligned_input(split: Split, data_aligned: bool) -> Split:
    """The split a model needing aligned input reads: as it is when the dataset is aligned, else `align_split`."""
    return split if data_aligned else align_split(split)


def align_split(split: Split) -> Split:
    """Audio and vision averaged onto the text's tokens (segment means), every modality of the text's padded length.

    Shapes: audio (N, La, Da) -> (N, Lt, Da), vision (N, Lv, Dv) -> (N, Lt, Dv), zero after each sample's tokens;
    audio_lengths and vision_lengths become the token counts. Text and labels are unchanged.
    """
    steps = text_lengths(split)                              # (N,) tokens, at least 1
    length = text_padded_length(split)
    audio_lengths = clamped_lengths(split.audio_lengths, split.audio.shape[1])     # (N,)
    vision_lengths = clamped_lengths(split.vision_lengths, split.vision.shape[1])  # (N,)
    return split.replace(
        audio=segment_means(split.audio.float(), audio_lengths, steps, length),
        vision=segment_means(split.vision.float(), vision_lengths, steps, length),
        audio_lengths=steps.clone(), vision_lengths=steps.clone())


def text_padded_length(split: Split) -> int:
    """Lt: the padded text length of whichever text representation the split carries."""
    return int(split.text.shape[1] if split.text is not None else split.text_bert.shape[-1])


def text_lengths(split: Split) -> torch.Tensor:
    """(N,) int64 true text lengths in [1, Lt] of a split (see `token_lengths`)."""
    return token_lengths(split.text_bert, split.text)


def token_lengths(text_bert: torch.Tensor | None, text: torch.Tensor | None) -> torch.Tensor:
    """(N,) int64 true text lengths in [1, Lt]: from the attention mask of `text_bert` (N, 3, Lt) when there are token
    ids, else the non-zero rows of the features `text` (N, Lt, Dt). The mask is preferred because MMSA's BERT features
    are not zero at padded positions (BERT writes a state there). An all-padding sample still counts one (zero) step,
    so sequence encoders never see length 0."""
    if text_bert is not None:
        return clamped_lengths(text_bert[:, 1].float().sum(dim=1), text_bert.shape[-1])
    return clamped_lengths((text.abs().sum(dim=-1) > 0).sum(dim=1), text.shape[1])


def clamped_lengths(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """Lengths as int64 clamped to [1, max_length]: an all-padding sample still gives one (zero) step."""
    return lengths.round().long().clamp(1, max_length)


def segment_means(x: torch.Tensor, lengths: torch.Tensor, segments: torch.Tensor, out_length: int) -> torch.Tensor:
    """Average (B, L, D) frames into `segments[b]` equal slices of each valid span -> (B, out_length, D), zero after.

    Slice i of a sample covers frames [i*n/k, (i+1)*n/k) of its n valid frames (at least one frame each, so a sample
    with fewer frames than tokens repeats frames rather than averaging nothing). Vectorised with a cumulative sum:
    a slice mean is a difference of two prefix sums.
    """
    batch, _, dim = x.shape
    totals = torch.cat([x.new_zeros(batch, 1, dim), x.cumsum(dim=1)], dim=1)             # (B, L+1, D)
    step = torch.arange(out_length, device=x.device)[None, :]                            # (1, K)
    n, k = lengths[:, None].to(torch.float64), segments[:, None].to(torch.float64)
    start = torch.floor(step * n / k).long().clamp(max=lengths[:, None] - 1)             # (B, K)
    end = torch.maximum(torch.floor((step + 1) * n / k).long(), start + 1).clamp(max=lengths[:, None])
    pick = lambda at: totals.gather(1, at.unsqueeze(-1).expand(-1, -1, dim))  # noqa: E731
    means = (pick(end) - pick(start)) / (end - start).unsqueeze(-1).to(x.dtype)
    return means * (step < segments[:, None]).unsqueeze(-1).to(x.dtype)
