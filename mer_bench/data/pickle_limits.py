"""Resource limits for unpickling untrusted files: a pickle may not make the reader hash, walk or allocate more than
its own size justifies.

The restricted unpickler (safe_pickle.py) decides *what* a file may build; this module bounds *how much*. A pickle is
a program: a few bytes can build a tuple DAG whose hash takes exponential time (in C, so Ctrl-C and SIGTERM wait
for it), nest tuples a million deep (the interpreter's C recursion overflows its stack), put 60k colliding integer
keys into a dict, or reference one large array thousands of times (the file stays small, the data built from it
does not). Every limit is checked while the opcode runs, before the object is hashed, walked or grown:

=============================================  ===============================================================
opcodes                                        limit, and why
=============================================  ===============================================================
DICT, SETITEM(S), ADDITEMS, FROZENSET,          dict keys and set members are plain: str or bytes of at most
set()/frozenset()/OrderedDict() via REDUCE      MAX_KEY_LENGTH, int of at most MAX_INT_BITS bits, float, bool,
                                                None. Checked before hashing: hashing or comparing a tuple DAG
                                                is exponential and runs in C, deaf to signals; ints outside 64
                                                bits collide at will (hash is x mod 2**61-1).
TUPLE*, LIST, DICT, FROZENSET, APPEND(S),       nesting depth at most MAX_DEPTH, computed per object as it is
SETITEM(S), ADDITEMS, BUILD, REDUCE             built: deeper nesting overflows C recursion (repr, hash, ==).
APPEND(S), SETITEM(S), ADDITEMS, BUILD          the target was not yet placed inside another object and is not
                                                its own element. Python's pickler writes bottom-up, so this never
                                                refuses a real file; it makes depths and sizes exact (a container
                                                cannot grow after its parent was measured) and rules out cycles.
every container, REDUCE, BUILD                  expanded size at most the data budget: the bytes an object would
                                                span if every shared reference were copied (an 8 MB array
                                                referenced 250 times counts 2 GB). Validation and numpy do copy
                                                shared references (np.asarray of a list, "_".join of id parts).
BUILD, strings and bytes, BYTEARRAY8            data allocated (array data numpy copies, text and bytes read) at
                                                most the data budget.
EMPTY_LIST/DICT/SET, MARK, TUPLE*, LIST, DICT,  Python object overhead at most the overhead budget: containers (an
FROZENSET, element slots, MEMOIZE/PUT, REDUCE   EMPTY_SET byte makes a 216-byte set), slots, memo entries, object
results, headers of strings and numbers         headers, each at its real size. Pushing an existing object (GET,
                                                DUP, NONE, small ints) costs one stack pointer per opcode byte and
                                                is left uncounted.
LONG, LONG1, LONG4, INT                         at most MAX_INT_BITS bits: no MMSA file holds larger numbers, and
                                                str() of a huge int raises (an id would crash its formatting).
any read with a length (BINBYTES8, BYTEARRAY8,  at most the file's size: the length is read before the data, and
BINUNICODE8, LONG4, FRAME, ...)                 the buffer would be allocated before the short read is noticed.
NEWOBJ, NEWOBJ_EX, INST, OBJ                    refused: MMSA files build objects only through REDUCE, and these
                                                reach __new__ and constructors with file-chosen arguments.
EXT1, EXT2, EXT4                                refused: extension codes name callables outside the allowed table.
NEXT_BUFFER, READONLY_BUFFER                    refused: protocol-5 out-of-band buffers are never supplied to a
                                                file read from disk.
STOP                                            nothing may be left on the stack: a file that builds garbage next
                                                to its result (10 MB of EMPTY_SET) is not a file Python wrote.
=============================================  ===============================================================

Data budget = DATA_FLOOR + DATA_FACTOR * file size. A real MMSA file allocates about its own size in data (numpy's
arrays keep pointing into the bytes read; Python-2-era files, whose array data is str, twice that) and expands to
about its size, so the factor leaves room while a bomb fails early. Overhead budget = OVERHEAD_FLOOR +
OVERHEAD_FACTOR * file size, at most OVERHEAD_CAP: a short string costs Python ten times its bytes in the file (object
header, memo entry, list slot), so a real file of many ids needs a larger factor; the cap keeps a large file from
licensing gigabytes of empty containers, and is far above the few megabytes of ids and texts of real files. The
checks run in Python between opcodes, so a long read still answers SIGTERM and Ctrl-C promptly.
"""

