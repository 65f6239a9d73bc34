"""Model settings: ``--set key=value`` text to typed values, and the checks every model config passes before a run.

A setting is checked against its field's type (a tuple setting needs its number of values; no NaN or infinity in a
float) and against its bounds. Bounds come, first match wins, from

1. the field's metadata: ``field(default=1.0, metadata=bounds(low=0, low_inclusive=False))``;
2. the conventions of its name (`NAMED_BOUNDS`): a dropout is in [0, 1), a learning rate or temperature above 0,
   a weight decay at least 0, sizes, layers, heads, epochs and patience at least 1, a training batch at least 2;

so every model, built in or third-party, gets the same checks without code of its own. Rules that relate two
settings (heads must divide a width) belong to the model's `check_config`. Every problem is a `UserError` naming the
model and the setting, so the command line prints one line and exits with status 2.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mer_bench.errors import UserError, unknown_name


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric setting (of each value, for a tuple setting); None: unbounded on that side."""

    low: float | None = None
    high: float | None = None
    low_inclusive: bool = True
    high_inclusive: bool = True

    def admits(self, value: float) -> bool:
        if self.low is not None and (value < self.low or (value == self.low and not self.low_inclusive)):
            return False
        return self.high is None or value < self.high or (value == self.high and self.high_inclusive)

    def __str__(self) -> str:
        low = None if self.low is None else f"{'at least' if self.low_inclusive else 'above'} {self.low:g}"
        high = None if self.high is None else f"{'at most' if self.high_inclusive else 'below'} {self.high:g}"
        return " and ".join(part for part in (low, high) if part) or "any finite number"


def bounds(**limits: Any) -> dict[str, Bounds]:
    """Field metadata declaring a setting's bounds: ``field(default=..., metadata=bounds(low=0, high=1))``."""
    return {"bounds": Bounds(**limits)}


AT_LEAST_ONE = Bounds(low=1)
POSITIVE = Bounds(low=0, low_inclusive=False)
NON_NEGATIVE = Bounds(low=0)

# (pattern searched in the setting's name, bounds); the first matching pattern applies.
NAMED_BOUNDS: tuple[tuple[str, Bounds], ...] = (
    (r"dropout", Bounds(low=0, high=1, high_inclusive=False)),       # a dropout of 1 zeroes every activation
    (r"(^|_)(lr|learning_rate)($|_)", POSITIVE),
    (r"temperature", POSITIVE),                                       # divides logits
    (r"momentum", Bounds(low=0, high=1)),
    (r"weight_decay|(^|_)(gamma|weight|eps)$", NON_NEGATIVE),
    (r"(^|_)clip$", POSITIVE),                                        # a clip of 0 zeroes every gradient
    (r"^batch_size$", Bounds(low=2)),                                 # batch norm cannot train on one sample
    (r"(dim|dims|size|sizes|layers|heads|nlevels|rank|out|epochs|patience|accumulation|top_k)$", AT_LEAST_ONE),
)


def setting_bounds(field: dataclasses.Field) -> Bounds | None:
    """The bounds of a config field: declared in its metadata, else by the conventions of its name, else None."""
    if "bounds" in field.metadata:
        return field.metadata["bounds"]
    for pattern, found in NAMED_BOUNDS:
        if re.search(pattern, field.name):
            return found
    return None


def parse_overrides(model_class: Any, raw: Mapping[str, Any]) -> dict[str, Any]:
    """Turn ``--set key=value`` strings into typed values, each checked against its field (name, type, bounds)."""
    fields = {f.name: f for f in dataclasses.fields(model_class.Config)}
    hints = typing.get_type_hints(model_class.Config)
    parsed = {}
    for key, text in raw.items():
        if key not in fields:
            raise unknown_name(f"setting for model '{model_class.name}'", key, fields)
        value = _parse_value(key, text, hints[key])
        check_setting(model_class.name, fields[key], hints[key], value)
        parsed[key] = value
    return parsed


def validate_config(model_class: Any, config: Any) -> None:
    """Check every field of `config` (presets and overrides alike), then the model's own cross-setting rules."""
    hints = typing.get_type_hints(type(config))
    for field in dataclasses.fields(config):
        check_setting(model_class.name, field, hints[field.name], getattr(config, field.name))
    model_class.check_config(config)


def check_setting(model: str, field: dataclasses.Field, hint: Any, value: Any) -> None:
    """Raise `UserError` if `value` does not fit the field's type or bounds."""
    problem = _type_problem(hint, value)
    if problem is None:
        problem = _bounds_problem(setting_bounds(field), value)
    if problem is not None:
        raise UserError(f"Setting '{field.name}' of model '{model}': {problem} (got {value!r}).")


def _type_problem(hint: Any, value: Any) -> str | None:
    target, optional = _unwrap_optional(hint)
    if value is None:
        return None if optional else "must be set (None is not allowed)"
    if typing.get_origin(target) is tuple:
        return _tuple_problem(typing.get_args(target), value)
    return _scalar_problem(target, value)


def _tuple_problem(item_types: tuple[Any, ...], value: Any) -> str | None:
    """tuple[int, int, int] needs exactly three ints; tuple[float, ...] one or more floats."""
    if not isinstance(value, (tuple, list)):
        return "needs comma-separated values (a,b,c), not a single value"
    variadic = len(item_types) == 2 and item_types[1] is Ellipsis
    if variadic and not value:
        return "needs at least one value"
    if not variadic and len(value) != len(item_types):
        return f"needs {len(item_types)} comma-separated values, not {len(value)}"
    for item, item_type in zip(value, item_types[:1] * len(value) if variadic else item_types):
        problem = _scalar_problem(item_type, item)
        if problem is not None:
            return f"each value {problem}"
    return None


def _scalar_problem(target: Any, value: Any) -> str | None:
    if target is bool:
        return None if isinstance(value, bool) else "must be true or false"
    if target is int:
        return None if isinstance(value, int) and not isinstance(value, bool) else "must be a whole number"
    if target is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return "must be a number"
        return None if math.isfinite(value) else "must be a finite number (not NaN or infinity)"
    if target is str:
        return None if isinstance(value, str) else "must be text"
    return None     # other annotations: the model's own check_config decides


def _bounds_problem(limits: Bounds | None, value: Any) -> str | None:
    if limits is None or value is None:
        return None
    values = value if isinstance(value, (tuple, list)) else (value,)
    numbers = [item for item in values if isinstance(item, (int, float)) and not isinstance(item, bool)]
    if all(limits.admits(item) for item in numbers):
        return None
    return f"{'each value ' if values is value else ''}must be {limits}"


def _parse_value(key: str, text: Any, hint: Any) -> Any:
    if not isinstance(text, str):
        return text
    target, optional = _unwrap_optional(hint)
    if optional and text.lower() in ("none", "null"):
        return None
    try:
        if target is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(text)
            return text.lower() in ("true", "1", "yes")
        if target in (int, float, str):
            return target(text)
        if typing.get_origin(target) is tuple:
            item_type = typing.get_args(target)[0]
            return tuple(item_type(part) for part in text.split(",") if part)
    except ValueError:
        raise UserError(f"Setting '{key}': cannot read '{text}' as {getattr(target, '__name__', target)}.") from None
    return text


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    """(the type inside `X | None`, whether None is allowed); other hints come back unchanged."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        inner = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return (inner[0] if len(inner) == 1 else str), len(inner) < len(typing.get_args(hint))
    return hint, False
