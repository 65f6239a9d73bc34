"""Building blocks every baseline shares: device-resident inputs, masks and pooling, sequence encoders, text input.

Each model file composes these; nothing here knows about a particular model.
"""

from __future__ import annotations

import dataclasses
import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mer_bench.bert import chosen_bert, load_bert
from mer_bench.data.align import clamped_lengths, text_lengths
from mer_bench.data.split import Split
from mer_bench.model import DataInfo
from mer_bench.training import autocast, batch_indices


@dataclass(frozen=True, eq=False)
class Inputs:
    """The tensors a baseline reads from a split, all on one device. A batch is an `Inputs` gathered by index."""

    index: torch.Tensor                  # (N,) int64 position of each sample in its split (per-sample state keys)
    label: torch.Tensor                  # (N,) float32 multimodal label
    text: torch.Tensor | None            # (N, Lt, Dt) precomputed BERT features (text mode "features")
    text_ids: torch.Tensor | None        # (N, 3, Lt) int64 ids / mask / segments (text mode "bert")
    text_lengths: torch.Tensor           # (N,) int64 tokens, [CLS] and [SEP] included, at least 1
    audio: torch.Tensor                  # (N, La, Da)
    audio_lengths: torch.Tensor          # (N,) int64 in [1, La]
    vision: torch.Tensor                 # (N, Lv, Dv)
    vision_lengths: torch.Tensor         # (N,) int64 in [1, Lv]

    @classmethod
    def from_split(cls, split: Split, text_mode: str, device: torch.device) -> Inputs:
        """Keep only what the text mode needs and move it to `device` once, so batches are index gathers there."""
        text = split.text.float() if text_mode == "features" else None
        text_ids = split.text_bert.long() if text_mode == "bert" else None
        inputs = cls(
            index=torch.arange(len(split)), label=split.label.float(), text=text, text_ids=text_ids,
            text_lengths=text_lengths(split),
            audio=split.audio.float(), audio_lengths=clamped_lengths(split.audio_lengths, split.audio.shape[1]),
            vision=split.vision.float(), vision_lengths=clamped_lengths(split.vision_lengths, split.vision.shape[1]))
        return inputs.to(device)

    def __len__(self) -> int:
        return int(self.label.shape[0])

    def to(self, device: torch.device) -> Inputs:
        return dataclasses.replace(self, **{name: value.to(device) for name, value in self._tensors().items()})

    def take(self, index: torch.Tensor) -> Inputs:
        index = index.to(self.label.device)
        return dataclasses.replace(self, **{name: value.index_select(0, index) for name, value in self._tensors().items()})

    def batches(self, batch_size: int, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[Inputs]:
        for index in batch_indices(len(self), batch_size, shuffle, generator):
            yield self.take(index)

    def _tensors(self) -> dict[str, torch.Tensor]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if getattr(self, f.name) is not None}


def length_mask(lengths: torch.Tensor, max_length: int) -> torch.Tensor:
    """(B, L) bool, True at valid (non-padded) steps."""
    return torch.arange(max_length, device=lengths.device)[None, :] < lengths[:, None]


def masked_mean(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> (B, D): mean over the valid steps only, so padding does not shrink short sequences."""
    mask = length_mask(lengths, x.shape[1]).to(x.dtype).unsqueeze(-1)       # (B, L, 1)
    return (x * mask).sum(dim=1) / lengths.to(x.dtype).clamp(min=1).unsqueeze(-1)


def last_valid(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L, D) -> (B, D): the element at each sequence's last valid step."""
    index = (lengths - 1).clamp(min=0).view(-1, 1, 1).expand(-1, 1, x.shape[-1])
    return x.gather(1, index).squeeze(1)


class LSTMEncoder(nn.Module):
    """LSTM over the valid steps of padded sequences (packed): the final state, or the mean of the step outputs.

    Packing makes the final state the one at each sequence's true end, not after a run of padding frames;
    "mean" pooling averages the outputs over the valid steps, which suits long, noisy frame sequences.
    """

    def __init__(self, in_size: int, hidden_size: int, num_layers: int = 1, dropout: float = 0.0,
                 bidirectional: bool = False, pooling: str = "last"):
        super().__init__()
        if pooling not in ("last", "mean"):
            raise ValueError(f"pooling must be 'last' or 'mean', not {pooling!r}")
        self.pooling = pooling
        self.rnn = nn.LSTM(in_size, hidden_size, num_layers=num_layers, batch_first=True,
                           dropout=dropout if num_layers > 1 else 0.0, bidirectional=bidirectional)

    @property
    def out_size(self) -> int:
        return self.rnn.hidden_size * (2 if self.rnn.bidirectional else 1)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D), (B,) -> (B, H), or (B, 2H) when bidirectional (both directions)."""
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (final, _) = self.rnn(packed)              # final: (layers * directions, B, H)
        if self.pooling == "mean":
            steps, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])  # (B, L, H*dirs)
            return masked_mean(steps, lengths)
        directions = 2 if self.rnn.bidirectional else 1
        return torch.cat(list(final[-directions:]), dim=-1)


class TextSubNet(nn.Module):
    """The language subnetwork of TFN, LMF and LF-DNN: an LSTM over word features, its final state through a linear.

    No dropout, as in MMSA: its one-layer TextSubNet sets its dropout to 0 (for the LSTM, where one layer has no gap
    to drop in, and for the nn.Dropout on the final state alike), so the text value of `dropouts` has no effect there.
    """

    def __init__(self, in_size: int, hidden_size: int, out_size: int):
        super().__init__()
        self.lstm = LSTMEncoder(in_size, hidden_size)
        self.linear = nn.Linear(hidden_size, out_size)

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, L, D) -> (B, out_size)"""
        return self.linear(self.lstm(x, lengths))