from __future__ import annotations

import os
import pickle
import struct
import sys
from dataclasses import dataclass
from typing import Any

import numpy as np

MAX_DEPTH = 32                   # real files: dict > dict > array > state tuple > list > id; 32 leaves plenty
MAX_KEY_LENGTH = 4096            # characters (bytes) of a dict key or set member; MMSA keys are column names
MAX_INT_BITS = 64
DATA_FACTOR = 4
DATA_FLOOR = 64 * 2**20          # small files may still hold a little data
OVERHEAD_FACTOR = 32
OVERHEAD_FLOOR = 64 * 2**20
OVERHEAD_CAP = 2**30             # 1 GiB of Python objects: about 7 million short strings
SLOT = 8                         # one reference inside a container
MEMO_ENTRY = 100                 # a memo dict slot, its int key and its hash
NODE_BOOKKEEPING = 160           # what tracking one container costs this module
SMALL_READ = 1 << 16             # reads this short are never refused (a truncated file fails as truncated)
_PLAIN_KEY_TYPES = (str, bytes, int, float, bool, type(None))


class Refused(pickle.UnpicklingError):
    """The file holds something MMSA feature files never contain, or more than its size justifies; the message says
    what."""


def check_plain_key(value: Any, role: str) -> None:
    """A dict key or set member must be cheap to hash and compare (see the module's table)."""
    kind = type(value)
    if kind not in _PLAIN_KEY_TYPES:
        raise Refused(f"a {role} of type {kind.__name__} (MMSA files use only text, numbers or bytes here)")
    if kind in (str, bytes) and len(value) > MAX_KEY_LENGTH:
        raise Refused(f"a {role} of {len(value)} characters (at most {MAX_KEY_LENGTH})")
    if kind is int and value.bit_length() > MAX_INT_BITS:
        raise Refused(f"a {role} that is an integer of {value.bit_length()} bits (at most {MAX_INT_BITS})")


@dataclass
class _Node:
    """What is known about one container (or array, or object built by REDUCE) the file made."""

    obj: Any            # kept alive so that id(obj) names this object until loading ends
    depth: int          # 1 + the deepest element's depth; leaves (str, int, ...) have depth 0
    weight: int         # bytes the object spans with every shared reference expanded
    sealed: bool = False   # placed inside another object: it may no longer change


