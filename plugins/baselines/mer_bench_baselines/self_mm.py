"""Self-MM: self-supervised multi-task learning with generated unimodal labels (Yu et al., AAAI 2021).

A fusion head and three unimodal heads (text, audio, vision) are trained together. Only the multimodal label is
given: the unimodal labels are generated during training by the unimodal label generation module (ULGM, in
`self_mm_labels.py`) from how far each sample's unimodal and fused representations lie from the positive and
negative class centres. Each unimodal task's L1 loss is weighted by tanh(|y_s - y_m|), so it only speaks where the
generated label departs from the multimodal one. Hyperparameters per dataset are MMSA's (`config_regression.json`,
`self_mm`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext
from mer_bench.model_config import bounds
from mer_bench_baselines.common import Inputs, LSTMEncoder, TextInput, masked_mean
from mer_bench_baselines.self_mm_labels import TASKS, UnimodalLabelGenerator
from mer_bench_baselines.training_loop import BaselineModel, trainable

NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")   # BERT parameters trained without weight decay


@dataclass
class SelfMMConfig:
    batch_size: int = 32                 # training mini-batch
    accumulation: int = 4                # batches per optimiser step (MMSA's update_epochs)
    learning_rate_bert: float = 5e-5     # Adam step size of BERT (text mode "bert")
    learning_rate_audio: float = 5e-3    # Adam step size of the audio LSTM
    learning_rate_video: float = 5e-3    # Adam step size of the vision LSTM
    learning_rate_other: float = 1e-3    # Adam step size of the heads
    weight_decay_bert: float = 1e-3      # L2 penalty of BERT (biases and LayerNorm excluded)
    weight_decay_audio: float = 1e-2     # L2 penalty of the audio LSTM
    weight_decay_video: float = 1e-2     # L2 penalty of the vision LSTM
    weight_decay_other: float = 1e-3     # L2 penalty of the heads
    a_lstm_hidden_size: int = 16         # audio LSTM state size
    v_lstm_hidden_size: int = 64         # vision LSTM state size
    a_lstm_layers: int = 1               # audio LSTM layers
    v_lstm_layers: int = 1               # vision LSTM layers
    a_lstm_dropout: float = 0.0          # dropout after (and between layers of) the audio LSTM
    v_lstm_dropout: float = 0.0          # dropout after (and between layers of) the vision LSTM
    audio_out: int = 16                  # audio representation size
    video_out: int = 32                  # vision representation size
    post_fusion_dim: int = 128           # hidden size of the fusion head (its first layer is the ULGM feature)
    post_text_dim: int = 64              # hidden size of the text head
    post_audio_dim: int = 16             # hidden size of the audio head
    post_video_dim: int = 32             # hidden size of the vision head
    post_fusion_dropout: float = 0.0     # dropout before the fusion head
    post_text_dropout: float = 0.1       # dropout before the text head
    post_audio_dropout: float = 0.1      # dropout before the audio head
    post_video_dropout: float = 0.0      # dropout before the vision head
    H: float = field(default=1.0, metadata=bounds(low=0, low_inclusive=False))  # labels clipped to [-H, H]
    exclude_zero: bool = True            # zero-labelled samples belong to neither class centre
    text_pooling: str = "mean"           # text vector: "cls" (BERT's first token, the paper's) or masked "mean"
    patience: int = 8                    # MMSA's early_stop
    max_epochs: int = 100                # epoch cap (MMSA has none)
    bert_model: str = ""                 # BERT name or folder for text mode "bert"; empty: the dataset's text model


_SHARED = dict(learning_rate_bert=5e-5, a_lstm_hidden_size=16, v_lstm_layers=1, a_lstm_layers=1, audio_out=16,
               video_out=32, a_lstm_dropout=0.0, v_lstm_dropout=0.0, post_fusion_dim=128, post_video_dim=32)
PRESETS = {   # MMSA's per-dataset values; "synthetic" is ours, sized for two CPU cores
    "mosi": dict(_SHARED, batch_size=16, learning_rate_audio=5e-3, learning_rate_video=5e-3, learning_rate_other=1e-3,
                 weight_decay_bert=1e-3, weight_decay_audio=1e-3, weight_decay_video=1e-3, weight_decay_other=1e-3,
                 v_lstm_hidden_size=32, post_text_dim=32, post_audio_dim=16, post_fusion_dropout=0.0,
                 post_text_dropout=0.1, post_audio_dropout=0.1, post_video_dropout=0.0, H=3.0),
    "mosei": dict(_SHARED, batch_size=32, learning_rate_audio=5e-3, learning_rate_video=1e-4,
                  learning_rate_other=1e-3, weight_decay_bert=1e-3, weight_decay_audio=0.0, weight_decay_video=0.0,
                  weight_decay_other=1e-2, v_lstm_hidden_size=32, post_text_dim=32, post_audio_dim=16,
                  post_fusion_dropout=0.1, post_text_dropout=0.0, post_audio_dropout=0.0, post_video_dropout=0.0,
                  H=3.0),
    "sims": dict(_SHARED, batch_size=32, learning_rate_audio=5e-3, learning_rate_video=5e-3, learning_rate_other=1e-3,
                 weight_decay_bert=1e-3, weight_decay_audio=1e-2, weight_decay_video=1e-2, weight_decay_other=1e-3,
                 v_lstm_hidden_size=64, post_text_dim=64, post_audio_dim=16, post_fusion_dropout=0.0,
                 post_text_dropout=0.1, post_audio_dropout=0.1, post_video_dropout=0.0, H=1.0),
    "sims-v2": dict(_SHARED, batch_size=16, learning_rate_audio=1e-3, learning_rate_video=1e-3,
                    learning_rate_other=1e-3, weight_decay_bert=1e-2, weight_decay_audio=0.0, weight_decay_video=0.0,
                    weight_decay_other=1e-3, v_lstm_hidden_size=64, post_text_dim=64, post_audio_dim=32,
                    post_fusion_dropout=0.0, post_text_dropout=0.0, post_audio_dropout=0.1, post_video_dropout=0.0,
                    H=3.0),
}
PRESETS["synthetic"] = dict(PRESETS["sims"], accumulation=1, post_fusion_dim=64, max_epochs=30)


def head(in_size: int, hidden: int, dropout: float) -> nn.ModuleDict:
    """A regression head whose first ReLU layer is kept apart: the ULGM reads its output as the task's feature."""
    return nn.ModuleDict({"first": nn.Sequential(nn.Dropout(dropout), nn.Linear(in_size, hidden), nn.ReLU()),
                          "rest": nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, 1))})


