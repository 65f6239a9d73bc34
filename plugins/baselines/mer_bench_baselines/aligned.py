"""Baselines that read word-aligned input (EF-LSTM, MFN, Graph-MFN, MFM, MCTN): one step per word in all three
modalities.

On unaligned data every split passes through the harness's one alignment step (`mer_bench.data.align`), so each
such model sees the same segment-mean alignment and the result file says so; on an aligned dataset the split is used
as it is.
"""

from __future__ import annotations

import torch

from mer_bench.data.align import aligned_input
from mer_bench.data.split import Split
from mer_bench.model import FitContext, Predictions
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.training_loop import BaselineModel


class AlignedBaseline(BaselineModel):
    """A `BaselineModel` whose network receives aligned `Inputs`: text, audio and vision all (B, L, D*) with one L."""

    needs_aligned = True

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        super().fit(aligned_input(train, self.info.aligned), aligned_input(valid, self.info.aligned), ctx)

    def predict(self, split: Split) -> Predictions:
        return super().predict(aligned_input(split, self.info.aligned))


def aligned_steps(inputs: Inputs) -> torch.Tensor:
    """(B,) valid steps of an aligned batch: a step counts when any modality has it. On harness-aligned data that is
    the token count; aligned files carry no lengths, so there every padded step counts, as MMSA reads them."""
    return torch.maximum(inputs.text_lengths, torch.maximum(inputs.audio_lengths, inputs.vision_lengths))
