"""Datasets: specs, reading MMSA files, the synthetic generator, subsets."""

from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import MODALITIES, SPLITS, MERData, Split
from mer_bench.data.subsets import SUBSET_NAMES, subset_indices, three_class

__all__ = ["DatasetSpec", "MERData", "Split", "MODALITIES", "SPLITS", "SUBSET_NAMES", "subset_indices", "three_class"]
