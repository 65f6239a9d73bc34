"""MCTN: Multimodal Cyclic Translation Network (Pham et al., AAAI 2019).

The text sequence is translated into the vision sequence by an attention seq2seq model and back again (the cyclic
translation, which makes the text encoder's states hold what vision carries); a second seq2seq model translates the
first encoder's states into the audio sequence. The states of the second encoder are the joint representation: an
LSTM with attention pooling turns them into the score. Prediction needs the text only (the decoders exist for the
translation losses of training). Needs aligned input (see `aligned.py`). Hyperparameters are MMSA's
(`config_regression.json`, `mctn`, which has MOSI's values only).

All three modalities are zero-padded to one feature width (the widest), because the same translator maps text to
vision and vision back to text. The decoders are teacher-forced: step t is predicted from the true step t - 1 and
the first step is never predicted (its output stays zero), as in MMSA.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from mer_bench.model import DataInfo
from mer_bench_baselines.aligned import AlignedBaseline, aligned_steps
from mer_bench_baselines.common import Inputs, length_mask, masked_mse


@dataclass
class MCTNConfig:
    hidden_size: int = 32               # MMSA's hid_dim: encoder, decoder and regression LSTMs
    translation_weight: float = 0.1     # weight of each of the three translation MSE losses (MMSA's 0.1)
    batch_size: int = 32                # training mini-batch
    learning_rate: float = 1e-4         # Adam step size (no weight decay in MMSA)
    max_grad_norm: float = 1.0          # MMSA's grad_clip, applied with clip_grad_norm_
    patience: int = 8                   # MMSA's early_stop
    max_epochs: int = 100               # epoch cap (MMSA has none)


PRESETS = {   # MMSA has MOSI's values only; every dataset takes them. "synthetic" is ours, sized for two CPU cores
    "mosi": {},
    "sims": {},       # the fallback of the sims label style (sims, sims-v2): MOSI's values, as for every dataset
    "synthetic": {"hidden_size": 16, "learning_rate": 2e-3, "max_epochs": 20},
}


def pad_features(x: torch.Tensor, width: int) -> torch.Tensor:
    """(B, L, D) -> (B, L, width): zeros appended to the feature axis."""
    return F.pad(x, (0, width - x.shape[-1]))


def masked_softmax(scores: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """(B, L) scores -> (B, L) weights over the valid steps only."""
    return F.softmax(scores.masked_fill(~valid, float("-inf")), dim=1)


class Encoder(nn.Module):
    """Bidirectional LSTM: step states (B, L, H) as the sum of both directions, and a summary (B, H) from the two
    final states, which starts the decoder."""

    def __init__(self, in_size: int, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(in_size, hidden, batch_first=True, bidirectional=True)
        self.summary = nn.Linear(hidden, hidden, bias=False)
        self.hidden = hidden

    def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        outputs, (final, _) = self.rnn(packed)                            # final: (2, B, H)
        outputs, _ = pad_packed_sequence(outputs, batch_first=True, total_length=x.shape[1])   # (B, L, 2H)
        states = outputs[..., :self.hidden] + outputs[..., self.hidden:]  # (B, L, H), zero past the end
        return states, torch.tanh(self.summary(final[0] + final[1]))


class Attention(nn.Module):
    """Additive attention of a decoder state over the encoder states."""

    def __init__(self, hidden: int):
        super().__init__()
        self.energy = nn.Linear(2 * hidden, hidden, bias=False)
        self.score = nn.Linear(hidden, 1, bias=False)

    def forward(self, query: torch.Tensor, states: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, H), (B, L, H), (B, L) -> (B, L) weights."""
        repeated = query.unsqueeze(1).expand(-1, states.shape[1], -1)          # (B, L, H)
        energy = torch.tanh(self.energy(torch.cat([repeated, states], dim=2)))
        return masked_softmax(self.score(energy).squeeze(2), valid)