class MLPSubNet(nn.Module):
    """The audio / vision subnetwork of TFN, LMF and LF-DNN: batch norm, dropout, three ReLU layers."""

    def __init__(self, in_size: int, hidden_size: int, dropout: float):
        super().__init__()
        self.norm = nn.BatchNorm1d(in_size)
        self.layers = nn.Sequential(
            nn.Dropout(dropout), nn.Linear(in_size, hidden_size), nn.ReLU(),
            nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, hidden_size), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, D) -> (B, hidden_size)"""
        return self.layers(self.norm(x))


class SubnetEncoders(nn.Module):
    """The three subnetworks TFN, LMF and LF-DNN share, which each then fuse in their own way: audio and vision MLPs
    over the time-averaged frames (true lengths only) and an LSTM over the text."""

    def __init__(self, info: DataInfo, hidden_dims: tuple[int, int, int], dropouts: tuple[float, float, float],
                 text_out: int):
        super().__init__()
        text_in, audio_in, vision_in = info.feature_dims
        text_hidden, audio_hidden, vision_hidden = hidden_dims          # (text, audio, vision), as MMSA orders them
        audio_drop, vision_drop, _ = dropouts      # (audio, vision, text); the text value is unused, as in MMSA
        self.audio_subnet = MLPSubNet(audio_in, audio_hidden, audio_drop)
        self.vision_subnet = MLPSubNet(vision_in, vision_hidden, vision_drop)
        self.text_subnet = TextSubNet(text_in, text_hidden, text_out)

    def forward(self, inputs: Inputs) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(audio (B, Ha), vision (B, Hv), text (B, text_out))"""
        audio = self.audio_subnet(masked_mean(inputs.audio, inputs.audio_lengths))
        vision = self.vision_subnet(masked_mean(inputs.vision, inputs.vision_lengths))
        return audio, vision, self.text_subnet(inputs.text, inputs.text_lengths)


def regression_head(in_size: int, hidden_size: int, dropout: float) -> nn.Sequential:
    """The post-fusion MLP of TFN and LF-DNN: dropout, two ReLU layers, one output. (B, in_size) -> (B, 1)"""
    return nn.Sequential(nn.Dropout(dropout), nn.Linear(in_size, hidden_size), nn.ReLU(),
                         nn.Linear(hidden_size, hidden_size), nn.ReLU(), nn.Linear(hidden_size, 1))


class TextInput(nn.Module):
    """The word-level text sequence a model starts from: precomputed features, or BERT (fine-tuned) over token ids."""

    def __init__(self, info: DataInfo, bert_model: str = ""):
        super().__init__()
        self.mode = info.text_mode
        bert_name = chosen_bert(bert_model, info.text_model)
        self.bert = load_bert(bert_name, info.seq_lens[0]) if self.mode == "bert" else None
        self.out_size = self.bert.config.hidden_size if self.bert is not None else info.feature_dims[0]

    def forward(self, inputs: Inputs) -> torch.Tensor:
        """-> (B, Lt, out_size) word states; positions past `inputs.text_lengths` are padding."""
        if self.bert is None:
            return inputs.text
        ids = inputs.text_ids
        with autocast(ids.device):     # bf16 on CUDA, where BERT's cost is; the states go on in float32
            states = self.bert(input_ids=ids[:, 0], attention_mask=ids[:, 1], token_type_ids=ids[:, 2])
        return states.last_hidden_state.float()


@functools.lru_cache(maxsize=32)
def sinusoidal_positions(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(L, dim) fixed sine/cosine position codes (Vaswani et al. 2017), as MulT adds to its inputs.

    Built once per (length, dim, device) and then shared: callers must not modify the table in place.
    """
    position = torch.arange(length, device=device, dtype=torch.float32)[:, None]
    frequency = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    codes = torch.zeros(length, dim, device=device)
    codes[:, 0::2] = torch.sin(position * frequency)
    codes[:, 1::2] = torch.cos(position * frequency)[:, : dim // 2]
    return codes


def masked_mse(predicted: torch.Tensor, target: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Mean squared error over the valid steps of (B, L, D) sequences and every feature (MMSA's MSELoss on the
    valid steps): MCTN's translations, MFM's reconstructions. valid: (B, L) bool."""
    mask = valid.unsqueeze(-1).to(predicted.dtype)                              # (B, L, 1)
    return ((predicted - target).pow(2) * mask).sum() / (mask.sum() * predicted.shape[-1])


def bert_style_init(module: nn.Module, std: float) -> None:
    """BERT's initialisation of a new linear layer beside it (normal weights, zero bias): CENET's CE module and head,
    MAG-BERT's gate and head."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=std)
        nn.init.zeros_(module.bias)
