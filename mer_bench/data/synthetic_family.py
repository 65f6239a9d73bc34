"""The synthetic family: members of the generator addressed by name, e.g. ``synthetic+text_conflict-0.3+time-salient``.

A member's name is ``synthetic`` followed by ``+KNOB-VALUE`` for every knob that differs from the default, in the
order of `KNOBS` and with each value written as `format_value` writes it. Only that spelling is accepted (any other
is refused with the canonical one in the message), so one member has one name, hence one run id and one results
folder; the name uses only the characters of a plain name (letters, digits, '.', '_', '+', '-'), which result files
and boards require. ``synthetic`` itself is the member with every default, byte for byte.

The knobs (docs/synthetic.md shows measurements of what they do):
- shape: ``like`` (a preset of `synthetic.SHAPES`: split sizes, padded lengths, feature sizes, label style),
  ``sizes``, ``lens``, ``dims`` (``AxBxC`` for train/valid/test or text/audio/vision), ``data_seed``;
- conflict: ``text_conflict``, ``audio_conflict``, ``vision_conflict``, the share of samples whose unimodal label
  has another polarity than the multimodal one (summing to at most 1);
- signal: ``text_strength``, ``audio_strength``, ``vision_strength``, multipliers of the planted amplitude;
- ``time`` (spread, salient, constant) and ``salient_frames``: how audio and vision carry the signal over frames;
- ``nonlinear``: the share of samples whose signal is sign-coded by a marker, readable only through an interaction.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from dataclasses import dataclass
from typing import Any

from mer_bench.data.synthetic import (MAX_SPLIT_SAMPLES, SEED_RANGE, SHAPES, TIME_MODES, Knobs, SyntheticShape,
                                      request_problem)
from mer_bench.errors import UserError

FAMILY = "synthetic"
MAX_NAME_LENGTH = 80        # result files and boards accept dataset names up to 80 characters
SYNTH_OPTIONS = {"like": "--like", "sizes": "--n", "data_seed": "--seed"}   # knobs `data synth` has options for
MAX_STRENGTH = 10.0         # beyond this every modality is trivially separable; a typo more likely than a need


@dataclass(frozen=True)
class Member:
    """One member of the family: shape knobs plus the generator's `Knobs`."""

    like: str = "synthetic"
    sizes: tuple[int, int, int] | None = None     # None: the preset's
    lens: tuple[int, int, int] | None = None
    dims: tuple[int, int, int] | None = None
    data_seed: int = 0
    knobs: Knobs = Knobs()

    @property
    def shape(self) -> SyntheticShape:
        preset = SHAPES[self.like]
        return dataclasses.replace(preset, sizes=self.sizes or preset.sizes, seq_lens=self.lens or preset.seq_lens,
                                   feature_dims=self.dims or preset.feature_dims)

    def settings(self) -> dict[str, Any]:
        """Every knob with its value (defaults included), in the order names write them."""
        own = {"like": self.like, "sizes": self.sizes, "lens": self.lens, "dims": self.dims,
               "data_seed": self.data_seed}
        return {**own, **dataclasses.asdict(self.knobs)}

    def record(self) -> dict[str, Any]:
        """What result files store as dataset.generator: the family and every knob, sizes resolved."""
        shape = self.shape
        knobs = {**self.settings(), "sizes": list(shape.sizes), "lens": list(shape.seq_lens),
                 "dims": list(shape.feature_dims)}
        return {"family": FAMILY, "knobs": knobs}

    @property
    def name(self) -> str:
        defaults = Member().settings()
        parts = [f"{key}-{format_value(value)}" for key, value in self.settings().items() if value != defaults[key]]
        return "+".join([FAMILY, *parts])

    @property
    def title(self) -> str:
        changed = self.name.split("+")[1:]
        return "Synthetic" + (f" ({', '.join(part.replace('-', ' ', 1) for part in changed)})" if changed else "")


KNOBS = tuple(Member().settings())


def format_value(value: Any) -> str:
    if isinstance(value, tuple):
        return "x".join(map(str, value))
    if isinstance(value, float):
        return format(value, "g")
    return str(value)


def parse(name: str) -> Member:
    """The member a name stands for; a `UserError` naming the knob for anything else."""
    parts = name.split("+")
    if parts[0] != FAMILY or len(parts) < 2:
        raise UserError(f"dataset '{name}': a synthetic member is written synthetic+KNOB-VALUE[+KNOB-VALUE...].")
    values: dict[str, Any] = {}
    for part in parts[1:]:
        key, dash, text = part.partition("-")
        if key not in KNOBS:
            raise _unknown_knob(f"dataset '{name}'", key, KNOBS)
        if not dash or not text:
            raise UserError(f"dataset '{name}': knob '{key}' needs a value, written {key}-VALUE.")
        if key in values:
            raise UserError(f"dataset '{name}': knob '{key}' is given twice.")
        values[key] = _parse_value(f"dataset '{name}'", key, text)
    member = _member(values)
    _check(name, member)
    if member.name != name:
        raise UserError(f"dataset '{name}': write this member as '{member.name}' (knobs in the order "
                        f"{', '.join(KNOBS)}; defaults left out; values as written there), so it has one name.")
    return member


