"""PLGM, the pseudo-label generation module of CMC stage 1, and the EMA teachers' update.

Pseudo labels are soft 3-vectors per sample and modality, held as one (N, 3 modalities, 3 classes) tensor indexed by
the sample's position in its split, so a batch reads and writes them with one gather and one scatter.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

CLASSES = 3


def momentum_schedule(initial: float, epoch: int, gamma: float) -> float:
    """m(e) = 1 - (1 - m0) / e**gamma for epochs e = 1, 2, ...: starts at m0 and rises towards 1."""
    return 1.0 - (1.0 - initial) / float(epoch) ** gamma


def momenta(initials: Sequence[float], gammas: Sequence[float], epoch: int) -> tuple[float, ...]:
    """The schedule for each modality (text, audio, vision) at `epoch`."""
    return tuple(momentum_schedule(m0, epoch, gamma) for m0, gamma in zip(initials, gammas))


def reverse_labels(probs: torch.Tensor) -> torch.Tensor:
    """(..., 3) probabilities -> one-hot of the nearest class vertex. ||p - e_c|| is smallest where p_c is largest,
    so this is one_hot(argmax p); ties go to the first class, as the reference's loop does."""
    return F.one_hot(probs.argmax(dim=-1), CLASSES).to(probs.dtype)


def calibration_alpha(probs: torch.Tensor, base: torch.Tensor, reverse: torch.Tensor, eps: float) -> torch.Tensor:
    """alpha = (g_b - g_r) / (g_b + g_r + eps) with g = ||p - label||_2; shapes (..., 3) -> (...).

    0 when the prediction's nearest vertex is the current label, approaching 1 as the prediction becomes a confident
    vertex of another class. `eps` avoids 0/0 when p equals the label vertex exactly (reference: NaN).
    """
    g_base = torch.linalg.vector_norm(probs - base, dim=-1)
    g_reverse = torch.linalg.vector_norm(probs - reverse, dim=-1)
    return (g_base - g_reverse) / (g_base + g_reverse + eps)


def temporary_labels(logits: torch.Tensor, hard: torch.Tensor, eps: float) -> torch.Tensor:
    """PLGM's per-step target: (1 - alpha) * onehot(hard) + alpha * onehot(argmax p).

    logits (..., 3) of the student (treated as constants), hard (...) int64 current hard pseudo labels.
    """
    probs = torch.softmax(logits.detach().float(), dim=-1)
    base = F.one_hot(hard, CLASSES).float()
    reverse = reverse_labels(probs)
    alpha = calibration_alpha(probs, base, reverse, eps).unsqueeze(-1)
    return (1.0 - alpha) * base + alpha * reverse


class PseudoLabelStore:
    """Soft pseudo labels of one split: (N, 3 modalities, 3 classes), every modality starting at the one-hot of the
    sample's multimodal class."""

    def __init__(self, multimodal_classes: torch.Tensor):
        one_hot = F.one_hot(multimodal_classes.long(), CLASSES).float()          # (N, 3)
        self.soft = one_hot.unsqueeze(1).repeat(1, 3, 1)                        # (N, 3 modalities T/A/V, 3)

    def read(self, index: torch.Tensor) -> torch.Tensor:
        """(B, 3, 3) soft labels of the samples at `index`."""
        return self.soft.index_select(0, index)

    def update(self, index: torch.Tensor, current: torch.Tensor, temporary: torch.Tensor,
               momentum: torch.Tensor) -> None:
        """Y <- m * Y + (1 - m) * temp for the samples at `index`; `current` is what `read(index)` returned and
        `momentum` a (3,) tensor, one value per modality."""
        m = momentum.view(1, -1, 1)
        self.soft.index_copy_(0, index, m * current + (1.0 - m) * temporary)

    def hard(self) -> torch.Tensor:
        """(N, 3) int64 hard pseudo labels, the only form any loss uses."""
        return hard_labels(self.soft)

    def clone(self) -> torch.Tensor:
        return self.soft.clone()


def hard_labels(soft: torch.Tensor) -> torch.Tensor:
    """(N, 3, 3) soft labels -> (N, 3) int64 classes."""
    return soft.argmax(dim=-1)


@torch.no_grad()
def ema_update(teacher: nn.Module, student: nn.Module, momentum: float, buffers: str = "reference") -> None:
    """theta' <- mu * theta' + (1 - mu) * theta over parameters, in one fused call per tensor list.

    buffers: "reference" leaves the teacher's buffers (BatchNorm running statistics) alone, as the reference does;
    "copy" copies the student's; "ema" averages floating buffers like parameters and copies the rest.
    """
    teacher_params, student_params = list(teacher.parameters()), list(student.parameters())
    torch._foreach_lerp_(teacher_params, student_params, 1.0 - momentum)
    if buffers == "reference":
        return
    for teacher_buffer, student_buffer in zip(teacher.buffers(), student.buffers()):
        if buffers == "ema" and teacher_buffer.is_floating_point():
            teacher_buffer.lerp_(student_buffer, 1.0 - momentum)
        else:
            teacher_buffer.copy_(student_buffer)
