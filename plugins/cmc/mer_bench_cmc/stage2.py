"""Stage 2: multimodal fine-tuning of the CMC network (PFM + MCR), selected on the total validation loss.

Loss per batch, all weights 1 as in the reference: CE(fused, multimodal class) + sum_k CE(expert_k, y_k) + SupCon
over the 3B encodings, where y_k are the frozen stage-1 pseudo labels (cmc) or the ground-truth unimodal labels
(cmc-gt). The validation loss is the same sum over the validation split, its SupCon term computed per chunk of
`batch_size` samples in split order, as the reference's unshuffled validation loader does.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from mer_bench.model import Progress
from mer_bench.training import StateSnapshot, autocast
from mer_bench_cmc.config import CMCConfig
from mer_bench_cmc.encoders import is_token_ids
from mer_bench_cmc.fusion import expert_loss
from mer_bench_cmc.inputs import Batch, FrozenBert, SplitTensors
from mer_bench_cmc.networks import CMCNet, CMCOutput
from mer_bench_cmc.optim import make_adam
from mer_bench_cmc.supcon import chunked_modality_supcon, modality_supcon


class Stage2:
    def __init__(self, net: CMCNet, train: SplitTensors, valid: SplitTensors, train_targets: torch.Tensor,
                 valid_targets: torch.Tensor, config: CMCConfig, rule, frozen_bert: FrozenBert | None):
        self.net, self.train, self.valid, self.config, self.rule = net, train, valid, config, rule
        self.train_targets, self.valid_targets = train_targets, valid_targets     # (N, 3), (Nv, 3) int64
        self.frozen_bert, self.device = frozen_bert, train.device
        self.optimizer = make_adam([net], config, self.device)

    def train_epoch(self, generator: torch.Generator) -> torch.Tensor:
        """One pass over the training split; the mean training loss as a 0-d tensor on the device."""
        self.net.train()
        order = torch.randperm(len(self.train), generator=generator).to(self.device)
        total = torch.zeros((), device=self.device)
        for index in order.split(self.config.batch_size):
            total += self._train_step(index) * index.numel()
        return total / len(self.train)

    def _train_step(self, index: torch.Tensor) -> torch.Tensor:
        batch = self.train.batch(index)
        targets = self.train_targets.index_select(0, index)                     # (B, 3)
        output = self._forward(batch, train=True)
        loss = (F.cross_entropy(output.logits, batch.label)
                + expert_loss(output.expert_logits, targets, output.selected, self.config.mask_unselected_experts)
                + modality_supcon(output.h, targets, self.rule, self.config.supcon_temperature))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def valid_loss(self) -> torch.Tensor:
        self.net.eval()
        output = _concat([self._forward(self.valid.batch(index), train=False)
                          for index in _eval_batches(len(self.valid), self.config.eval_batch_size, self.device)])
        return (F.cross_entropy(output.logits, self.valid.label)
                + expert_loss(output.expert_logits, self.valid_targets, output.selected,
                              self.config.mask_unselected_experts)
                + chunked_modality_supcon(output.h, self.valid_targets, self.rule, self.config.supcon_temperature,
                                          self.config.batch_size))

    def _forward(self, batch: Batch, train: bool) -> CMCOutput:
        text = batch.text
        if self.frozen_bert is not None and is_token_ids(text):
            text = self.frozen_bert.features(text, train)
        with autocast(self.device, self.config.amp):
            return self.net(text, batch.audio, batch.vision, batch.lengths)

    def run(self, epochs: int, patience: int, generator: torch.Generator, progress: Progress) -> int:
        """Train up to `epochs`, keep the state with the lowest validation loss, restore it; return epochs run."""
        snapshot, best, bad_epochs, epoch = StateSnapshot(), math.inf, 0, 0
        for epoch in range(1, epochs + 1):
            train_loss = self.train_epoch(generator)
            train_value, valid_value = torch.stack([train_loss, self.valid_loss()]).tolist()   # one sync
            improved = valid_value < best
            if improved:
                best = valid_value
                snapshot.save(self.net)
            bad_epochs = 0 if improved else bad_epochs + 1
            progress.advance(train_loss=train_value, valid_loss=valid_value, improved=float(improved))
            if bad_epochs >= patience:
                break
        if snapshot.state is None:
            raise RuntimeError("CMC stage 2 never produced a finite validation loss; no state to keep.")
        snapshot.restore(self.net)
        return epoch


@torch.no_grad()
def infer(net: CMCNet, tensors: SplitTensors, batch_size: int, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, 3), router gates (N, 3)) of every sample in order, in eval mode."""
    net.eval()
    outputs = []
    for index in _eval_batches(len(tensors), batch_size, tensors.device):
        batch = tensors.batch(index)
        with autocast(tensors.device, amp):
            outputs.append(net(batch.text, batch.audio, batch.vision, batch.lengths))
    output = _concat(outputs)
    return torch.softmax(output.logits, dim=-1), output.gates


def _eval_batches(n: int, batch_size: int, device: torch.device):
    for start in range(0, n, batch_size):
        yield torch.arange(start, min(start + batch_size, n), device=device)


def _concat(outputs: list[CMCOutput]) -> CMCOutput:
    return CMCOutput(*(torch.cat([getattr(o, name) for o in outputs])
                       for name in ("logits", "expert_logits", "gates", "selected", "h")))
