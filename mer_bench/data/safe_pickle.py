"""A restricted unpickler for MMSA feature files, which come from file-sharing links and may be hostile.

A pickle runs code while it loads: it names callables (``module.name``) and calls them with arguments it supplies.
This unpickler resolves names from a fixed table and never imports or looks anything up by the name a file gives,
so a file cannot reach ``os``, ``subprocess``, ``eval`` or any other callable. Every entry of the table is either a
harmless builtin container or one of our own wrappers around numpy's array and scalar rebuilders.

The wrappers exist because numpy's own rebuilders trust their input: ``ndarray.__setstate__`` with an object dtype and
a list shorter than the shape reads past the list (a segmentation fault, found by this project's fuzz test), and
``numpy.ndarray(shape, object, buffer)`` turns arbitrary bytes into object pointers. So:
- ``numpy.ndarray`` resolves to a token that is only accepted as the class argument of ``_reconstruct``;
- ``numpy.dtype`` resolves to a recipe, turned into a real dtype only for plain type codes (no structured dtypes, no
  dtype ``__setstate__`` on attacker input);
- arrays are rebuilt as `_CheckedArray`, whose ``__setstate__`` checks the dtype, the shape and the size of the data
  before numpy sees them, then handed back as plain ndarrays;
- ``set``, ``frozenset`` and ``OrderedDict`` resolve to wrappers that check their members or keys are plain before
  anything is hashed.

How much a file may build (nesting depth, size against the file's size, key types, opcodes refused) is limited by
pickle_limits.py, whose docstring has the table.
"""

from __future__ import annotations

import _codecs
import collections
import math
import pickle
import re
from typing import Any

import numpy as np

from mer_bench.data.pickle_limits import LimitedUnpickler, Refused, check_plain_key

# Plain type codes as numpy pickles them: bool, integers, floats, complex, objects (ids, text), fixed-width strings.
_TYPE_CODE = re.compile(r"b1|[iu][1248]|f(2|4|8|16)|c(8|16|32)|O[48]?|[US][0-9]{1,6}")
_BYTE_ORDERS = ("<", ">", "|", "=")
_NDARRAY = object()            # what the name numpy.ndarray resolves to: a token, not something callable


def _numpy_internal(name: str, modules: tuple[str, ...]) -> Any:
    """A numpy internal from whichever module this numpy version keeps it in (numpy 2 renamed core to _core)."""
    for module in modules:
        try:
            return getattr(__import__(module, fromlist=[name]), name)
        except (ImportError, AttributeError):
            continue
    raise ImportError(f"numpy has no {name}")


_numpy_reconstruct = _numpy_internal("_reconstruct", ("numpy._core.multiarray", "numpy.core.multiarray"))
_numpy_scalar = _numpy_internal("scalar", ("numpy._core.multiarray", "numpy.core.multiarray"))
_numpy_frombuffer = _numpy_internal("_frombuffer", ("numpy._core.numeric", "numpy.core.numeric"))


class _DTypeRecipe:
    """``numpy.dtype(code, align, copy)`` plus its pickled state, kept as data until a plain code is confirmed."""

    def __init__(self, code: Any = None, align: Any = False, copy: Any = True):
        self.code, self.byte_order = code, "="

    def __setstate__(self, state: Any) -> None:
        # (version, byte order, subarray, names, fields, ...): only plain dtypes, so no subarray, names or fields
        if not (isinstance(state, tuple) and len(state) >= 5 and state[1] in _BYTE_ORDERS
                and state[2:5] == (None, None, None)):
            raise Refused("a structured or malformed dtype")
        self.byte_order = state[1]

    def build(self) -> np.dtype:
        if not isinstance(self.code, str) or not _TYPE_CODE.fullmatch(self.code):
            raise Refused(f"dtype {self.code!r} (only plain type codes are accepted)")
        dtype = np.dtype(self.code)
        return dtype.newbyteorder(self.byte_order) if self.byte_order in "<>" else dtype


def _dtype_of(recipe: Any) -> np.dtype:
    if not isinstance(recipe, _DTypeRecipe):
        raise Refused("expected a dtype")
    return recipe.build()


class _CheckedArray(np.ndarray):
    """An ndarray whose unpickling state is checked before numpy's ``__setstate__`` trusts it."""

    def __setstate__(self, state: Any) -> None:
        if not isinstance(state, tuple) or len(state) not in (4, 5):
            raise Refused("malformed array state")
        shape, recipe, fortran, data = state[-4:]
        if not (isinstance(shape, tuple) and all(isinstance(size, int) and size >= 0 for size in shape)):
            raise Refused("malformed array shape")
        dtype, count = _dtype_of(recipe), math.prod(shape)
        if dtype.hasobject:
            if not (isinstance(data, list) and len(data) == count):
                raise Refused("object array data does not match its shape")
        elif not (isinstance(data, (bytes, bytearray, str)) and len(data) == count * dtype.itemsize):
            raise Refused("array data does not match its shape")
        super().__setstate__(state[:-4] + (shape, dtype, bool(fortran), data))


def _reconstruct(subtype: Any, shape: Any, typecode: Any) -> _CheckedArray:
    """numpy's ``_reconstruct(ndarray, (0,), b'b')``: an empty array that the following BUILD fills in."""
    if subtype is not _NDARRAY:
        raise Refused("an array of a class other than numpy.ndarray")
    return _numpy_reconstruct(_CheckedArray, (0,), b"b")


