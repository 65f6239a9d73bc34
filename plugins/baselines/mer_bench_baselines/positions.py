"""Position codes of the transformers MMSA's TETFN and TFR-Net use (fairseq's sinusoidal embedding).

They differ from `common.sinusoidal_positions` (Vaswani et al.'s, which MulT adds here) in three ways: positions
count from 1 (0 is reserved for padding there), the sines fill the first half of the code and the cosines the
second (not interleaved), and frequency i is 10000^(-i / (dim/2 - 1)).
"""

from __future__ import annotations

import functools
import math

import torch


@functools.lru_cache(maxsize=32)
def offset_sinusoids(length: int, dim: int, device: torch.device) -> torch.Tensor:
    """(L, dim) codes of positions 1..L; an odd `dim` gets a zero last column. Shared: never modify in place."""
    half = dim // 2
    # a 2- or 3-wide code has one frequency; MMSA divides by zero there (half - 1 = 0), here its rate is 1
    rate = math.log(10000.0) / max(half - 1, 1)
    frequency = torch.exp(torch.arange(half, dtype=torch.float32) * -rate)                  # (half,)
    angle = torch.arange(1, length + 1, dtype=torch.float32)[:, None] * frequency[None, :]  # (L, half)
    codes = torch.cat([torch.sin(angle), torch.cos(angle)], dim=1)
    if dim % 2:
        codes = torch.cat([codes, torch.zeros(length, 1)], dim=1)
    return codes.to(device)     # computed on the CPU, as MMSA does, so every device gets the same codes
