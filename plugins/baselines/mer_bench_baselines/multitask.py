"""Multi-task training on ground-truth unimodal labels: the part MLF-DNN, MTFN and MLMF share (Yu et al., ACL 2020).

The CH-SIMS paper turns three fusion networks (late fusion, TFN, LMF) into multi-task ones: each modality's
subnetwork output also feeds a regression head of its own, trained on that modality's human label (T, A or V).
The loss is the weighted sum of four L1 losses,

    loss = w_M * L1(fusion, y_M) + w_T * L1(text head, y_T) + w_A * L1(audio head, y_A) + w_V * L1(vision head, y_V),

and, as MMSA (`KeyEval: "Loss"`), the same weighted sum on the validation split selects the epoch. Only datasets with
unimodal labels (SIMS-style) can train these models.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from mer_bench.data.split import Split
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext
from mer_bench_baselines.common import Inputs, regression_head
from mer_bench_baselines.training_loop import PREDICT_BATCH, BaselineModel, preset_key, trainable

TASKS = ("fusion", "text", "audio", "vision")      # MMSA's "MTAV": the column order of the targets


@dataclass
class MultiTaskConfig:
    """The settings every multi-task model has; each model's config adds its fusion network's own."""

    post_text_dim: int = 16                  # hidden size of the text head
    post_audio_dim: int = 4                  # hidden size of the audio head
    post_video_dim: int = 32                 # hidden size of the vision head
    post_dropouts: tuple[float, float, float] = (0.5, 0.5, 0.5)   # (text, audio, vision) dropout before each head
    fusion_loss_weight: float = 0.6          # weight of the multimodal L1 loss (MMSA's M)
    text_loss_weight: float = 0.2            # weight of the text head's L1 loss on the T labels (MMSA's T)
    audio_loss_weight: float = 0.8           # weight of the audio head's L1 loss on the A labels (MMSA's A)
    vision_loss_weight: float = 0.8          # weight of the vision head's L1 loss on the V labels (MMSA's V)
    batch_size: int = 32                     # training mini-batch
    learning_rate: float = 2e-3              # Adam step size
    text_weight_decay: float = 1e-4          # Adam L2 penalty of the text subnetwork
    audio_weight_decay: float = 1e-3         # Adam L2 penalty of the audio subnetwork
    video_weight_decay: float = 1e-4         # Adam L2 penalty of the vision subnetwork
    weight_decay: float = 0.0                # Adam L2 penalty of the fusion layers and the heads
    patience: int = 8                        # MMSA's early_stop
    max_epochs: int = 100                    # epoch cap (MMSA has none)


class UnimodalHeads(nn.Module):
    """One regression head per modality (dropout, two ReLU layers, one output), as the CH-SIMS multi-task models."""

    def __init__(self, text_size: int, audio_size: int, vision_size: int, config: MultiTaskConfig):
        super().__init__()
        text_drop, audio_drop, vision_drop = config.post_dropouts
        self.text = regression_head(text_size, config.post_text_dim, text_drop)
        self.audio = regression_head(audio_size, config.post_audio_dim, audio_drop)
        self.vision = regression_head(vision_size, config.post_video_dim, vision_drop)

    def forward(self, text: torch.Tensor, audio: torch.Tensor, vision: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B, Dt), (B, Da), (B, Dv) subnetwork outputs -> {"score_text", "score_audio", "score_vision"}: (B,) each"""
        return {"score_text": self.text(text).squeeze(-1), "score_audio": self.audio(audio).squeeze(-1),
                "score_vision": self.vision(vision).squeeze(-1)}


def unimodal_targets(split: Split, model: str) -> torch.Tensor:
    """(N, 4) targets in `TASKS` order: the multimodal label, then the T, A and V labels of the split."""
    if split.unimodal_labels is None:
        raise UserError(f"Model '{model}' needs unimodal (T/A/V) labels in the {split.name} split, which it lacks.")
    return torch.cat([split.label.float()[:, None], split.unimodal_labels.float()], dim=1)