def _scalar(recipe: Any, data: Any = None) -> Any:
    dtype = _dtype_of(recipe)
    if dtype.hasobject or not isinstance(data, (bytes, str)):
        raise Refused("a malformed numpy scalar")
    return _numpy_scalar(dtype, data)


def _frombuffer(buffer: Any, recipe: Any, shape: Any, order: Any) -> np.ndarray:
    """Protocol 5 arrays: numpy's ``_frombuffer`` (which already refuses object dtypes), with a plain dtype."""
    dtype = _dtype_of(recipe)
    if dtype.hasobject:
        raise Refused("an object array from a raw buffer")
    # a view as _CheckedArray, so a later BUILD on it goes through the same checks
    return _numpy_frombuffer(buffer, dtype, shape, order).view(_CheckedArray)


def _latin1_encode(text: Any, encoding: Any = "latin1") -> bytes:
    """What protocol 0-2 pickles call (``_codecs.encode``) to rebuild bytes; only the latin-1 round trip."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise Refused(f"_codecs.encode with encoding {encoding!r}")
    return _codecs.encode(text, "latin1")


def _checked_set(items: Any = ()) -> set:
    """``set(items)`` as protocol 0-3 pickles rebuild sets, members checked before they are hashed."""
    return set(_plain_members(items))


def _checked_frozenset(items: Any = ()) -> frozenset:
    return frozenset(_plain_members(items))


def _plain_members(items: Any) -> list:
    if not isinstance(items, (list, tuple)):
        raise Refused(f"a set built from a {type(items).__name__}")
    for item in items:
        check_plain_key(item, "set member")
    return list(items)


def _checked_ordered_dict(items: Any = ()) -> collections.OrderedDict:
    """``OrderedDict(pairs)``; pickles usually call it empty and add items with SETITEMS (checked there)."""
    if not isinstance(items, (list, tuple)) or not all(isinstance(pair, tuple) and len(pair) == 2 for pair in items):
        raise Refused("an OrderedDict built from something other than (key, value) pairs")
    for key, _ in items:
        check_plain_key(key, "dict key")
    return collections.OrderedDict(items)


def _allowed() -> dict[tuple[str, str], Any]:
    """(module, name) as a pickle spells it -> what it gets. Python 2 era and numpy 1 spellings included."""
    table: dict[tuple[str, str], Any] = {("numpy", "ndarray"): _NDARRAY, ("numpy", "dtype"): _DTypeRecipe,
                                         ("collections", "OrderedDict"): _checked_ordered_dict,
                                         ("_codecs", "encode"): _latin1_encode}
    for core in ("numpy.core", "numpy._core"):
        table[(f"{core}.multiarray", "_reconstruct")] = _reconstruct
        table[(f"{core}.multiarray", "scalar")] = _scalar
        table[(f"{core}.numeric", "_frombuffer")] = _frombuffer
    for builtins in ("builtins", "__builtin__"):
        table[(builtins, "set")] = _checked_set
        table[(builtins, "frozenset")] = _checked_frozenset
    return table


ALLOWED = _allowed()


class RestrictedUnpickler(LimitedUnpickler):
    """Python's own unpickler (the pure-Python one), restricted in names here and in amounts by `LimitedUnpickler`.

    The pure-Python implementation is used on purpose: its memo is a dict, while the C unpickler grows an array to
    the largest memo index a file names, so a 5-byte opcode can demand gigabytes; and its loop runs Python bytecode,
    so signal handlers run during a long read. MMSA files hold few, large objects, so the per-opcode cost does not
    matter. Memory stays proportional to the file's size.
    """

    dispatch = dict(LimitedUnpickler.dispatch)

    def __init__(self, file):
        super().__init__(file, encoding="latin1")   # latin1: Python 2 era numpy pickles store array bytes as str

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise Refused(f"the pickle asks for '{module}.{name}', which an MMSA feature file never contains "
                          "(a pickle can run code when loaded)") from None

    def persistent_load(self, pid: Any) -> Any:
        raise Refused("external objects (persistent ids)")

    def _load_checked_build(self) -> None:
        """BUILD sets an object's state. Only arrays and dtypes have state in these files; on anything else (our
        wrapper functions, builtin classes) it could set attributes that outlive this file, so it is refused."""
        if len(self.stack) < 2 or not isinstance(self.stack[-2], (_CheckedArray, _DTypeRecipe)):
            raise Refused("state for an object that is not an array or a dtype")
        self._build_tracked()

    dispatch[pickle.BUILD[0]] = _load_checked_build


def plain_arrays(raw: Any) -> Any:
    """The file's dict with every `_CheckedArray` in a split's columns (or in a column that is a list) as a plain
    ndarray view, no copy. Only these two levels are visited: MMSA files nest no deeper, and a walk over whatever
    a hostile file nests could take exponential time over shared references."""
    if not isinstance(raw, dict):
        return raw
    return {key: {name: _plain(value) for name, value in split.items()} if isinstance(split, dict) else split
            for key, split in raw.items()}


def _plain(value: Any) -> Any:
    if isinstance(value, _CheckedArray):
        return value.view(np.ndarray)
    if isinstance(value, list):
        return [item.view(np.ndarray) if isinstance(item, _CheckedArray) else item for item in value]
    return value
