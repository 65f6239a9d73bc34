"""Adam with the reference's parameter groups: BERT weights, BERT biases/LayerNorm, everything else."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn

from mer_bench_cmc.config import CMCConfig

BERT_PREFIX = "text_model."
NO_DECAY = ("bias", "LayerNorm.bias", "LayerNorm.weight")


def parameter_groups(modules: Iterable[nn.Module], config: CMCConfig) -> list[dict]:
    """Groups over the trainable parameters of `modules`. BERT gets lr_bert (and coupled L2 except on biases and
    LayerNorm, since this is Adam, not AdamW); the rest gets lr without decay. Empty groups are left out."""
    bert_decay, bert_plain, other = [], [], []
    for module in modules:
        for name, parameter in module.named_parameters():
            if not parameter.requires_grad:
                continue
            if not name.startswith(BERT_PREFIX):
                other.append(parameter)
            elif any(part in name for part in NO_DECAY):
                bert_plain.append(parameter)
            else:
                bert_decay.append(parameter)
    groups = [{"params": bert_decay, "lr": config.lr_bert, "weight_decay": config.weight_decay_bert},
              {"params": bert_plain, "lr": config.lr_bert, "weight_decay": 0.0},
              {"params": other, "lr": config.lr, "weight_decay": 0.0}]
    return [group for group in groups if group["params"]]


def make_adam(modules: Iterable[nn.Module], config: CMCConfig, device: torch.device) -> torch.optim.Adam:
    """One Adam over all `modules`. Adam is elementwise, so this equals the reference's one optimiser per stage-1
    network; on CUDA the fused kernel updates every tensor in a few launches."""
    return torch.optim.Adam(parameter_groups(modules, config), fused=device.type == "cuda")
