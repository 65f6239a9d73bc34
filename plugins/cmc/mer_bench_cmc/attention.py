"""Scaled dot-product attention for the encoders, with a fast CPU path for attention dropout.

PyTorch's fused CPU attention kernel has no dropout, so with attention dropout (the reference's setting) it falls back
to the unfused path, which writes the full (B, H, L, L) score, probability and mask tensors to memory several times
and draws one Bernoulli sample per element from a slow generator; for the 925-frame audio of SIMS-v2 that dominates a
CPU epoch. `_BlockDropoutAttention` computes the same function block by block, so each (rows x L) block stays in
cache, keeps only the log-sum-exp per query for the backward pass (which recomputes the block), and draws dropout
masks from NumPy's PCG64, 16 bits per element, one generator per block seeded from torch's generator, so runs stay
reproducible. The drop probability is rounded to a multiple of 1/65536 (0.1 becomes 0.1000061).

On CUDA, or without dropout, `scaled_dot_product_attention` is used as is (its fused kernels handle both cases).
"""

from __future__ import annotations

import math
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

BLOCK_ELEMENTS = 1 << 18       # scores per block: 1 MiB of float32, comfortably inside a core's L2 cache
MASK_LEVELS = 1 << 16          # dropout masks compare 16-bit random integers with round(p * 65536)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, key_mask: torch.Tensor | None,
              dropout_p: float) -> torch.Tensor:
    """q, k, v (B, H, L, dh); key_mask (B, 1, 1, L) bool (True: may be attended) or None -> (B, H, L, dh)."""
    if dropout_p == 0.0 or q.device.type != "cpu":
        return F.scaled_dot_product_attention(q, k, v, attn_mask=key_mask, dropout_p=dropout_p)
    batch, heads, length, width = q.shape
    flat = lambda x: x.reshape(batch * heads, length, width)   # noqa: E731  (a copy: the inputs are permuted views)
    keys = None if key_mask is None else key_mask.expand(batch, heads, 1, length).reshape(batch * heads, 1, length)
    seed = int(torch.randint(0, 2**62, (), dtype=torch.int64).item())
    out = _BlockDropoutAttention.apply(flat(q), flat(k), flat(v), keys, dropout_p, seed)
    return out.view(batch, heads, length, width)


