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
from mer_bench.training import EarlyStopping, StateSnapshot, autocast, require_finite_loss
from mer_bench_cmc.config import CMCConfig
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
        total = torch.zeros((), device=self.device)
        for index in self.train.batches(self.config.batch_size, generator):
            total += self._train_step(index) * index.numel()
        return total / len(self.train)

    def _train_step(self, index: torch.Tensor) -> torch.Tensor:
        batch = self.train.batch(index)
        targets = self.train_targets.index_select(0, index)                     # (B, 3)
        output = forward(self.net, batch, self.config.amp, self.frozen_bert, train=True)
        loss = (F.cross_entropy(output.logits, batch.label)
                + expert_loss(output.expert_logits, targets, output.selected, self.config.mask_unselected_experts)
                + modality_supcon(output.h, targets, self.rule, self.config.supcon_temperature))
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return loss.detach()

    @torch.no_grad()
    def valid_loss(self) -> torch.Tensor:
        output = evaluate(self.net, self.valid, self.config.eval_batch_size, self.config.amp, self.frozen_bert)
        return (F.cross_entropy(output.logits, self.valid.label)
                + expert_loss(output.expert_logits, self.valid_targets, output.selected,
                              self.config.mask_unselected_experts)
                + chunked_modality_supcon(output.h, self.valid_targets, self.rule, self.config.supcon_temperature,
                                          self.config.batch_size))

    def run(self, epochs: int, patience: int, generator: torch.Generator, progress: Progress,
            model_name: str = "cmc") -> None:
        """Train up to `epochs`, keep the state with the lowest validation loss and restore it."""
        snapshot, stopping = StateSnapshot(), EarlyStopping(patience, best=math.inf)   # a NaN loss never improves
        for epoch in range(1, epochs + 1):
            train_loss = self.train_epoch(generator)
            train_value, valid_value = torch.stack([train_loss, self.valid_loss()]).tolist()   # one sync
            require_finite_loss(model_name, "stage 2 training", epoch, train_loss=train_value)
            improved = stopping.update(valid_value, epoch)
            if improved:
                snapshot.save(self.net)
            progress.advance(train_loss=train_value, valid_loss=valid_value, improved=float(improved))
            if stopping.should_stop:
                break
        if snapshot.state is None:
            raise RuntimeError("CMC stage 2 never produced a finite validation loss; no state to keep.")
        snapshot.restore(self.net)


def forward(net: CMCNet, batch: Batch, amp: bool, frozen_bert: FrozenBert | None = None,
            train: bool = False) -> CMCOutput:
    """The network on one batch; token ids go through `frozen_bert` first when BERT is frozen but not cached."""
    text = batch.text if frozen_bert is None else frozen_bert.features(batch.text, train)
    with autocast(batch.label.device, amp):
        return net(text, batch.audio, batch.vision, batch.lengths)


@torch.no_grad()
def evaluate(net: CMCNet, tensors: SplitTensors, batch_size: int, amp: bool,
             frozen_bert: FrozenBert | None = None) -> CMCOutput:
    """The outputs of every sample in split order, in eval mode."""
    net.eval()
    return _concat([forward(net, tensors.batch(index), amp, frozen_bert) for index in tensors.batches(batch_size)])


def infer(net: CMCNet, tensors: SplitTensors, batch_size: int, amp: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """(probabilities (N, 3), router gates (N, 3)) of every sample in order, in eval mode."""
    output = evaluate(net, tensors, batch_size, amp)
    return torch.softmax(output.logits, dim=-1), output.gates


def _concat(outputs: list[CMCOutput]) -> CMCOutput:
    return CMCOutput(*(torch.cat([getattr(o, name) for o in outputs])
                       for name in ("logits", "expert_logits", "gates", "selected", "h")))
