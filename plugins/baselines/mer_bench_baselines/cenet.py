"""CENET: Cross-modal Enhancement Network (Wang et al., IEEE TMM 2022).

Audio and vision enter BERT itself: before one of its layers (`injection_layer`, MMSA's 1), a cross-modal
enhancement (CE) module lets every word state attend to the projected vision frames and, separately, to the projected
audio frames; the two results are concatenated, projected back to BERT's size and added to the word states, which
then go on through the remaining layers. The [CLS] state of the last layer is regressed by BERT's usual
classification head (dropout, dense, tanh, dropout, linear). BERT is fine-tuned, but not its embedding layer (MMSA
computes the embeddings without gradients). L1 loss, Adam with BERT's no-decay rule, gradient-norm clipping at 2.
Needs token ids: text mode `bert` only. Hyperparameters per dataset are MMSA's (`config_regression.json`, `cenet`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mer_bench.errors import UserError
from mer_bench.model import DataInfo
from mer_bench.model_config import bounds
from mer_bench_baselines.common import Inputs, TextInput, bert_style_init, length_mask
from mer_bench_baselines.training_loop import BaselineModel, trainable

NO_DECAY = ("bias", "LayerNorm.weight")   # MMSA's no-decay rule for BERT and the head (not the CE module)
ATTENTION_SHARPNESS = 8.0   # CE multiplies its attention scores by 8 (the authors' code), where BERT divides by sqrt(d)


@dataclass
class CENETConfig:
    injection_layer: int = field(default=1, metadata=bounds(low=0))   # BERT layer the CE module feeds (0: the first)
    batch_size: int = 64                 # training mini-batch
    learning_rate: float = 1e-5          # Adam step size (BERT, CE module and head alike)
    weight_decay: float = 1e-4           # L2 penalty (not on biases and LayerNorm weights outside the CE module)
    adam_epsilon: float = field(default=3e-8, metadata=bounds(low=0, low_inclusive=False))   # Adam's eps
    max_grad_norm: float = field(default=2.0, metadata=bounds(low=0, low_inclusive=False))  # gradient norm clip
    patience: int = 8                    # MMSA's early_stop
    max_epochs: int = 100                # epoch cap (MMSA has none)
    bert_model: str = ""                 # BERT name or folder; empty: the dataset's text model


PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours (a BERT trained from the synthetic ids needs more steps)
    "mosi": dict(learning_rate=1e-5, weight_decay=1e-4, adam_epsilon=3e-8, batch_size=64),
    "mosei": dict(learning_rate=1e-5, weight_decay=1e-4, adam_epsilon=1e-8, batch_size=64),
    "sims": dict(learning_rate=2e-6, weight_decay=0.0, adam_epsilon=2e-8, batch_size=32),
    "sims-v2": dict(learning_rate=3e-5, weight_decay=0.0, adam_epsilon=3e-8, batch_size=64),
    "synthetic": dict(learning_rate=1e-3, weight_decay=0.0, adam_epsilon=1e-8, batch_size=32, max_epochs=30),
}


class FrameAttention(nn.Module):
    """Word states (queries) attend to one modality's projected frames (keys, values): one head, sharpened scores."""

    def __init__(self, size: int):
        super().__init__()
        self.Wq, self.Wk, self.Wv = (nn.Linear(size, size) for _ in range(3))

    def forward(self, words: torch.Tensor, frames: torch.Tensor, frame_valid: torch.Tensor) -> torch.Tensor:
        """words (B, Lt, H), frames (B, Lf, H), frame_valid (B, Lf) -> (B, Lt, H)"""
        scores = self.Wq(words) @ self.Wk(frames).transpose(1, 2) * ATTENTION_SHARPNESS       # (B, Lt, Lf)
        scores = scores.masked_fill(~frame_valid[:, None, :], float("-inf"))
        return scores.softmax(dim=-1) @ self.Wv(frames)