def dropout_mask(generator: np.random.BitGenerator, shape: tuple[int, ...], dropout_p: float) -> torch.Tensor:
    """A bool keep-mask of `shape`, P(keep) = 1 - round(p * 65536) / 65536, from the next draws of `generator`."""
    count = math.prod(shape)
    bits = generator.random_raw((count + 3) // 4).view(np.uint16)[:count]   # four 16-bit draws per 64-bit word
    return torch.from_numpy(bits >= round(dropout_p * MASK_LEVELS)).view(shape)


def _blocks(n: int, length: int) -> list[tuple[int, slice, slice]]:
    """(block id, batch-head slice, query slice) covering (n, length) queries, about BLOCK_ELEMENTS scores each."""
    rows = max(1, min(length, BLOCK_ELEMENTS // length))
    groups = max(1, BLOCK_ELEMENTS // (rows * length))
    starts = [(first, start) for first in range(0, n, groups) for start in range(0, length, rows)]
    return [(i, slice(first, first + groups), slice(start, start + rows)) for i, (first, start) in enumerate(starts)]


def _for_each_block(work, n: int, length: int) -> None:
    """Run `work(block_id, group, rows)` over every block. With several torch threads the blocks are shared among
    that many worker threads, each running single-threaded operations: many small operations in parallel regions
    stall on thread barriers whenever a core is busy elsewhere. Blocks of one batch-head group stay on one worker
    (the backward pass accumulates into per-group slices), and each block draws its mask from its own generator, so
    results do not depend on the thread count."""
    blocks, threads = _blocks(n, length), torch.get_num_threads()
    workers = min(threads, len({group.start for _, group, _ in blocks}))
    if workers <= 1:
        for block in blocks:
            work(*block)
        return
    shares: list[list] = [[] for _ in range(workers)]
    for block in blocks:
        shares[(block[1].start * workers) // n].append(block)
    torch.set_num_threads(1)        # restored below; operations started by the workers then run single-threaded
    try:
        with ThreadPoolExecutor(workers) as pool:
            list(pool.map(lambda share: _run_share(work, share), shares))
    finally:
        torch.set_num_threads(threads)


@torch.no_grad()
def _run_share(work, share: list) -> None:
    """A worker's blocks. Grad mode is per thread and on in a new one; these blocks compute values only (the forward
    and backward of an autograd Function), so no graph may be recorded here."""
    for block in share:
        work(*block)


def _generator(seed: int, block: int) -> np.random.BitGenerator:
    return np.random.PCG64([seed, block])


class _BlockDropoutAttention(torch.autograd.Function):
    """softmax(q k^T / sqrt(dh)) with dropout, times v; q, k, v (N, L, dh) float, keys (N, 1, L) bool or None."""

    @staticmethod
    def forward(ctx, q, k, v, keys, dropout_p: float, seed: int):
        scale, keep = q.shape[-1] ** -0.5, 1.0 - dropout_p
        out = torch.empty_like(q)
        log_norm = torch.empty(q.shape[:2], dtype=q.dtype)                  # (N, L) log-sum-exp per query

        def block(index: int, group: slice, rows: slice) -> None:
            scores = _scores(q[group, rows], k[group], keys, group, scale)  # (n, r, L)
            peak = scores.amax(dim=-1, keepdim=True)
            weights = scores.sub_(peak).exp_()
            total = weights.sum(dim=-1, keepdim=True)
            weights.mul_(dropout_mask(_generator(seed, index), tuple(weights.shape), dropout_p))
            out[group, rows] = torch.matmul(weights, v[group]).div_(total * keep)
            log_norm[group, rows] = (peak + total.log()).squeeze(-1)

        _for_each_block(block, q.shape[0], q.shape[1])
        ctx.save_for_backward(q, k, v, out, log_norm)
        ctx.keys, ctx.dropout_p, ctx.seed = keys, dropout_p, seed
        return out

    @staticmethod
    def backward(ctx, grad_out):
        q, k, v, out, log_norm = ctx.saved_tensors
        scale, keep, keys = q.shape[-1] ** -0.5, 1.0 - ctx.dropout_p, ctx.keys
        grad_out = grad_out.contiguous()
        row_dot = (grad_out * out).sum(dim=-1)                              # (N, L): sum_j P_ij dP_ij per query
        grad_q, grad_k, grad_v = torch.empty_like(q), torch.zeros_like(k), torch.zeros_like(v)

        def block(index: int, group: slice, rows: slice) -> None:
            probs = _scores(q[group, rows], k[group], keys, group, scale)
            probs.sub_(log_norm[group, rows].unsqueeze(-1)).exp_()           # (n, r, L) softmax, recomputed
            mask = dropout_mask(_generator(ctx.seed, index), tuple(probs.shape), ctx.dropout_p)   # the forward's
            kept = mask.to(probs.dtype).div_(keep)
            grad_v[group] += torch.matmul((probs * kept).transpose(1, 2), grad_out[group, rows])
            grad_probs = torch.matmul(grad_out[group, rows], v[group].transpose(1, 2)).mul_(kept)
            grad_scores = probs.mul_(grad_probs.sub_(row_dot[group, rows].unsqueeze(-1))).mul_(scale)
            grad_q[group, rows] = torch.matmul(grad_scores, k[group])
            grad_k[group] += torch.matmul(grad_scores.transpose(1, 2), q[group, rows])

        _for_each_block(block, q.shape[0], q.shape[1])
        return grad_q, grad_k, grad_v, None, None, None


def _scores(q_block: torch.Tensor, k: torch.Tensor, keys: torch.Tensor | None, group: slice,
            scale: float) -> torch.Tensor:
    scores = torch.matmul(q_block, k.transpose(1, 2)).mul_(scale)
    if keys is not None:
        scores.masked_fill_(~keys[group], float("-inf"))
    return scores
