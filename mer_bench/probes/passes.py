"""Running many perturbed versions of the test split through a model with as few `predict` calls as memory allows.

A probe condition is a `Variant`: the samples whose inputs it changes and a function that builds those samples'
perturbed inputs. Samples a variant leaves unchanged keep the reference prediction instead of being predicted again
(a model's prediction of a sample depends on that sample's inputs alone, as the `predict` contract implies).

Variants are built only when due. Small ones (a few masked samples each) are concatenated so a model is not called
for a handful of samples at a time; no call ever gets more samples than the test split has, so a model that predicts
a whole split in one batch needs no more memory for the probes than for the scored test pass. A variant that changes
every sample goes alone and unconcatenated: its unchanged fields stay shared with the test split instead of copied.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import torch

from mer_bench.data.split import Split
from mer_bench.model import Model, NullProgress, Predictions, Progress


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
    largest_call: int = 0          # most samples given to one predict call (never more than the test split)

    def as_dict(self, test_samples: int) -> dict[str, float | int]:
        return {"predict_calls": self.predict_calls, "samples_predicted": self.samples_predicted,
                "variants": self.variants, "test_samples": test_samples, "largest_call": self.largest_call,
                "test_passes_equivalent": self.samples_predicted / max(test_samples, 1)}


def predict_variants(model: Model, test: Split, reference: Predictions, variants: list[Variant],
                     count: PassCount, progress: Progress | None = None) -> dict[str, Predictions]:
    """{variant key: full-length predictions}: reference predictions with each variant's changed rows predicted.

    `progress` gets a "probes" stage with one step per predicted variant (the probes can take a fifth of a run)."""
    progress = progress or NullProgress()
    results: dict[str, Predictions] = {}
    due = [v for v in variants if v.index.numel() > 0]
    progress.start_stage("probes", len(due))
    for chunk in _chunks(due, max_samples=len(test)):
        parts = [variant.build() for variant in chunk]
        inputs = parts[0] if len(parts) == 1 else concat_splits(parts)
        # A perturbed input may drive a model to NaN; that condition then scores as undefined (see track_scores)
        # instead of failing a run whose clean predictions were finite and already scored.
        predicted = model.predict(inputs).check(len(inputs), model.outputs, model.name, require_finite=False)
        count.predict_calls += 1
        count.samples_predicted += len(inputs)
        count.largest_call = max(count.largest_call, len(inputs))
        offset = 0
        for variant in chunk:
            rows = torch.arange(offset, offset + variant.index.numel())
            results[variant.key] = with_rows(reference, variant.index, predicted.take(rows))
            offset += variant.index.numel()
            progress.advance()
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
    for name, value in first.tensors().items():
        fields[name] = None if value is None else torch.cat([getattr(part, name) for part in parts], dim=0)
    ids = tuple(sample_id for part in parts for sample_id in part.ids)
    return first.replace(ids=ids, **fields)


def _chunks(variants: list[Variant], max_samples: int) -> Iterator[list[Variant]]:
    """Consecutive groups of variants with at most `max_samples` samples together (a larger variant goes alone)."""
    chunk: list[Variant] = []
    used = 0
    for variant in variants:
        size = variant.index.numel()
        if chunk and used + size > max_samples:
            yield chunk
            chunk, used = [], 0
        chunk.append(variant)
        used += size
    if chunk:
        yield chunk
