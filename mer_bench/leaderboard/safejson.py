"""Parsing JSON files that may be hostile: bounded size, integer length, float range and nesting depth.

Python's `json` turns each of these into something other than a JSON error: an integer of more than 4300 digits
raises a plain ValueError, deep nesting a RecursionError, `1e400` becomes infinity and `NaN` is accepted. Every such
file becomes one `Rejected` error here, which the caller reports for that file alone.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

MAX_FILE_BYTES = 256 * 2**20   # the largest real result (MOSEI's test split with probabilities) is a few MB
MAX_INT_DIGITS = 30            # seeds, sizes, parameter counts; far below Python's 4300-digit parsing limit
MAX_DEPTH = 32                 # a result nests 5 levels (metrics/split/subset/track/metric); configs a few more


class Rejected(ValueError):
    """A file or field that failed a check; the message names the field (the caller adds the file)."""


def _no_constant(name: str) -> Any:
    raise Rejected(f"{name} is not a number (NaN and infinities are not allowed)")


def _bounded_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise Rejected(f"an integer of {len(text)} digits (at most {MAX_INT_DIGITS} allowed)")
    return int(text)


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Rejected(f"number {text[:30]} is out of the float range")
    return value


def nesting_depth(data: Any, limit: int = MAX_DEPTH) -> int:
    """Depth of nested lists and objects, counted without recursion; stops counting past `limit`."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if not isinstance(value, (dict, list)):
            continue
        deepest = max(deepest, depth)
        if deepest > limit:
            return deepest
        children = value.values() if isinstance(value, dict) else value
        stack.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return deepest


def parse_json(path: Path) -> Any:
    """The parsed contents of one file, or `Rejected` saying why it cannot be read safely."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise Rejected(f"larger than {MAX_FILE_BYTES // 2**20} MB")
        text = path.read_text(encoding="utf-8")
        data = json.loads(text, parse_int=_bounded_int, parse_float=_finite_float, parse_constant=_no_constant)
    except Rejected:
        raise
    except RecursionError:
        raise Rejected(f"nested deeper than {MAX_DEPTH} levels") from None
    except (OSError, UnicodeDecodeError, ValueError) as error:    # JSONDecodeError and int-length errors included
        raise Rejected(str(error)) from None
    if nesting_depth(data) > MAX_DEPTH:
        raise Rejected(f"nested deeper than {MAX_DEPTH} levels")
    return data