class CrossModalEnhancement(nn.Module):
    """The CE module: word states plus a projection of what they found in the vision and audio frames."""

    def __init__(self, hidden: int, audio_in: int, vision_in: int):
        super().__init__()
        self.visual_transform = nn.Sequential(nn.Linear(vision_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.acoustic_transform = nn.Sequential(nn.Linear(audio_in, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
        self.hv, self.ha = FrameAttention(hidden), FrameAttention(hidden)
        self.cat_connect = nn.Linear(2 * hidden, hidden)

    def forward(self, words: torch.Tensor, inputs: Inputs) -> torch.Tensor:
        """(B, Lt, H) word states of the batch `inputs` -> (B, Lt, H) enhanced states."""
        vision_valid = length_mask(inputs.vision_lengths, inputs.vision.shape[1])
        audio_valid = length_mask(inputs.audio_lengths, inputs.audio.shape[1])
        vision = self.hv(words, self.visual_transform(inputs.vision), vision_valid)
        audio = self.ha(words, self.acoustic_transform(inputs.audio), audio_valid)
        return words + self.cat_connect(torch.cat([vision, audio], dim=-1))


class CENETNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: CENETConfig):
        super().__init__()
        self.text_input = TextInput(info, config.bert_model)
        bert = self.text_input.bert
        layers = bert.config.num_hidden_layers
        if config.injection_layer >= layers:
            raise UserError(f"Setting 'injection_layer' of model 'cenet': the BERT has {layers} layer(s), so it must "
                            f"be at most {layers - 1} (got {config.injection_layer}).")
        hidden = bert.config.hidden_size
        self.enhance = CrossModalEnhancement(hidden, *info.feature_dims[1:])
        self.head = nn.Sequential(nn.Dropout(bert.config.hidden_dropout_prob), nn.Linear(hidden, hidden), nn.Tanh(),
                                  nn.Dropout(bert.config.hidden_dropout_prob), nn.Linear(hidden, 1))
        for module in (self.enhance, self.head):      # BERT's initialisation, as MMSA's BertPreTrainedModel gives them
            module.apply(lambda m: bert_style_init(m, bert.config.initializer_range))
        self._batch: Inputs | None = None             # the batch whose audio and vision the CE module reads
        bert.embeddings.register_forward_hook(lambda module, args, output: output.detach())
        bert.encoder.layer[config.injection_layer].register_forward_pre_hook(self._inject, with_kwargs=True)

    def _inject(self, layer: nn.Module, args: tuple, kwargs: dict) -> tuple[tuple, dict]:
        """Replace the word states entering the injection layer by their enhanced version."""
        return (self.enhance(args[0], self._batch), *args[1:]), kwargs

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        self._batch = inputs
        try:
            words = self.text_input(inputs)                                    # (B, Lt, H) last-layer states
        finally:
            self._batch = None
        return {"score": self.head(words[:, 0]).squeeze(-1)}


class CENET(BaselineModel):
    name = "cenet"
    summary = "CENET (Wang et al. 2022): audio and vision enhance BERT's word states inside its layers"
    Config = CENETConfig
    text_modes = ("bert",)
    smoke_settings = {"injection_layer": 0, "batch_size": 16, "learning_rate": 1e-4}
    presets = PRESETS
    network_class = CENETNetwork

    @classmethod
    def check_dataset(cls, info: DataInfo) -> None:
        if info.text_mode != "bert":
            raise UserError("Model 'cenet' needs token ids: it adds audio and vision inside BERT's layers, so it runs "
                            "with --text-mode bert only.")
        super().check_dataset(info)

    def parameter_groups(self) -> list[dict[str, Any]]:
        """MMSA's three groups: BERT and head with decay, the CE module with decay, BERT and head biases and
        LayerNorm weights without; one learning rate and Adam epsilon for all."""
        c, network = self.config, self.network
        rest = [(name, p) for name, p in network.named_parameters() if not name.startswith("enhance.")]
        no_decay = [p for name, p in rest if any(part in name for part in NO_DECAY)]
        decay = [p for name, p in rest if not any(part in name for part in NO_DECAY)]
        groups = [(decay, c.weight_decay), (list(network.enhance.parameters()), c.weight_decay), (no_decay, 0.0)]
        return [{"params": trainable(params), "lr": c.learning_rate, "weight_decay": decay_value, "eps": c.adam_epsilon}
                for params, decay_value in groups]