class SelfMMNetwork(nn.Module):
    def __init__(self, info: DataInfo, config: SelfMMConfig):
        super().__init__()
        c = config
        _, audio_in, vision_in = info.feature_dims
        self.text_pooling = c.text_pooling
        self.text_model = TextInput(info, c.bert_model)
        self.audio_model = nn.ModuleDict({"lstm": LSTMEncoder(audio_in, c.a_lstm_hidden_size, c.a_lstm_layers,
                                                              c.a_lstm_dropout),
                                          "out": nn.Sequential(nn.Dropout(c.a_lstm_dropout),
                                                               nn.Linear(c.a_lstm_hidden_size, c.audio_out))})
        self.video_model = nn.ModuleDict({"lstm": LSTMEncoder(vision_in, c.v_lstm_hidden_size, c.v_lstm_layers,
                                                              c.v_lstm_dropout),
                                          "out": nn.Sequential(nn.Dropout(c.v_lstm_dropout),
                                                               nn.Linear(c.v_lstm_hidden_size, c.video_out))})
        text_out = self.text_model.out_size
        self.heads = nn.ModuleDict({
            "fusion": head(text_out + c.audio_out + c.video_out, c.post_fusion_dim, c.post_fusion_dropout),
            "text": head(text_out, c.post_text_dim, c.post_text_dropout),
            "audio": head(c.audio_out, c.post_audio_dim, c.post_audio_dropout),
            "vision": head(c.video_out, c.post_video_dim, c.post_video_dropout)})

    def representations(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        words = self.text_model(inputs)                                               # (B, Lt, Dt)
        text = words[:, 0] if self.text_pooling == "cls" else masked_mean(words, inputs.text_lengths)
        audio = self.audio_model["out"](self.audio_model["lstm"](inputs.audio, inputs.audio_lengths))
        vision = self.video_model["out"](self.video_model["lstm"](inputs.vision, inputs.vision_lengths))
        return {"fusion": torch.cat([text, audio, vision], dim=-1), "text": text, "audio": audio, "vision": vision}

    def forward(self, inputs: Inputs) -> dict[str, torch.Tensor]:
        out = {}
        for task, representation in self.representations(inputs).items():
            feature = self.heads[task]["first"](representation)                       # (B, post dim)
            out[f"feature_{task}"] = feature
            out[f"score_{task}"] = self.heads[task]["rest"](feature).squeeze(-1)      # (B,)
        out["score"] = out["score_fusion"]
        return out


def bert_groups(text_model: nn.Module, lr: float, decay: float) -> list[tuple[list[nn.Parameter], float, float]]:
    """BERT's two Adam groups as MMSA builds them: (parameters, lr, decay), biases and LayerNorm without decay."""
    named = list(text_model.named_parameters())
    return [([p for n, p in named if not any(part in n for part in NO_DECAY)], lr, decay),
            ([p for n, p in named if any(part in n for part in NO_DECAY)], lr, 0.0)]


def adam_groups(groups: list[tuple[list[nn.Parameter], float, float]]) -> list[dict[str, Any]]:
    """(parameters, lr, decay) triples as Adam's groups, trainable tensors only, empty groups left out."""
    return [{"params": trainable(params), "lr": lr, "weight_decay": decay} for params, lr, decay in groups if params]


class UnimodalLabelModel(BaselineModel):
    """Training shared by Self-MM and TETFN: a fusion head and three unimodal heads, the unimodal targets generated by
    the ULGM (`self_mm_labels.py`), tanh-weighted L1 on them, and MMSA's five Adam groups (BERT with and without
    decay, audio subnetwork, vision subnetwork, the rest).

    The network has `text_model`, `audio_model` and `video_model` submodules and its forward gives `score_{task}` and
    `feature_{task}` (the first layer of each task's head) for the four tasks; the config has `post_fusion_dim`,
    `post_text_dim`, `post_audio_dim`, `post_video_dim`, `H`, `exclude_zero` and the rates and decays of the groups.
    """

    def __init__(self, config: Any, info: DataInfo):
        super().__init__(config, info)
        self.labels: UnimodalLabelGenerator | None = None     # training-time state, built in on_fit_start

    def parameter_groups(self) -> list[dict[str, Any]]:
        c, network = self.config, self.network
        subnets = {id(p) for module in (network.text_model, network.audio_model, network.video_model)
                   for p in module.parameters()}
        groups = [
            *bert_groups(network.text_model, c.learning_rate_bert, c.weight_decay_bert),
            (list(network.audio_model.parameters()), c.learning_rate_audio, c.weight_decay_audio),
            (list(network.video_model.parameters()), c.learning_rate_video, c.weight_decay_video),
            ([p for p in network.parameters() if id(p) not in subnets], c.learning_rate_other, c.weight_decay_other)]
        return adam_groups(groups)

    def on_fit_start(self, train: Inputs, ctx: FitContext) -> None:
        c = self.config
        dims = {"fusion": c.post_fusion_dim, "text": c.post_text_dim, "audio": c.post_audio_dim,
                "vision": c.post_video_dim}
        self.labels = UnimodalLabelGenerator(train.label, dims, c.H, c.exclude_zero)

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """Sum over the four tasks of L1 against the (generated) labels, unimodal tasks weighted by the ULGM."""
        loss = outputs["score"].new_zeros(())
        for task in TASKS:
            target, weight = self.labels.targets(task, inputs.index)
            loss = loss + (weight * (outputs[f"score_{task}"] - target).abs()).mean()
        return loss

    def after_batch(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> None:
        features = {task: outputs[f"feature_{task}"].float() for task in TASKS}
        self.labels.update(features, inputs.index, epoch)


class SelfMM(UnimodalLabelModel):
    name = "self-mm"
    summary = "Self-MM (Yu et al. 2021): multi-task learning with self-generated unimodal labels"
    Config = SelfMMConfig
    text_modes = ("features", "bert")
    smoke_settings = {"a_lstm_hidden_size": 4, "v_lstm_hidden_size": 4, "audio_out": 4, "video_out": 4,
                      "post_fusion_dim": 8, "post_text_dim": 8, "post_audio_dim": 4, "post_video_dim": 4,
                      "batch_size": 16, "accumulation": 1}
    presets = PRESETS
    network_class = SelfMMNetwork

    @classmethod
    def default_config(cls, info: DataInfo) -> SelfMMConfig:
        # The paper reads BERT's [CLS] state, which fine-tuning shapes; precomputed (frozen) BERT features carry the
        # sentence better as a mean over tokens, so "features" mode pools by mean.
        config = super().default_config(info)
        return dataclasses.replace(config, text_pooling="cls" if info.text_mode == "bert" else "mean")

    @classmethod
    def check_config(cls, config: SelfMMConfig) -> None:
        if config.text_pooling not in ("cls", "mean"):
            raise UserError(f"Setting 'text_pooling' of model 'self-mm' must be 'cls' or 'mean' "
                            f"(got {config.text_pooling!r}).")

    def __init__(self, config: SelfMMConfig, info: DataInfo):
        self.check_config(config)
        super().__init__(config, info)