def member_from_options(like: str, sizes: tuple[int, int, int] | None, seed: int, settings: tuple[str, ...]) -> Member:
    """`data synth`'s --like, --n and --seed with its --knob KNOB=VALUE settings as a member; a bad setting is a
    UserError naming it (the limits of --n and --seed are `request_problem`'s)."""
    values: dict[str, Any] = {}
    for setting in settings:
        key, equals, text = setting.partition("=")
        if key in SYNTH_OPTIONS:
            raise UserError(f"--knob {setting}: set {key} with {SYNTH_OPTIONS[key]}.")
        if key not in KNOBS:
            raise _unknown_knob(f"--knob {setting}", key, [k for k in KNOBS if k not in SYNTH_OPTIONS])
        if not equals or not text:
            raise UserError(f"--knob {setting}: write --knob {key}=VALUE.")
        values[key] = _parse_value(f"--knob {setting}", key, text)
    preset = None if sizes is None or tuple(sizes) == SHAPES[like].sizes else tuple(sizes)   # one name per member
    member = _member({"like": like, "sizes": preset, "data_seed": seed, **values})
    if (problem := member_problem(member)) is not None:
        raise UserError(f"--knob: {problem}.")
    return member


def _unknown_knob(where: str, key: str, listed) -> UserError:
    """The error for a knob name that is none of KNOBS, with the closest one as a hint and `listed` as the choice."""
    close = difflib.get_close_matches(key, KNOBS, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return UserError(f"{where}: unknown knob '{key}'.{hint} Knobs: {', '.join(listed)}.")


def _member(values: dict[str, Any]) -> Member:
    own = {key: values.pop(key) for key in ("like", "sizes", "lens", "dims", "data_seed") if key in values}
    return Member(**own, knobs=Knobs(**values))


def _parse_value(where: str, key: str, text: str) -> Any:
    default = Member().settings()[key]
    try:
        if key in ("sizes", "lens", "dims"):
            value = tuple(int(item) for item in text.split("x"))
            if len(value) != 3:
                raise ValueError
            return value
        if isinstance(default, str):
            return text
        value = type(default)(text)
    except ValueError:
        kind = "three integers AxBxC" if key in ("sizes", "lens", "dims") else type(default).__name__
        raise UserError(f"{where}: knob '{key}' needs {kind}, got '{text}'.") from None
    if isinstance(value, float) and not math.isfinite(value):
        raise UserError(f"{where}: knob '{key}' must be finite, got '{text}'.")
    return value


def member_problem(member: Member) -> str | None:
    """Why this member cannot be generated, in one clause naming the knob, or None."""
    knobs = member.knobs
    problems = [
        (member.like not in SHAPES, f"like must be one of {', '.join(SHAPES)}"),
        (member.sizes is not None and not all(1 <= n <= MAX_SPLIT_SAMPLES for n in member.sizes),
         f"sizes must be 1..{MAX_SPLIT_SAMPLES:,} per split"),
        (member.lens is not None and not (member.lens[0] >= 4 and min(member.lens[1:]) >= 1),
         "lens must be at least 4 for text ([CLS], two words, [SEP]) and 1 for audio and vision"),
        (member.dims is not None and min(member.dims) < 1, "dims must be at least 1"),
        (not SEED_RANGE[0] <= member.data_seed <= SEED_RANGE[1], f"data_seed must be {SEED_RANGE[0]}..{SEED_RANGE[1]}"),
        (min(knobs.conflict_rates().values()) < 0 or sum(knobs.conflict_rates().values()) > 1 + 1e-9,
         "text_conflict, audio_conflict and vision_conflict must be at least 0 and sum to at most 1"),
        (not all(0 <= getattr(knobs, f"{m}_strength") <= MAX_STRENGTH for m in ("text", "audio", "vision")),
         f"text_strength, audio_strength and vision_strength must be 0..{MAX_STRENGTH:g}"),
        (knobs.time not in TIME_MODES, f"time must be one of {', '.join(TIME_MODES)}"),
        (knobs.salient_frames < 1, "salient_frames must be at least 1"),
        (not 0 <= knobs.nonlinear <= 1, "nonlinear must be 0..1"),
    ]
    return next((message for failed, message in problems if failed), None)


def _check(name: str, member: Member) -> None:
    problem = member_problem(member) or request_problem(member.shape, member.shape.sizes, member.data_seed, None)
    if problem:
        raise UserError(f"dataset '{name}': {problem}.")
    if len(member.name) > MAX_NAME_LENGTH:
        raise UserError(f"dataset '{name}': the name is longer than {MAX_NAME_LENGTH} characters, which result files "
                        "and boards refuse; write the data with `mer-bench data synth --knob ...` and run it with "
                        "--dataset synthetic --data-file.")
