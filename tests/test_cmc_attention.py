"""The CPU block attention with dropout computes attention, its gradients, and drops at the configured rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from mer_bench_cmc.attention import _BlockDropoutAttention, _for_each_block, attention, dropout_mask


def inputs(n=3, length=7, width=4, dtype=torch.float64):
    torch.manual_seed(0)
    return [torch.randn(n, length, width, dtype=dtype, requires_grad=True) for _ in range(3)]


@pytest.mark.parametrize("with_keys", [False, True])
def test_without_dropout_it_is_plain_attention(with_keys, monkeypatch):
    monkeypatch.setattr("mer_bench_cmc.attention.BLOCK_ELEMENTS", 12)      # force several blocks on tiny inputs
    q, k, v = inputs()
    keys = torch.tensor([[True] * 5 + [False] * 2] * 3).unsqueeze(1) if with_keys else None   # (N, 1, L)
    ours = _BlockDropoutAttention.apply(q, k, v, keys, 0.0, 7)
    expected = F.scaled_dot_product_attention(q, k, v, attn_mask=keys)
    torch.testing.assert_close(ours, expected)
    grad = torch.randn_like(ours)
    torch.testing.assert_close(torch.autograd.grad(ours, (q, k, v), grad),
                               torch.autograd.grad(expected, (q, k, v), grad))


def test_gradients_with_dropout_match_finite_differences(monkeypatch):
    monkeypatch.setattr("mer_bench_cmc.attention.BLOCK_ELEMENTS", 12)
    q, k, v = inputs()
    keys = torch.tensor([[True] * 6 + [False]] * 3).unsqueeze(1)
    assert torch.autograd.gradcheck(lambda q, k, v: _BlockDropoutAttention.apply(q, k, v, keys, 0.3, 11), (q, k, v))


def test_dropout_matches_the_mask_it_draws():
    q, k, v = inputs(n=2, length=5, width=3)
    out = _BlockDropoutAttention.apply(q, k, v, None, 0.5, 3)
    mask = dropout_mask(np.random.PCG64([3, 0]), (2, 5, 5), 0.5).double()   # block 0: the forward's draws
    probs = torch.softmax(q @ k.transpose(1, 2) / 3 ** 0.5, dim=-1)
    torch.testing.assert_close(out, (probs * mask / 0.5) @ v)


def test_drop_rate_and_reproducibility():
    mask = dropout_mask(np.random.PCG64(0), (1000, 1000), 0.1)
    assert abs(1 - mask.float().mean().item() - 0.1) < 0.002
    assert torch.equal(mask, dropout_mask(np.random.PCG64(0), (1000, 1000), 0.1))
    q, k, v = (x.detach().float().view(1, 3, 7, 4) for x in inputs())
    torch.manual_seed(5)
    first = attention(q, k, v, None, 0.1)
    torch.manual_seed(5)
    assert torch.equal(first, attention(q, k, v, None, 0.1))             # seeded from torch's generator


def test_results_do_not_depend_on_the_thread_count(monkeypatch):
    monkeypatch.setattr("mer_bench_cmc.attention.BLOCK_ELEMENTS", 12)
    q, k, v = inputs(n=4)
    threads = torch.get_num_threads()
    try:
        results = []
        for count in (1, 2):
            torch.set_num_threads(count)
            out = _BlockDropoutAttention.apply(q, k, v, None, 0.2, 9)
            assert out.grad_fn is not None and out.grad_fn.name().startswith("_BlockDropoutAttention")
            (out * out).sum().backward()                                # as training does: grads into leaves
            results.append((out.detach(), q.grad.clone(), k.grad.clone(), v.grad.clone()))
            q.grad = k.grad = v.grad = None
            assert torch.get_num_threads() == count                     # restored after the worker threads
    finally:
        torch.set_num_threads(threads)
    for single, shared in zip(*results):
        torch.testing.assert_close(single, shared)


def test_worker_threads_record_no_autograd_graph(monkeypatch):
    # Grad mode is per thread and on in new threads; blocks recording graphs from two threads at once corrupt
    # autograd state (seen as "a leaf Variable that requires grad is being used in an in-place operation").
    monkeypatch.setattr("mer_bench_cmc.attention.BLOCK_ELEMENTS", 12)
    threads = torch.get_num_threads()
    seen = []
    try:
        torch.set_num_threads(2)
        _for_each_block(lambda index, group, rows: seen.append(torch.is_grad_enabled()), 4, 7)
    finally:
        torch.set_num_threads(threads)
    assert seen and not any(seen)