class Decoder(nn.Module):
    """One step: the previous target step and the attended context through a bidirectional LSTM run from a zero
    state (MMSA's design: the recurrence is carried by the query, the sum of both directions' new states)."""

    def __init__(self, out_size: int, hidden: int):
        super().__init__()
        self.attention = Attention(hidden)
        self.rnn = nn.LSTM(out_size + hidden, hidden, batch_first=True, bidirectional=True)
        self.out = nn.Linear(2 * hidden, out_size)
        self.hidden = hidden

    def forward(self, previous: torch.Tensor, query: torch.Tensor, states: torch.Tensor,
                valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, D), (B, H), (B, L, H), (B, L) -> predicted step (B, D), next query (B, H)."""
        weights = self.attention(query, states, valid)                         # (B, L)
        context = torch.bmm(weights.unsqueeze(1), states).squeeze(1)           # (B, H)
        output, _ = self.rnn(torch.cat([previous, context], dim=1).unsqueeze(1))   # (B, 1, 2H)
        new_query = output[:, 0, :self.hidden] + output[:, 0, self.hidden:]    # (B, H)
        return self.out(torch.cat([new_query, context], dim=1)), new_query


class Translator(nn.Module):
    """Seq2seq with attention: encodes a source sequence and decodes a target one, teacher-forced."""

    def __init__(self, in_size: int, out_size: int, hidden: int):
        super().__init__()
        self.encoder = Encoder(in_size, hidden)
        self.decoder = Decoder(out_size, hidden)

    def decode(self, states: torch.Tensor, query: torch.Tensor, target: torch.Tensor,
               valid: torch.Tensor) -> torch.Tensor:
        """(B, L, D) translation of `target`: step t from the true step t - 1; step 0 stays zero."""
        steps = [torch.zeros_like(target[:, 0])]
        for t in range(1, target.shape[1]):
            predicted, query = self.decoder(target[:, t - 1], query, states, valid)
            steps.append(predicted)
        return torch.stack(steps, dim=1)


class AttentionRegression(nn.Module):
    """LSTM over the joint states, attention pooling over the valid steps, one linear to the score."""

    def __init__(self, hidden: int):
        super().__init__()
        self.rnn = nn.LSTM(hidden, hidden, batch_first=True)
        self.attention = nn.Linear(hidden, 1)
        self.out = nn.Linear(hidden, 1)

    def forward(self, states: torch.Tensor, lengths: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """(B, L, H) -> (B,) scores."""
        packed = pack_padded_sequence(states, lengths.cpu(), batch_first=True, enforce_sorted=False)
        activations, _ = pad_packed_sequence(self.rnn(packed)[0], batch_first=True, total_length=states.shape[1])
        weights = masked_softmax(torch.tanh(self.attention(activations)).squeeze(2), valid)   # (B, L)
        pooled = (activations * weights.unsqueeze(2)).sum(dim=1)                         # (B, H)
        return self.out(pooled).squeeze(-1)


class MCTNNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MCTNConfig):
        super().__init__()
        self.width = max(info.feature_dims)             # D: every modality padded to it
        hidden = config.hidden_size
        self.text_to_vision = Translator(self.width, self.width, hidden)   # also vision back to text
        self.joint_to_audio = Translator(hidden, self.width, hidden)
        self.regression = AttentionRegression(hidden)

    def forward(self, inputs: Inputs, translate: bool = False) -> dict[str, torch.Tensor]:
        """The score from the text alone; with `translate`, also the three translation errors (training)."""
        lengths = aligned_steps(inputs)
        valid = length_mask(lengths, inputs.text.shape[1])                  # (B, L)
        text = pad_features(inputs.text, self.width)                         # (B, L, D)
        states, summary = self.text_to_vision.encoder(text, lengths)        # (B, L, H), (B, H)
        joint, joint_summary = self.joint_to_audio.encoder(states, lengths)
        outputs = {"score": self.regression(joint, lengths, valid)}
        if translate:
            vision, audio = pad_features(inputs.vision, self.width), pad_features(inputs.audio, self.width)
            vision_hat = self.text_to_vision.decode(states, summary, vision, valid)
            back_states, back_summary = self.text_to_vision.encoder(vision_hat, lengths)   # the cycle
            text_hat = self.text_to_vision.decode(back_states, back_summary, text, valid)
            audio_hat = self.joint_to_audio.decode(joint, joint_summary, audio, valid)
            outputs.update(vision_error=masked_mse(vision_hat, vision, valid),
                           text_error=masked_mse(text_hat, text, valid),
                           audio_error=masked_mse(audio_hat, audio, valid))
        return outputs


class MCTN(AlignedBaseline):
    name = "mctn"
    summary = "Multimodal Cyclic Translation Network (Pham et al. 2019): text-vision-text and joint-audio (aligned)"
    Config = MCTNConfig
    smoke_settings = {"hidden_size": 4, "batch_size": 16}

    presets = PRESETS
    network_class = MCTNNetwork

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        return self.network(inputs, translate=self.network.training)

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """L1 on the label plus the weighted translation errors (text to vision, back to text, joint to audio)."""
        translation = outputs["vision_error"] + outputs["text_error"] + outputs["audio_error"]
        return F.l1_loss(outputs["score"], inputs.label) + self.config.translation_weight * translation
