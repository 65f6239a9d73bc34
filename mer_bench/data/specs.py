"""Dataset specifications: what a dataset is expected to look like and where its files live."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from mer_bench.data.split import MERData

Style = Literal["mosi", "sims"]
LABEL_RANGES: dict[str, tuple[float, float]] = {"mosi": (-3.0, 3.0), "sims": (-1.0, 1.0)}


@dataclass(frozen=True)
class DatasetSpec:
    """Everything the harness knows about a dataset before reading it."""

    name: str                                  # what users type: mosi, mosei, sims, sims-v2, synthetic, ...
    title: str                                 # human name, e.g. "CH-SIMS v2(s)"
    style: Style                               # label convention: MOSI-style [-3, 3] or SIMS-style [-1, 1]
    feature_dims: tuple[int, int, int]         # expected (text, audio, vision) feature sizes
    seq_lens: tuple[int, int, int]             # expected padded (text, audio, vision) lengths
    split_sizes: tuple[int, int, int] | None   # expected (train, valid, test) sizes, None when unknown
    has_unimodal_labels: bool                  # whether files carry regression_labels_T/A/V
    text_model: str                            # BERT for text mode "bert": a Hugging Face name (the one that made
                                               # the text features), or bert.RANDOM_SMALL_BERT for generated data
    relative_paths: tuple[str, ...] = ()       # where the file may sit inside a data folder, first match wins
    sha256: str | None = None                  # published checksum of the standard file, if any
    source_hint: str = ""                      # where users get the file, shown when it is missing
    synthetic: bool = False                    # generated data: results are labelled synthetic everywhere
    aligned: bool = False                      # word-aligned files (one step per word in every modality, no lengths)
    generate: Callable[[], MERData] | None = None  # builds the data in memory instead of reading a file
    # generated data: {"family": ..., "knobs": {...every knob...}}, recorded in result files (not compared or hashed)
    generator: dict[str, Any] | None = field(default=None, compare=False, hash=False)

    @property
    def label_range(self) -> tuple[float, float]:
        return LABEL_RANGES[self.style]

    @property
    def language(self) -> str:
        return "zh" if "chinese" in self.text_model else "en"