class MultiTaskModel(BaselineModel):
    """A fusion network with unimodal heads, trained on the weighted sum of the four tasks' L1 losses.

    The network returns "score" (fusion) and "score_text" / "score_audio" / "score_vision", and keeps its three
    modality subnetworks in `network.subnets` (a `common.SubnetEncoders`), which get their own weight decays.
    """

    single_task: str = ""      # the model without unimodal heads, suggested on datasets without unimodal labels

    def __init__(self, config: Any, info: DataInfo):
        super().__init__(config, info)
        self.targets: dict[str, torch.Tensor] = {}     # (N, 4) per split name, only while fitting

    @classmethod
    def check_dataset(cls, info: DataInfo) -> None:
        super().check_dataset(info)
        if not info.has_unimodal_labels:
            raise UserError(f"Model '{cls.name}' trains on ground-truth unimodal (T/A/V) labels, which dataset "
                            f"'{info.dataset}' does not have (only SIMS-style datasets do). Use "
                            f"'{cls.single_task}', its single-task form, instead.")

    @classmethod
    def default_config(cls, info: DataInfo) -> Any:
        """MMSA's preset of the dataset; MMSA has only SIMS presets, so any other dataset takes the SIMS one."""
        key = preset_key(info, cls.presets)
        return cls.Config(**cls.presets[key if key in cls.presets else "sims"])

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        self.targets = {"train": unimodal_targets(train, self.name).to(ctx.device),
                        "valid": unimodal_targets(valid, self.name).to(ctx.device)}
        try:
            super().fit(train, valid, ctx)
        finally:
            self.targets = {}     # labels are training data, not model state

    def task_weights(self, device: torch.device) -> torch.Tensor:
        """(4,) loss weights in `TASKS` order."""
        c = self.config
        weights = (c.fusion_loss_weight, c.text_loss_weight, c.audio_loss_weight, c.vision_loss_weight)
        return torch.tensor(weights, device=device)

    def task_errors(self, outputs: dict[str, torch.Tensor], targets: torch.Tensor) -> torch.Tensor:
        """(B, 4) absolute errors of the four outputs against their targets, in `TASKS` order."""
        predicted = torch.stack([outputs["score"]] + [outputs[f"score_{task}"] for task in TASKS[1:]], dim=1)
        return (predicted - targets).abs()

    def training_loss(self, inputs: Inputs, outputs: dict[str, torch.Tensor], epoch: int) -> torch.Tensor:
        """sum over tasks of weight x mean L1 on the batch (MMSA's trainers)."""
        errors = self.task_errors(outputs, self.targets["train"][inputs.index])          # (B, 4)
        return (errors.mean(dim=0) * self.task_weights(errors.device)).sum()

    @torch.no_grad()
    def validation_loss(self, valid: Inputs, kind: str) -> float:
        """The training loss over the whole validation split (MMSA selects on it; `kind` does not apply)."""
        self.network.eval()
        errors = torch.cat([self.task_errors(self.forward(batch), self.targets["valid"][batch.index])
                            for batch in valid.batches(PREDICT_BATCH)])                  # (N, 4)
        return float((errors.mean(dim=0) * self.task_weights(errors.device)).sum())

    def parameter_groups(self) -> list[dict[str, Any]]:
        """MMSA's groups: each subnetwork with its own weight decay, everything else with `weight_decay`."""
        c, subnets = self.config, self.network.subnets
        groups = [(subnets.text_subnet, c.text_weight_decay), (subnets.audio_subnet, c.audio_weight_decay),
                  (subnets.vision_subnet, c.video_weight_decay)]
        grouped = {id(p) for module, _ in groups for p in module.parameters()} | self.separate_parameter_ids()
        rest = [p for p in trainable(self.network.parameters()) if id(p) not in grouped]
        return [{"params": trainable(module.parameters()), "lr": c.learning_rate, "weight_decay": decay}
                for module, decay in groups] + [{"params": rest, "lr": c.learning_rate, "weight_decay": c.weight_decay}]

    def separate_parameter_ids(self) -> set[int]:
        """Parameters a subclass puts in groups of its own (added by overriding `parameter_groups`)."""
        return set()
