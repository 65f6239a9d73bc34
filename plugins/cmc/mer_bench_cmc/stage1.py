"""Stage 1: unimodal pretraining. `cmc`: PLGM pseudo labels and EMA teachers; `cmc-gt`: ground-truth unimodal labels.

Selection, per modality, on the validation split only: the network whose validation cross-entropy improves is kept
(cmc: the EMA teacher against the validation pseudo labels, loss rounded to 4 decimals as the reference does;
cmc-gt: the student against the ground-truth validation unimodal labels). A stage stops after `patience` epochs in
which no modality improved.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from mer_bench.model import Progress
from mer_bench.training import EarlyStopping, StateSnapshot, autocast, require_finite_loss
from mer_bench_cmc.config import CMCConfig
from mer_bench_cmc.encoders import MODALITIES
from mer_bench_cmc.inputs import Batch, FrozenBert, SplitTensors
from mer_bench_cmc.optim import make_adam
from mer_bench_cmc.plgm import PseudoLabelStore, ema_update, hard_labels, momenta, temporary_labels
from mer_bench_cmc.supcon import modality_supcon


@dataclass
class Stage1Result:
    states: dict[str, dict[str, torch.Tensor] | None]   # selected weights per modality, None if never selected
    train_targets: torch.Tensor                          # (N, 3) int64 T/A/V targets for stage 2
    valid_targets: torch.Tensor                          # (Nv, 3) int64, the same for the validation loss


class Stage1:
    """Trains the three unimodal students together (one backward of the summed losses, as the reference's
    retain_graph sequence amounts to) and keeps per-modality selections."""

    def __init__(self, students: nn.ModuleList, train: SplitTensors, valid: SplitTensors, config: CMCConfig,
                 rule, frozen_bert: FrozenBert | None, pseudo: bool):
        self.students, self.train, self.valid, self.config, self.rule = students, train, valid, config, rule
        self.frozen_bert, self.pseudo, self.device = frozen_bert, pseudo, train.device
        self.optimizer = make_adam(students, config, self.device)
        self.teachers = copy.deepcopy(students).eval() if pseudo else None   # teachers never leave eval mode
        if self.teachers is not None:
            self.teachers.requires_grad_(False)
        self.train_labels = PseudoLabelStore(train.label) if pseudo else None
        self.valid_labels = PseudoLabelStore(valid.label) if pseudo else None

    # --- one epoch -------------------------------------------------------------------------------------------
    def train_epoch(self, epoch: int, label_m: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One pass over the training split; returns (4,) mean CE of T, A, V and mean SupCon, on the device.
        `label_m` (3,) is the epoch's pseudo-label momentum per modality."""
        self.students.train()
        ema_mu = momenta(self.config.ema_momentum, self.config.ema_gamma, epoch)
        totals = torch.zeros(4, device=self.device)
        for index in self.train.batches(self.config.batch_size, generator):
            totals += self._train_step(index, label_m, ema_mu) * index.numel()
        return totals / len(self.train)

    def _train_step(self, index: torch.Tensor, label_m: torch.Tensor, ema_mu: tuple[float, ...]) -> torch.Tensor:
        batch = self.train.batch(index)
        current = self.train_labels.read(index) if self.pseudo else None        # (B, 3, 3)
        targets = hard_labels(current) if self.pseudo else batch.unimodal        # (B, 3)
        logits, h = self._forward(self.students, batch, train=True)              # (B, 3, 3), (B, 3, d)
        ce = F.cross_entropy(logits.transpose(1, 2), targets, reduction="none").mean(dim=0)   # (3,)
        contrastive = modality_supcon(h, targets, self.rule, self.config.supcon_temperature)
        self.optimizer.zero_grad(set_to_none=True)
        (ce.sum() + contrastive).backward()
        self.optimizer.step()
        if self.pseudo:
            # Targets above were the pre-update hard labels; the update uses the same step's student logits.
            self.train_labels.update(index, current, temporary_labels(logits, targets, self.config.alpha_eps), label_m)
            for teacher, student, mu in zip(self.teachers, self.students, ema_mu):
                ema_update(teacher, student, mu, self.config.ema_buffers)
        return torch.cat([ce.detach(), contrastive.detach().view(1)])

    @torch.no_grad()
    def evaluate(self, label_m: torch.Tensor) -> torch.Tensor:
        """(3,) validation CE per modality of the networks that get selected; updates moving validation labels."""
        self.students.eval()
        totals = torch.zeros(3, device=self.device)
        for index in self.valid.batches(self.config.eval_batch_size):
            totals += self._evaluate_batch(index, label_m)
        return totals / len(self.valid)

    def _evaluate_batch(self, index: torch.Tensor, label_m: torch.Tensor) -> torch.Tensor:
        batch = self.valid.batch(index)
        if not self.pseudo:
            logits, _ = self._forward(self.students, batch, train=False)
            return F.cross_entropy(logits.transpose(1, 2), batch.unimodal, reduction="none").sum(dim=0)
        current = self.valid_labels.read(index)
        targets = hard_labels(current)
        text = self._text(batch, train=False)            # computed once, shared by student and teacher
        student_logits, _ = self._forward(self.students, batch, train=False, text=text)
        teacher_logits, _ = self._forward(self.teachers, batch, train=False, text=text)
        if self.config.valid_targets == "moving":
            temporary = temporary_labels(student_logits, targets, self.config.alpha_eps)
            self.valid_labels.update(index, current, temporary, label_m)
        return F.cross_entropy(teacher_logits.transpose(1, 2), targets, reduction="none").sum(dim=0)

    def _text(self, batch: Batch, train: bool) -> torch.Tensor:
        """BERT features of a frozen BERT that is not cached; otherwise the batch's text as the networks take it."""
        return batch.text if self.frozen_bert is None else self.frozen_bert.features(batch.text, train)

    def _forward(self, networks: nn.ModuleList, batch: Batch, train: bool, text: torch.Tensor | None = None):
        """-> logits (B, 3 modalities, 3 classes) float32 and h (B, 3, d)."""
        inputs = (self._text(batch, train) if text is None else text, batch.audio, batch.vision)
        with autocast(self.device, self.config.amp):
            outputs = [network(x, None if batch.lengths is None else batch.lengths[:, i])
                       for i, (network, x) in enumerate(zip(networks, inputs))]
        return torch.stack([o[0] for o in outputs], dim=1), torch.stack([o[1] for o in outputs], dim=1)

    # --- the stage ---------------------------------------------------------------------------------------------
    def run(self, epochs: int, patience: int, generator: torch.Generator, progress: Progress,
            model_name: str = "cmc") -> Stage1Result:
        selected = self.teachers if self.pseudo else self.students
        snapshots = [StateSnapshot() for _ in MODALITIES]
        # One stopper per modality; the stage stops once all of them would, i.e. after `patience` epochs in which no
        # modality improved. A NaN loss never improves.
        stoppers = [EarlyStopping(patience, best=math.inf) for _ in MODALITIES]
        kept = self._labels_now()
        for epoch in range(1, epochs + 1):
            label_m = torch.tensor(momenta(self.config.label_momentum, self.config.label_gamma, epoch),
                                   device=self.device)
            train_stats = self.train_epoch(epoch, label_m, generator)
            valid_losses = self.evaluate(label_m)
            values = torch.cat([train_stats, valid_losses]).tolist()       # the epoch's one host sync
            require_finite_loss(model_name, "stage 1 training", epoch, **dict(zip(_TRAIN_NAMES, values[:4])))
            losses = [round(v, 4) if self.pseudo else v for v in values[4:]]
            improved = [k for k, stopper in enumerate(stoppers) if stopper.update(losses[k], epoch)]
            for k in improved:
                snapshots[k].save(selected[k])
            if improved and self.pseudo:
                copy_modalities = range(len(MODALITIES)) if self.config.label_snapshot == "any" else improved
                self._keep_labels(kept, copy_modalities)
            progress.advance(**_epoch_status(values, improved))
            if all(stopper.should_stop for stopper in stoppers):
                break
        return Stage1Result({m: s.state for m, s in zip(MODALITIES, snapshots)}, *self._targets(kept))

    def _labels_now(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if not self.pseudo:
            return None
        return self.train_labels.clone(), self.valid_labels.clone()

    def _keep_labels(self, kept: tuple[torch.Tensor, torch.Tensor], modalities) -> None:
        for k in modalities:
            kept[0][:, k] = self.train_labels.soft[:, k]
            kept[1][:, k] = self.valid_labels.soft[:, k]

    def _targets(self, kept) -> tuple[torch.Tensor, torch.Tensor]:
        if not self.pseudo:
            return self.train.unimodal, self.valid.unimodal
        return hard_labels(kept[0]), hard_labels(kept[1])


_TRAIN_NAMES = ("train_ce_t", "train_ce_a", "train_ce_v", "train_supcon")


def _epoch_status(values: list[float], improved: list[int]) -> dict[str, float]:
    names = (*_TRAIN_NAMES, "valid_ce_t", "valid_ce_a", "valid_ce_v")
    status = dict(zip(names, values))
    status["improved"] = float(len(improved))
    return status
