"""MAG-BERT: BERT with a Multimodal Adaptation Gate (Rahman et al., ACL 2020).

Audio and vision enter BERT between its embedding layer and its first layer. For every token, the gate builds a
nonverbal displacement from the token's own audio and vision vectors, each scaled by a ReLU gate that also reads the
token's embedding; the displacement is shrunk so its norm is at most `beta_shift` times the embedding's norm, added to
the embedding, and the sum goes through a LayerNorm and dropout into BERT's layers. The [CLS] state of the last layer
is pooled (dense, tanh) and regressed (dropout, linear). Everything, BERT's embeddings included, is fine-tuned with
Adam and the L1 loss, as MMSA trains it. Needs token ids (text mode `bert` only) and one audio and vision vector per
token (aligned input, see `aligned.py`). Hyperparameters per dataset are MMSA's (`config_regression.json`,
`bert_mag`).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn
from torch.nn import functional as F

from mer_bench.errors import UserError
from mer_bench.model import DataInfo
from mer_bench.model_config import bounds
from mer_bench_baselines.aligned import AlignedBaseline
from mer_bench_baselines.common import Inputs, TextInput, bert_style_init

NORM_EPS = 1e-6     # MMSA's guard in the norm ratio


@dataclass
class MAGBERTConfig:
    beta_shift: float = field(default=1.0, metadata=bounds(low=0))   # displacement norm cap, in embedding norms
    dropout_prob: float = 0.3           # dropout after the gate's LayerNorm
    batch_size: int = 32                 # training mini-batch
    learning_rate: float = 2e-5          # Adam step size (BERT, gate and head alike)
    weight_decay: float = 0.0            # L2 penalty on every parameter (MMSA: 0 for all datasets)
    patience: int = 8                    # MMSA's early_stop
    max_epochs: int = 100                # epoch cap (MMSA has none)
    bert_model: str = ""                 # BERT name or folder; empty: the dataset's text model


PRESETS = {   # MMSA's per-dataset values; sims-v2 takes sims's (MMSA has none; same language and label style)
    "mosi": dict(batch_size=32, learning_rate=2e-5, beta_shift=1.0, dropout_prob=0.3),
    "mosei": dict(batch_size=32, learning_rate=1e-5, beta_shift=1.0, dropout_prob=0.2),
    "sims": dict(batch_size=32, learning_rate=5e-5, beta_shift=1.0, dropout_prob=0.1),
    "sims-v2": dict(batch_size=32, learning_rate=5e-5, beta_shift=1.0, dropout_prob=0.1),
    # ours: a BERT trained from the synthetic ids needs larger steps than a pretrained one being adapted
    "synthetic": dict(batch_size=32, learning_rate=3e-3, beta_shift=1.0, dropout_prob=0.1, max_epochs=30),
}


class AdaptationGate(nn.Module):
    """The MAG: each token's embedding shifted by a gated, norm-capped audio-visual displacement."""

    def __init__(self, hidden: int, audio_in: int, vision_in: int, beta_shift: float, dropout: float):
        super().__init__()
        self.gate_vision = nn.Linear(vision_in + hidden, hidden)    # W_hv: reads [vision; embedding]
        self.gate_audio = nn.Linear(audio_in + hidden, hidden)      # W_ha: reads [audio; embedding]
        self.project_vision = nn.Linear(vision_in, hidden)          # W_v
        self.project_audio = nn.Linear(audio_in, hidden)            # W_a
        self.beta_shift = beta_shift
        self.norm = nn.LayerNorm(hidden)
        self.dropout = nn.Dropout(dropout)

    def displacement(self, words: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        """H = relu(W_hv [v; z]) * W_v v + relu(W_ha [a; z]) * W_a a: (B, L, H), (B, L, Da), (B, L, Dv) -> (B, L, H)"""
        vision_gate = F.relu(self.gate_vision(torch.cat([vision, words], dim=-1)))
        audio_gate = F.relu(self.gate_audio(torch.cat([audio, words], dim=-1)))
        return vision_gate * self.project_vision(vision) + audio_gate * self.project_audio(audio)

    def scale(self, words: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
        """alpha = min(beta * ||z|| / ||H||, 1) per token: (B, L, H), (B, L, H) -> (B, L, 1).

        A zero displacement counts as norm 1 (as in MMSA): alpha is then finite and the shift adds nothing anyway."""
        shift_norm = shift.norm(dim=-1)
        shift_norm = torch.where(shift_norm == 0, torch.ones_like(shift_norm), shift_norm)
        ratio = words.norm(dim=-1) / (shift_norm + NORM_EPS) * self.beta_shift
        return ratio.clamp(max=1.0).unsqueeze(-1)

    def forward(self, words: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> torch.Tensor:
        """(B, L, H) embeddings, (B, L, Da) audio, (B, L, Dv) vision -> (B, L, H) shifted embeddings"""
        shift = self.displacement(words, audio, vision)
        return self.dropout(self.norm(words + self.scale(words, shift) * shift))


class MAGBERTNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: MAGBERTConfig):
        super().__init__()
        self.text_input = TextInput(info, config.bert_model)
        bert = self.text_input.bert
        hidden = bert.config.hidden_size
        self.gate = AdaptationGate(hidden, *info.feature_dims[1:], config.beta_shift, config.dropout_prob)
        # BERT's pooler (dense, tanh on [CLS]) and MMSA's classifier; the loaded BERT has no pooler, so ours is new
        self.pooler = nn.Sequential(nn.Linear(hidden, hidden), nn.Tanh())
        self.head = nn.Sequential(nn.Dropout(bert.config.hidden_dropout_prob), nn.Linear(hidden, 1))
        for module in (self.gate, self.pooler, self.head):   # BERT's initialisation, as MMSA's init_weights gives them
            module.apply(lambda m: bert_style_init(m, bert.config.initializer_range))
        self._batch: Inputs | None = None      # the batch whose audio and vision the gate reads
        bert.embeddings.register_forward_hook(self._adapt)

    def _adapt(self, module: nn.Module, args: tuple, embeddings: torch.Tensor) -> torch.Tensor:
        """Replace the embedding layer's output (B, Lt, H) by its gated shift before BERT's first layer."""
        audio, vision = self._batch.audio, self._batch.vision       # (B, Lt, Da), (B, Lt, Dv): one step per token
        if audio.shape[1] != embeddings.shape[1] or vision.shape[1] != embeddings.shape[1]:
            raise UserError(f"Model 'mag-bert' needs one audio and vision step per token: got {audio.shape[1]} "
                            f"audio and {vision.shape[1]} vision steps for {embeddings.shape[1]} tokens.")
        return self.gate(embeddings, audio.to(embeddings.dtype), vision.to(embeddings.dtype))

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        self._batch = inputs
        try:
            words = self.text_input(inputs)                                    # (B, Lt, H) last-layer states
        finally:
            self._batch = None
        return {"score": self.head(self.pooler(words[:, 0])).squeeze(-1)}


class MAGBERT(AlignedBaseline):
    name = "mag-bert"
    summary = "MAG-BERT (Rahman et al. 2020): a gate shifts BERT's word embeddings by their audio and vision (aligned)"
    Config = MAGBERTConfig
    text_modes = ("bert",)
    smoke_settings = {"batch_size": 16, "learning_rate": 1e-4}
    presets = PRESETS
    network_class = MAGBERTNetwork

    @classmethod
    def check_dataset(cls, info: DataInfo) -> None:
        if info.text_mode != "bert":
            raise UserError("Model 'mag-bert' needs token ids: it shifts BERT's word embeddings by audio and vision, "
                            "so it runs with --text-mode bert only.")
        super().check_dataset(info)
