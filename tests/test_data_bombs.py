"""Hostile pickles built from raw opcodes: every shape of reader bomb is refused with one line naming the file, in
little time and memory. Shapes whose failure on unguarded code is a hang or a crash run in a subprocess with a
timeout and a memory limit, so a regression fails the test instead of taking the test run down."""

from __future__ import annotations

import collections
import os
import pickle
import resource
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from mer_bench.data import pickle_limits
from mer_bench.data.mmsa import read_pickle
from mer_bench.errors import DataError
from tests.entry_points import cli_environment
from tests.test_data_support import tiny_raw, write_pickle

P4 = b"\x80\x04"                              # PROTO 4
MEMORY_LIMIT = 3 * 2**30                      # address space of a subprocess reading a bomb


def bomb(tmp_path: Path, content: bytes, name: str = "bomb.pkl") -> Path:
    path = tmp_path / name
    path.write_bytes(content)
    return path


def refusal(path: Path) -> str:
    """The one-line DataError reading `path` gives."""
    with pytest.raises(DataError) as caught:
        read_pickle(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ") and "\n" not in message
    return message


def long1(value: int) -> bytes:
    data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
    return b"\x8a" + bytes([len(data)]) + data


def data_check(path: Path, timeout: float = 60) -> subprocess.CompletedProcess:
    """`mer-bench data check PATH` in its own process with a memory limit: a crash or a hang fails the caller."""
    def limit_memory():
        resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    return subprocess.run([sys.executable, "-m", "mer_bench", "data", "check", str(path), "--dataset", "sims-v2"],
                          env=cli_environment(None), capture_output=True, text=True, timeout=timeout,
                          preexec_fn=limit_memory)


def assert_one_line_exit_2(done: subprocess.CompletedProcess, path: Path, phrase: str) -> None:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, done.stderr[-2000:]
    assert len(lines) == 1 and str(path) in lines[0] and phrase in lines[0], done.stderr


# hashing: keys and set members must be plain before anything is hashed


def test_a_tuple_dag_as_a_dict_key_is_refused_at_once_not_hashed_forever(tmp_path):
    """The 168-byte bomb: 2**60 paths through 60 shared tuples. Hashing it never ends and runs in C, deaf to
    SIGTERM; it must be refused before the dict hashes it."""
    dag = b")" + b"2\x86" * 60                           # () then 60 x (DUP, TUPLE2): t[i+1] = (t[i], t[i])
    path = bomb(tmp_path, P4 + b"}" + dag + b"Ns.")      # {t60: None}
    started = time.monotonic()
    assert_one_line_exit_2(data_check(path), path, "refusing to load")
    assert time.monotonic() - started < 60


@pytest.mark.parametrize("content, phrase", [
    (P4 + b"}K\x01K\x02\x86Ns.", "dict key of type tuple"),                         # SETITEM
    (P4 + b"(K\x01K\x02\x86Nd.", "dict key of type tuple"),                         # DICT
    (P4 + b"}(K\x01K\x02\x86Nu.", "dict key of type tuple"),                        # SETITEMS
    (P4 + b"\x8f(K\x01K\x02\x86\x90.", "set member of type tuple"),                 # ADDITEMS
    (P4 + b"(K\x01K\x02\x86\x91.", "set member of type tuple"),                     # FROZENSET
    (P4 + b"\x8c\x08builtins\x8c\x03set\x93]K\x01K\x02\x86a\x85R.", "set member of type tuple"),   # set([...])
    (P4 + b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93](K\x01\x85K\x02\x86e\x85R.", "dict key of type tuple"),
    (P4 + b"}" + b"X\x01\x10\x00\x00" + b"a" * 4097 + b"Ns.", "dict key of 4097 characters"),
])
def test_dict_keys_and_set_members_must_be_plain(tmp_path, content, phrase):
    assert phrase in refusal(bomb(tmp_path, content))


def test_colliding_huge_int_keys_are_refused_at_the_first_one(tmp_path):
    """Ints equal modulo 2**61-1 hash alike: 60k of them took a minute to insert. Keys are at most 64 bits, where
    a hash value has at most a handful of ints."""
    keys = b"".join(long1(index * (2**61 - 1) * 2**8) + b"N" for index in range(1, 5000))
    started = time.monotonic()
    assert "integer of" in refusal(bomb(tmp_path, P4 + b"}(" + keys + b"u."))
    assert time.monotonic() - started < 5


# nesting depth, enforced while unpickling


def test_a_tuple_nested_a_million_deep_is_refused_not_a_crash(tmp_path):
    path = bomb(tmp_path, P4 + b"}" + b")" + b"\x85" * 10**6 + b"Ns.")   # {((((...)))): None}
    assert_one_line_exit_2(data_check(path), path, "nested more than")


def _nest(wrap: tuple[bytes, bytes], depth: int = pickle_limits.MAX_DEPTH + 1) -> bytes:
    """None wrapped `depth` times: opcodes before and after the inner object."""
    nested = b"N"
    for _ in range(depth):
        nested = wrap[0] + nested + wrap[1]
    return P4 + nested + b"."


NESTINGS = {"TUPLE1": (b"", b"\x85"), "TUPLE": (b"(", b"t"), "LIST": (b"(", b"l"), "APPEND": (b"]", b"a"),
            "SETITEM": (b"}\x8c\x01k", b"s"), "DICT": (b"(\x8c\x01k", b"d"),
            "REDUCE": (b"\x8c\x0bcollections\x8c\x0bOrderedDict\x93]\x8c\x01k", b"\x86a\x85R")}


@pytest.mark.parametrize("wrap", NESTINGS.values(), ids=NESTINGS.keys())
def test_nesting_deeper_than_the_limit_is_refused_while_reading(tmp_path, wrap):
    assert "nested more than" in refusal(bomb(tmp_path, _nest(wrap)))


@pytest.mark.parametrize("wrap", NESTINGS.values(), ids=NESTINGS.keys())
def test_nesting_up_to_the_limit_loads(tmp_path, wrap):
    """{"x": <None wrapped>} with the dict as the deepest allowed level: read, not refused."""
    inner = _nest(wrap, depth=1)[len(P4):-1]
    levels = pickle_limits.MAX_DEPTH - 1
    for _ in range(levels // _levels_per_wrap(wrap) - 1):
        inner = wrap[0] + inner + wrap[1]
    loaded = read_pickle(bomb(tmp_path, P4 + b"}\x8c\x01x" + inner + b"s."))
    assert set(loaded) == {"x"} and loaded["x"] is not None


def _levels_per_wrap(wrap: tuple[bytes, bytes]) -> int:
    return 4 if wrap == NESTINGS["REDUCE"] else 1      # pair, list, argument tuple, OrderedDict


def test_a_container_cannot_grow_after_it_was_placed_in_another(tmp_path):
    """Growing a list after it was nested would let depth and size be measured too early (and make cycles)."""
    grown_late = P4 + b"]\x94]\x94h\x00h\x01ah\x01Na0."           # L0.append(L1), then L1.append(None)
    itself = P4 + b"]\x94h\x00h\x00a."                             # L0.append(L0)
    assert "already placed inside another" in refusal(bomb(tmp_path, grown_late, "late.pkl"))
    assert "contains itself" in refusal(bomb(tmp_path, itself, "self.pkl"))


# size: what a file builds and what it expands to are bounded by its own size


def test_a_list_of_references_to_one_array_is_refused(tmp_path):
    """250 references to one 8 MB array made a 10 MB file expand to 2 GB in validation (numpy copies each)."""
    array = np.zeros(2**18, dtype=np.float32)                        # 1 MiB
    raw = tiny_raw()
    raw["train"]["audio"] = [array] * 300
    path = write_pickle(raw, tmp_path / "refs.pkl")
    assert path.stat().st_size < 2 * 2**20
    assert "expands to more than" in refusal(path)


def test_ids_made_of_references_to_one_long_string_are_refused(tmp_path):
    """Joining id parts copies them: 3000 ids of three references to one 1 MB string would be 9 GB of text."""
    part = "x" * 2**20
    raw = tiny_raw()
    raw["train"]["id"] = [(part, part, part)] * 3000
    assert "expands to more than" in refusal(write_pickle(raw, tmp_path / "ids.pkl"))


@pytest.mark.parametrize("opcodes", [b"\x8f", b"N\x94", b"(", b"}"], ids=["EMPTY_SET", "MEMOIZE", "MARK", "DICT"])
def test_a_flood_of_small_objects_is_refused_by_what_it_allocates(tmp_path, monkeypatch, opcodes):
    """10 MB of EMPTY_SET cost 2.5 GB (each byte makes a 216-byte set). 1.5 MB shows the same against a smaller
    floor (the accounting, not the floor, is under test)."""
    monkeypatch.setattr(pickle_limits, "OVERHEAD_FLOOR", 8 * 2**20)
    path = bomb(tmp_path, P4 + opcodes * (1_500_000 // len(opcodes)) + b"N.")
    started = time.monotonic()
    assert "MiB of Python objects from a" in refusal(path)
    assert time.monotonic() - started < 20


def test_a_real_file_of_many_short_ids_is_not_mistaken_for_a_bomb(tmp_path, monkeypatch):
    """Short strings cost Python about ten times their bytes in the file; a file of ids is not a bomb."""
    monkeypatch.setattr(pickle_limits, "OVERHEAD_FLOOR", 2**20)
    raw = tiny_raw()
    raw["config"] = {"ids": [f"v{index}" for index in range(100_000)]}
    path = write_pickle(raw, tmp_path / "ids.pkl", protocol=4)
    assert len(read_pickle(path)["config"]["ids"]) == 100_000


def test_the_overhead_budget_is_capped_for_large_files():
    ledger = pickle_limits.Ledger(file_size=10 * 2**30)
    assert ledger.overhead_budget == pickle_limits.OVERHEAD_CAP


def test_objects_left_on_the_stack_make_the_file_unusable(tmp_path):
    assert "left over at the end" in refusal(bomb(tmp_path, P4 + b"\x8f\x8f}."))


@pytest.mark.parametrize("opcode, length_format", [
    (b"\x8e", "<Q"), (b"\x96", "<Q"), (b"\x8d", "<Q"), (b"B", "<I"), (b"X", "<I"), (b"\x8b", "<i"), (b"\x95", "<Q"),
], ids=["BINBYTES8", "BYTEARRAY8", "BINUNICODE8", "BINBYTES", "BINUNICODE", "LONG4", "FRAME"])
def test_a_length_beyond_the_file_is_refused_before_allocating(tmp_path, opcode, length_format):
    path = bomb(tmp_path, P4 + opcode + struct.pack(length_format, 2**30 + 2**29) + b".")
    assert "a length of" in refusal(path)


@pytest.mark.parametrize("content, phrase", [
    (P4 + b"\x82\x01.", "EXT1"), (P4 + b"\x83\x01\x00.", "EXT2"), (P4 + b"\x84\x01\x00\x00\x00.", "EXT4"),
    (P4 + b"\x8c\x08builtins\x8c\x03set\x93)\x81.", "NEWOBJ"),
    (P4 + b"\x8c\x08builtins\x8c\x03set\x93)}\x92.", "NEWOBJ_EX"),
    (P4 + b"(ibuiltins\nset\n.", "INST"),
    (b"\x80\x05\x97.", "NEXT_BUFFER"), (b"\x80\x05C\x01x\x98.", "READONLY_BUFFER"),
])
def test_opcodes_mmsa_files_never_use_are_refused(tmp_path, content, phrase):
    assert phrase in refusal(bomb(tmp_path, content))


def test_a_huge_integer_id_is_one_line_not_a_traceback(tmp_path):
    raw = tiny_raw()
    raw["train"]["id"] = [2**20000] + [f"id{i}" for i in range(4)]
    path = write_pickle(raw, tmp_path / "huge-id.pkl")
    assert "integer of 20001 bits" in refusal(path)


# real files still load: every container type MMSA-era pickles can hold, in every protocol


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_plain_sets_ordered_dicts_and_nested_columns_still_load(tmp_path, protocol):
    raw = tiny_raw()
    raw["config"] = {"tags": {"a", 1}, "frozen": frozenset({b"x", 2.5}), "order": collections.OrderedDict(b=1, a=2),
                     "ids": [("video", 1, 2.0)] * 3, "big": 2**63 - 1, "arrays": [np.arange(3)] * 4}
    path = write_pickle(raw, tmp_path / "plain.pkl", protocol=protocol)
    loaded = read_pickle(path)
    assert loaded["config"]["tags"] == {"a", 1} and loaded["config"]["order"] == raw["config"]["order"]
    assert list(loaded["config"]["order"]) == ["b", "a"] and loaded["config"]["ids"][2] == ("video", 1, 2.0)
    np.testing.assert_array_equal(loaded["train"]["audio"], raw["train"]["audio"])


# signals: a long read answers SIGTERM


def test_sigterm_stops_a_long_read_promptly(tmp_path):
    """The reader's loop is Python, so the CLI's SIGTERM handler runs between opcodes: exit 130, no traceback."""
    path = bomb(tmp_path, P4 + b"N0" * 15_000_000 + b"N.")          # 30 MB of NONE, POP: long, and no memory
    process = subprocess.Popen([sys.executable, "-m", "mer_bench", "data", "check", str(path), "--dataset",
                                "sims-v2"], env=cli_environment(None), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        _wait_until_open(process.pid, path, timeout=120)
        time.sleep(0.5)
        process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        out, err = process.communicate(timeout=30)
    finally:
        process.kill()
    assert process.returncode == 130, err
    assert time.monotonic() - signalled < 10 and "Traceback" not in err


def _wait_until_open(pid: int, path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if any(os.readlink(f"/proc/{pid}/fd/{fd}") == str(path) for fd in os.listdir(f"/proc/{pid}/fd")):
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise AssertionError(f"{path} was never opened")