class Ledger:
    """Depth, expanded size and allocation of everything one file builds, checked against its budgets."""

    def __init__(self, file_size: int):
        self.file_size = file_size
        self.budget = DATA_FLOOR + DATA_FACTOR * file_size
        self.overhead_budget = min(OVERHEAD_FLOOR + OVERHEAD_FACTOR * file_size, OVERHEAD_CAP)
        self.allocated = self.overhead = 0
        self.nodes: dict[int, _Node] = {}

    def allocate(self, nbytes: int) -> None:
        """Data: array contents, text and bytes."""
        self.allocated += nbytes
        if self.allocated > self.budget:
            raise Refused(f"it builds more than {self._budget_text()} of data from a {self.file_size}-byte file "
                          "(a decompression bomb?)")

    def add_overhead(self, nbytes: int) -> None:
        """Python objects: containers, slots, memo entries, object headers."""
        self.overhead += nbytes
        if self.overhead > self.overhead_budget:
            raise Refused(f"it builds more than {self.overhead_budget / 2**20:.0f} MiB of Python objects from a "
                          f"{self.file_size}-byte file (a decompression bomb?)")

    def check_length(self, n: int) -> None:
        """A length read from the file, before anything of that length is allocated or read."""
        if n > max(self.file_size, SMALL_READ):   # small reads past the end fail as truncation
            raise Refused(f"a length of {n} bytes in a {self.file_size}-byte file")

    def new(self, obj: Any, elements: Any, size: int) -> None:
        """Track a new object of `size` bytes (slots included) made of `elements`, which it seals."""
        node = _Node(obj, 0, 0)
        self.nodes[id(obj)] = node
        self.add_overhead(size + NODE_BOOKKEEPING)
        self._take(node, elements)

    def grow(self, target: Any, elements: Any, slot_bytes: int = SLOT) -> None:
        """`elements` are added to `target` (APPENDS, SETITEMS, ADDITEMS, BUILD)."""
        node = self.nodes.get(id(target))
        if node is None or node.sealed:
            what = "an object the file did not build as a container" if node is None else \
                "a container already placed inside another one (not how Python writes pickles)"
            raise Refused(f"adding elements to {what}")
        self.add_overhead(slot_bytes * len(elements))
        self._take(node, elements)

    def _take(self, node: _Node, elements: Any) -> None:
        depth, weight, nodes = node.depth, node.weight + SLOT * len(elements), self.nodes
        if elements:
            depth = max(depth, 1)
        for element in elements:   # inlined `weight`: this loop runs once per element of every container
            child = nodes.get(id(element))
            if child is None:
                if isinstance(element, (str, bytes, bytearray)):
                    weight += len(element)
                elif isinstance(element, np.ndarray):
                    weight += element.nbytes
                continue
            if child is node:
                raise Refused("a container that contains itself")
            child.sealed = True
            depth = max(depth, child.depth + 1)
            weight += child.weight
        if depth > MAX_DEPTH:
            raise Refused(f"objects nested more than {MAX_DEPTH} deep")
        if weight > self.budget:
            raise Refused(f"an object that expands to more than {self._budget_text()} through repeated "
                          f"references, from a {self.file_size}-byte file")
        node.depth, node.weight = depth, weight

    def _budget_text(self) -> str:
        return f"{self.budget / 2**20:.0f} MiB"


def file_size_of(handle: Any) -> int:
    """The size of an open file, or of a BytesIO."""
    try:
        return os.fstat(handle.fileno()).st_size
    except (AttributeError, OSError, ValueError):
        return len(handle.getbuffer())


