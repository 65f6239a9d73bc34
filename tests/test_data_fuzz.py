"""Property tests: whatever is done to a valid file, the reader returns valid data or raises its own DataError."""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mer_bench.data.mmsa import raw_to_data, read_pickle
from mer_bench.errors import DataError
from tests.test_data_support import TINY_SPEC, assert_valid_data, tiny_raw

# 80 examples keep the suite fast; MER_BENCH_FUZZ_EXAMPLES=5000 runs a deeper search before a release.
FUZZ = settings(max_examples=int(os.environ.get("MER_BENCH_FUZZ_EXAMPLES", "80")), deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
VALID_BYTES = {protocol: pickle.dumps(tiny_raw(), protocol=protocol) for protocol in (2, 4)}
KEYS = ("id", "text", "text_bert", "audio", "vision", "audio_lengths", "vision_lengths", "regression_labels",
        "regression_labels_T", "regression_labels_A", "regression_labels_V", "extra")


def read_or_refuse(content: bytes) -> None:
    """Read bytes as a file would be read; anything but valid data or a DataError fails the property."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "file.pkl"
        path.write_bytes(content)
        try:
            data = raw_to_data(read_pickle(path), TINY_SPEC, str(path), "0" * 64)
        except DataError as error:
            assert str(error).startswith(str(path)) and "\n" not in str(error)
            return
    assert_valid_data(data)


byte_edits = st.one_of(
    st.tuples(st.just("truncate"), st.integers(0, 10**6), st.just(0)),
    st.tuples(st.just("flip"), st.integers(0, 10**6), st.integers(1, 255)),
    st.tuples(st.just("insert"), st.integers(0, 10**6), st.integers(0, 255)),
    st.tuples(st.just("delete"), st.integers(0, 10**6), st.integers(1, 64)),
)


def apply_byte_edit(content: bytes, edit: tuple[str, int, int]) -> bytes:
    kind, position, value = edit
    position %= len(content)
    if kind == "truncate":
        return content[:position]
    if kind == "flip":
        return content[:position] + bytes([content[position] ^ value]) + content[position + 1:]
    if kind == "insert":
        return content[:position] + bytes([value]) + content[position:]
    return content[:position] + content[position + value:]


@FUZZ
@given(protocol=st.sampled_from(sorted(VALID_BYTES)), edits=st.lists(byte_edits, min_size=1, max_size=3))
def test_byte_mutations_give_valid_data_or_a_data_error(protocol, edits):
    content = VALID_BYTES[protocol]
    for edit in edits:
        content = apply_byte_edit(content, edit) or b"\x80"
    read_or_refuse(content)


def _replacement(kind: str, value, rng: np.random.Generator):
    """A plausible corruption of one column's value."""
    array = np.atleast_1d(np.asarray(value)) if value is not None and not isinstance(value, str) else np.zeros(3)
    if array.dtype.kind not in "fiu" and kind in NUMERIC_ONLY:
        return array
    make = {
        "delete": lambda: None,
        "none": lambda: None,
        "string": lambda: "features.npy",
        "scalar": lambda: 1.5,
        "dict": lambda: {"values": array},
        "object": lambda: array.astype(object),
        "complex": lambda: array.astype(np.complex64),
        "bool": lambda: array.astype(bool),
        "float64_huge": lambda: np.clip(array.astype(np.float64), -1, 1) * 1e300,
        "nan": lambda: np.where(rng.random(array.shape) < 0.3, np.nan, array),
        "neg_inf": lambda: np.where(rng.random(array.shape) < 0.3, -np.inf, array),
        "scaled": lambda: array * 10,
        "negated": lambda: -array,
        "fewer_rows": lambda: array[:-1],
        "transposed": lambda: array.T,
        "flattened": lambda: array.reshape(-1),
        "extra_axis": lambda: array[..., None],
        "empty_rows": lambda: array[:0],
        "repeated_rows": lambda: np.repeat(array[:1], len(array), axis=0),
        "list": lambda: array.tolist(),
    }
    return make[kind]()


NUMERIC_ONLY = ("complex", "bool", "float64_huge", "nan", "neg_inf", "scaled", "negated")
MUTATIONS = ("delete", "none", "string", "scalar", "dict", "object", "complex", "bool", "float64_huge", "nan",
             "neg_inf", "scaled", "negated", "fewer_rows", "transposed", "flattened", "extra_axis", "empty_rows",
             "repeated_rows", "list")


@FUZZ
@given(mutations=st.lists(st.tuples(st.sampled_from(("train", "valid", "test")), st.sampled_from(KEYS),
                                    st.sampled_from(MUTATIONS)), min_size=1, max_size=3),
       seed=st.integers(0, 2**16))
def test_structure_mutations_give_valid_data_or_a_data_error(mutations, seed):
    raw = tiny_raw()
    rng = np.random.default_rng(seed)
    for split, key, kind in mutations:
        if not isinstance(raw[split], dict):      # an earlier mutation replaced the whole split
            continue
        replacement = _replacement(kind, raw[split].get(key), rng)
        if kind == "delete":
            raw[split].pop(key, None)
        elif kind == "none":
            raw[split] = "none" if key == "extra" else raw[split] | {key: None}
        else:
            raw[split][key] = replacement
    read_or_refuse(pickle.dumps(raw, protocol=4))
