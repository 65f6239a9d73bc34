"""The standard datasets and the synthetic one, registered through the same hook third-party datasets use."""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from mer_bench.bert import RANDOM_SMALL_BERT
from mer_bench.data.mmsa import raw_to_data
from mer_bench.data.specs import DatasetSpec
from mer_bench.data.split import MERData
from mer_bench.data.synthetic import SHAPES, generate_raw
from mer_bench.data.synthetic_family import Member
from mer_bench.hookspecs import hookimpl

MMSA_SOURCE = ("the MMSA processed features (github.com/thuiar/MMSA, README section 'Datasets'; CH-SIMS v2 from "
               "github.com/thuiar/ch-sims-v2)")

STANDARD_DATASETS = (
    DatasetSpec(
        name="mosi", title="CMU-MOSI", style="mosi", feature_dims=(768, 5, 20), seq_lens=(50, 375, 500),
        split_sizes=(1284, 229, 686), has_unimodal_labels=False, text_model="bert-base-uncased",
        relative_paths=("MOSI/Processed/unaligned_50.pkl", "CMU-MOSI/Processed/unaligned_50.pkl"),
        sha256="78e0f8b5ef8ff71558e7307848fc1fa929ecb078203f565ab22b9daab2e02524", source_hint=MMSA_SOURCE),
    DatasetSpec(
        name="mosei", title="CMU-MOSEI", style="mosi", feature_dims=(768, 74, 35), seq_lens=(50, 500, 500),
        split_sizes=(16326, 1871, 4659), has_unimodal_labels=False, text_model="bert-base-uncased",
        relative_paths=("MOSEI/Processed/unaligned_50.pkl", "CMU-MOSEI/Processed/unaligned_50.pkl"),
        sha256="ad8b23d50557045e7d47959ce6c5b955d8d983f2979c7d9b7b9226f6dd6fec1f", source_hint=MMSA_SOURCE),
    DatasetSpec(
        name="sims", title="CH-SIMS", style="sims", feature_dims=(768, 33, 709), seq_lens=(39, 400, 55),
        split_sizes=(1368, 456, 457), has_unimodal_labels=True, text_model="bert-base-chinese",
        relative_paths=("SIMS/Processed/unaligned_39.pkl", "CH-SIMS/Processed/unaligned_39.pkl",
                        "CH-SIMS/Processed/unaligned.pkl"),
        sha256="c9e20c13ec0454d98bb9c1e520e490c75146bfa2dfeeea78d84de047dbdd442f", source_hint=MMSA_SOURCE),
    DatasetSpec(
        name="sims-v2", title="CH-SIMS v2(s)", style="sims", feature_dims=(768, 25, 177), seq_lens=(50, 925, 232),
        split_sizes=(2722, 647, 1034), has_unimodal_labels=True, text_model="bert-base-chinese",
        relative_paths=("SIMSv2/Processed/sims_unaligned.pkl", "CH-SIMS-v2/CH-SIMS-v2(s)/Processed/unaligned.pkl",
                        "SIMSv2/Processed/unaligned.pkl"),
        sha256=None, source_hint=MMSA_SOURCE),
    # Word-aligned by CMU (P2FA word timings): every modality has 50 steps, one per word, and the files carry no
    # lengths. Same samples, labels and feature sizes as the unaligned files; checksums from MMSA's README.
    DatasetSpec(
        name="mosi-aligned", title="CMU-MOSI (word-aligned)", style="mosi", feature_dims=(768, 5, 20),
        seq_lens=(50, 50, 50), split_sizes=(1284, 229, 686), has_unimodal_labels=False,
        text_model="bert-base-uncased",
        relative_paths=("MOSI/Processed/aligned_50.pkl", "CMU-MOSI/Processed/aligned_50.pkl"),
        sha256="d3994fd25681f9c7ad6e9c6596a6fe9b4beb85ff7d478ba978b124139002e5f9", source_hint=MMSA_SOURCE,
        aligned=True),
    DatasetSpec(
        name="mosei-aligned", title="CMU-MOSEI (word-aligned)", style="mosi", feature_dims=(768, 74, 35),
        seq_lens=(50, 50, 50), split_sizes=(16326, 1871, 4659), has_unimodal_labels=False,
        text_model="bert-base-uncased",
        relative_paths=("MOSEI/Processed/aligned_50.pkl", "CMU-MOSEI/Processed/aligned_50.pkl"),
        sha256="45eccfb748a87c80ecab9bfac29582e7b1466bf6605ff29d3b338a75120bf791", source_hint=MMSA_SOURCE,
        aligned=True),
)

SYNTHETIC_SEED = 0  # one fixed dataset, so runs with different training seeds see the same data


def synthetic_spec(like: str = "synthetic", sizes: tuple[int, int, int] | None = None,
                   seed: int = SYNTHETIC_SEED, name: str = "synthetic") -> DatasetSpec:
    """The spec of a generated dataset; `generate` builds it in memory (same code path as a file read)."""
    spec = member_spec(Member(like=like, sizes=sizes, data_seed=seed), name)
    if like != "synthetic":
        spec = dataclasses.replace(spec, title=f"Synthetic ({like}-shaped)")
    return spec


def member_spec(member: Member, name: str | None = None) -> DatasetSpec:
    """The spec of one member of the synthetic family (`mer_bench.data.synthetic_family`), named by its knobs."""
    shape = member.shape

    def generate() -> MERData:
        raw = generate_raw(shape, shape.sizes, member.data_seed, knobs=member.knobs)
        return raw_to_data(raw, spec, source, checksum_arrays(raw))

    knobs = "" if member.name.split("+")[1:] in ([], [f"like-{member.like}"]) else f", member={member.name}"
    source = f"synthetic(like={member.like}, sizes={shape.sizes}, seed={member.data_seed}{knobs})"

    spec = DatasetSpec(
        name=name or member.name, title=member.title, style=shape.style, feature_dims=shape.feature_dims,
        seq_lens=shape.seq_lens, split_sizes=shape.sizes, has_unimodal_labels=shape.unimodal_labels,
        text_model=RANDOM_SMALL_BERT, source_hint="generated by mer-bench, no download", synthetic=True,
        generate=generate, generator=member.record())
    return spec


def checksum_arrays(raw: dict) -> str:
    """SHA-256 over every array of every split in a fixed order: identical data gives an identical checksum."""
    digest = hashlib.sha256()
    for split in sorted(key for key in raw if isinstance(raw[key], dict)):
        for key in sorted(raw[split]):
            value = np.asarray(raw[split][key])
            digest.update(f"{split}/{key}/{value.dtype}/{value.shape}".encode())
            digest.update(value.tobytes() if value.dtype != object else "\x00".join(map(str, value.ravel())).encode())
    return digest.hexdigest()


@hookimpl
def register_datasets(register):
    for spec in STANDARD_DATASETS:
        register(spec)
    register(synthetic_spec())