class LimitedUnpickler(pickle._Unpickler):
    """Python's pure-Python unpickler with the limits of the module's table. Subclasses decide which names resolve."""

    dispatch = dict(pickle._Unpickler.dispatch)

    def __init__(self, file, **kwargs):
        super().__init__(file, **kwargs)
        self.ledger = Ledger(file_size_of(file))
        read, ledger = self._file_read, self.ledger

        def read_at_most_the_file(n: int = -1) -> bytes:   # no reference to self: no cycle keeping the memo alive
            ledger.check_length(n)
            return read(n)
        self._file_read = read_at_most_the_file

    def load(self) -> Any:
        try:
            return super().load()
        finally:
            self.ledger.nodes.clear()   # the objects it kept alive belong to the result (or to nothing) now

    def _register(opcode: bytes, table: dict = dispatch):
        def add(method):
            table[opcode[0]] = method
            return method
        return add

    # containers: each is tracked (depth, weight) and charged at its real size when made

    @_register(pickle.EMPTY_LIST)
    def _empty_list(self):
        self._push_new([], ())

    @_register(pickle.EMPTY_DICT)
    def _empty_dict(self):
        self._push_new({}, ())

    @_register(pickle.EMPTY_SET)
    def _empty_set(self):
        self._push_new(set(), ())

    @_register(pickle.MARK)
    def _mark(self):
        self.ledger.add_overhead(sys.getsizeof([]))
        pickle._Unpickler.load_mark(self)

    @_register(pickle.LIST)
    def _list(self):
        items = self.pop_mark()
        self._push_new(items, items)

    @_register(pickle.TUPLE)
    def _tuple(self):
        items = self.pop_mark()
        self._push_new(tuple(items), items)

    @_register(pickle.TUPLE1)
    def _tuple1(self):
        self._tuple_of(1)

    @_register(pickle.TUPLE2)
    def _tuple2(self):
        self._tuple_of(2)

    @_register(pickle.TUPLE3)
    def _tuple3(self):
        self._tuple_of(3)

    def _tuple_of(self, count: int):
        if len(self.stack) < count:
            raise Refused("a tuple of more items than the stack holds")
        items = self.stack[-count:]
        del self.stack[-count:]
        self._push_new(tuple(items), items)

    @_register(pickle.DICT)
    def _dict(self):
        items = self.pop_mark()
        keys = items[0::2]
        for key in keys:
            check_plain_key(key, "dict key")
        result = dict(zip(keys, items[1::2]))
        self._push_new(result, items)

    @_register(pickle.FROZENSET)
    def _frozenset(self):
        items = self.pop_mark()
        for item in items:
            check_plain_key(item, "set member")
        self._push_new(frozenset(items), items)

    def _push_new(self, obj: Any, elements: Any) -> None:
        self.ledger.new(obj, elements, sys.getsizeof(obj))
        self.append(obj)

    # growing a container: the target must be a fresh container of the right kind; keys are checked before hashing

    @_register(pickle.APPEND)
    def _append(self):
        value = self.stack.pop()
        self._extend([value])

    @_register(pickle.APPENDS)
    def _appends(self):
        self._extend(self.pop_mark())

    def _extend(self, items: list) -> None:
        target = self._top("APPEND")
        if type(target) is not list:
            raise Refused(f"APPEND to a {type(target).__name__}")
        self.ledger.grow(target, items)
        target.extend(items)

    @_register(pickle.SETITEM)
    def _setitem(self):
        value = self.stack.pop()
        key = self.stack.pop()
        self._set_items([key, value])

    @_register(pickle.SETITEMS)
    def _setitems(self):
        self._set_items(self.pop_mark())

    def _set_items(self, items: list) -> None:
        target = self._top("SETITEM")
        if not isinstance(target, dict) or len(items) % 2:
            raise Refused(f"SETITEMS on a {type(target).__name__} or with a key but no value")
        for key in items[0::2]:
            check_plain_key(key, "dict key")
        self.ledger.grow(target, items, slot_bytes=2 * SLOT)   # a dict entry also stores the key's hash
        for index in range(0, len(items), 2):
            target[items[index]] = items[index + 1]

    @_register(pickle.ADDITEMS)
    def _additems(self):
        items = self.pop_mark()
        target = self._top("ADDITEMS")
        if type(target) is not set:
            raise Refused(f"ADDITEMS on a {type(target).__name__}")
        for item in items:
            check_plain_key(item, "set member")
        self.ledger.grow(target, items, slot_bytes=2 * SLOT)
        target.update(items)

    def _top(self, opcode: str) -> Any:
        if not self.stack:
            raise Refused(f"{opcode} with nothing to add to")
        return self.stack[-1]

    # objects made by calls: REDUCE's result is tracked like a container of its arguments; BUILD adds its state

    @_register(pickle.REDUCE)
    def _reduce(self):
        args = self.stack[-1]
        if type(args) is not tuple:
            raise Refused("REDUCE with arguments that are not a tuple")
        pickle._Unpickler.load_reduce(self)
        result = self.stack[-1]
        if id(result) not in self.ledger.nodes:   # a function may hand back an object the file already has
            self.ledger.new(result, (args,), sys.getsizeof(result))

    def _build_tracked(self) -> None:
        """BUILD on an object already checked to accept state (see safe_pickle): state is an element of it, and
        the data numpy copies out of it is charged."""
        state, target = self.stack[-1], self.stack[-2]
        self.ledger.grow(target, [state])
        pickle._Unpickler.load_build(self)
        if isinstance(target, np.ndarray) and target.flags.owndata:   # bytes are referenced, str and lists copied
            self.ledger.allocate(target.nbytes)

    @_register(pickle.BYTEARRAY8)
    def _bytearray8(self):
        """Python's BYTEARRAY8 allocates the buffer before reading into it, so the length is checked first."""
        size, = struct.unpack("<Q", self.read(8))
        self.ledger.check_length(size)
        buffer = bytearray(size)
        self.readinto(buffer)
        self.append(buffer)

    # memo entries and numbers

    def _charge_memo(load):
        def charged(self):
            self.ledger.add_overhead(MEMO_ENTRY)
            load(self)
        return charged

    for _opcode, _load in ((pickle.MEMOIZE, pickle._Unpickler.load_memoize), (pickle.PUT, pickle._Unpickler.load_put),
                           (pickle.BINPUT, pickle._Unpickler.load_binput),
                           (pickle.LONG_BINPUT, pickle._Unpickler.load_long_binput)):
        dispatch[_opcode[0]] = _charge_memo(_load)

    def _bounded_int(load):
        def bounded(self):
            load(self)
            value = self.stack[-1]
            if type(value) is int and value.bit_length() > MAX_INT_BITS:
                raise Refused(f"an integer of {value.bit_length()} bits (at most {MAX_INT_BITS})")
        return bounded

    for _opcode, _load in ((pickle.INT, pickle._Unpickler.load_int), (pickle.LONG, pickle._Unpickler.load_long),
                           (pickle.LONG1, pickle._Unpickler.load_long1),
                           (pickle.LONG4, pickle._Unpickler.load_long4)):
        dispatch[_opcode[0]] = _bounded_int(_load)

    def _charge_new_value(load, has_payload: bool):
        """Text and bytes: their length is data, the rest of their size overhead; numbers are all overhead."""
        def charged(self):
            load(self)
            value, ledger = self.stack[-1], self.ledger
            size = sys.getsizeof(value)
            if has_payload:
                ledger.allocate(len(value))
                size -= len(value)
            ledger.add_overhead(size)
        return charged

    for _name in ("STRING", "BINSTRING", "SHORT_BINSTRING", "UNICODE", "BINUNICODE", "BINUNICODE8",
                  "SHORT_BINUNICODE", "BINBYTES", "BINBYTES8", "SHORT_BINBYTES", "BYTEARRAY8"):
        dispatch[getattr(pickle, _name)[0]] = _charge_new_value(dispatch[getattr(pickle, _name)[0]], True)
    for _name in ("BINFLOAT", "FLOAT", "BININT", "BININT2"):
        dispatch[getattr(pickle, _name)[0]] = _charge_new_value(dispatch[getattr(pickle, _name)[0]], False)

    # opcodes MMSA files never need (see the table)

    def _refuse(reason: str):
        def refuse(self):
            raise Refused(reason)
        return refuse

    for _name in ("NEWOBJ", "NEWOBJ_EX", "INST", "OBJ"):
        dispatch[getattr(pickle, _name)[0]] = _refuse(f"{_name}: objects built other than by REDUCE")
    for _name in ("EXT1", "EXT2", "EXT4"):
        dispatch[getattr(pickle, _name)[0]] = _refuse(f"{_name}: extension codes")
    for _name in ("NEXT_BUFFER", "READONLY_BUFFER"):
        dispatch[getattr(pickle, _name)[0]] = _refuse(f"{_name}: out-of-band buffers")

    @_register(pickle.STOP)
    def _stop(self):
        if len(self.stack) != 1 or self.metastack:
            left = len(self.stack) - 1 + sum(len(stack) + 1 for stack in self.metastack)
            raise Refused(f"{left} objects left over at the end (not a pickle as Python writes one)")
        pickle._Unpickler.load_stop(self)

    del _register, _charge_memo, _bounded_int, _charge_new_value, _refuse, _opcode, _load, _name
