"""Running many perturbed versions of the test split through a model with as few `predict` calls as memory allows.

A probe condition is a `Variant`: the samples whose inputs it changes and a function that builds those samples'
perturbed inputs. Samples a variant leaves unchanged keep the reference prediction instead of being predicted again
(a model's prediction of a sample depends on that sample's inputs alone, as the `predict` contract implies). Variants
are built only when their chunk is due, concatenated up to a memory budget and predicted in one call per chunk, so the
per-call overhead of a model is paid a few times rather than once per condition.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import torch

from mer_bench.data.split import Split
from mer_bench.model import Model, Predictions

CHUNK_BYTES = 256 * 2**20   # input tensors gathered into one predict call; a larger single variant goes alone


@dataclass(frozen=True)
class Variant:
    """One probe condition: which test samples change, and how to build their perturbed inputs."""

    key: str
    index: torch.Tensor                    # (K,) long, positions in the test split whose inputs change
    build: Callable[[], Split]             # -> Split of those K samples, in `index` order, perturbed


@dataclass
class PassCount:
    """What the probes cost in model work, reported next to their time."""

    predict_calls: int = 0
    samples_predicted: int = 0
    variants: int = 0
    chunks: list[int] = field(default_factory=list)   # samples per predict call

    def as_dict(self, test_samples: int) -> dict[str, float | int]:
        return {"predict_calls": self.predict_calls, "samples_predicted": self.samples_predicted,
                "variants": self.variants, "test_samples": test_samples,
                "test_passes_equivalent": self.samples_predicted / max(test_samples, 1)}


def predict_variants(model: Model, test: Split, reference: Predictions, variants: list[Variant],
                     count: PassCount, chunk_bytes: int = CHUNK_BYTES) -> dict[str, Predictions]:
    """{variant key: full-length predictions}: reference predictions with each variant's changed rows predicted."""
    results: dict[str, Predictions] = {}
    bytes_per_sample = _bytes_per_sample(test)
    for chunk in _chunks([v for v in variants if v.index.numel() > 0], bytes_per_sample, chunk_bytes):
        parts = [variant.build() for variant in chunk]
        inputs = parts[0] if len(parts) == 1 else concat_splits(parts)
        predicted = model.predict(inputs).check(len(inputs), model.outputs, model.name)
        count.predict_calls += 1
        count.samples_predicted += len(inputs)
        count.chunks.append(len(inputs))
        offset = 0
        for variant in chunk:
            rows = torch.arange(offset, offset + variant.index.numel())
            results[variant.key] = with_rows(reference, variant.index, predicted.take(rows))
            offset += variant.index.numel()
    for variant in variants:   # a variant that changes nothing predicts exactly the reference
        results.setdefault(variant.key, reference)
    count.variants += len(variants)
    return results


def with_rows(reference: Predictions, index: torch.Tensor, rows: Predictions) -> Predictions:
    """`reference` with the samples at `index` replaced by `rows` (score and probs; extras are not probed)."""
    def merged(base: torch.Tensor | None, new: torch.Tensor | None) -> torch.Tensor | None:
        if base is None or new is None:
            return None
        out = base.clone()
        out[index] = new
        return out

    return Predictions(score=merged(reference.score, rows.score), probs=merged(reference.probs, rows.probs))


def concat_splits(parts: list[Split]) -> Split:
    """The samples of every part, in order, as one Split (all parts come from the same test split)."""
    first = parts[0]
    fields = {}
    for name, value in tensor_fields(first).items():
        fields[name] = None if value is None else torch.cat([getattr(part, name) for part in parts], dim=0)
    ids = tuple(sample_id for part in parts for sample_id in part.ids)
    return first.replace(ids=ids, **fields)


def _chunks(variants: list[Variant], bytes_per_sample: int, budget: int) -> Iterator[list[Variant]]:
    """Consecutive groups of variants whose inputs together stay within `budget` bytes (at least one per group)."""
    chunk: list[Variant] = []
    used = 0
    for variant in variants:
        size = variant.index.numel() * bytes_per_sample
        if chunk and used + size > budget:
            yield chunk
            chunk, used = [], 0
        chunk.append(variant)
        used += size
    if chunk:
        yield chunk


def tensor_fields(split: Split) -> dict[str, torch.Tensor | None]:
    """Every per-sample tensor field of `split` by name (None where the split lacks it)."""
    return {item.name: getattr(split, item.name) for item in dataclasses.fields(split)
            if item.name not in ("name", "ids")}


def _bytes_per_sample(split: Split) -> int:
    total = sum(value.element_size() * value.numel() for value in tensor_fields(split).values() if value is not None)
    return max(1, total // max(len(split), 1))
