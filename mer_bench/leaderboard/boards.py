"""Result files -> boards (one per dataset file) -> groups (one per model setting), each group holding its seeds.

A board is a dataset *file*: results whose dataset checksums differ are never averaged together, even when the
dataset name is the same; each checksum gets its own board, labelled with its checksum. A group is one row of a
table: the runs of one *effective* configuration (model, resolved config, text mode, epoch budget) over seeds, so a
run with default settings and a run whose explicit settings equal the defaults are one row, not two. Within a group
each seed counts once; other runs of the same configuration and seed (another spelling of the same settings) are
kept as `alternates`, so a selection that names them still finds its row.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from mer_bench.metrics import TRACKS
from mer_bench.results import RunResult

if TYPE_CHECKING:   # selections imports this module
    from mer_bench.leaderboard.selections import Tuned

TRACK_OUTPUTS = {"regression": "score", "classification": "probs"}
TRACK_ORDER = TRACKS   # display order of the track tables
SUBSET_ORDER = ("consistent", "inconsistent", "text-conflict")   # as mer_bench.data.subsets builds them


def subset_rank(name: str) -> tuple[int, str]:
    """Sort key of a test subset: the standard ones first in their usual order, then any other by name."""
    return (SUBSET_ORDER.index(name) if name in SUBSET_ORDER else 99, name)


def newest_run(runs: Iterable[RunResult]) -> RunResult:
    """The run created last (the run id breaks ties, so the choice does not depend on reading order)."""
    return max(runs, key=lambda run: (run.created, run.run_id))


def short_hash(text: str, length: int = 8) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:length]


def safe_slug(text: str) -> str:
    """A file-name-safe form of `text`; a hash of the original is appended when anything had to change, so two
    different names never share a page."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-.")[:60] or "x"
    return slug if slug == text else f"{slug}-{short_hash(text)}"


@dataclass(frozen=True, order=True)
class GroupKey:
    """What makes runs comparable seeds of one another (everything in the RunSpec but the seed and dataset)."""

    model: str
    overrides: str           # canonical JSON of the overrides, sorted keys
    text_mode: str
    epochs: int | None
    # The word alignment the model saw (result.dataset["alignment"]: "native", "segment-mean", or None for unaligned
    # input and files written before it was recorded): rows of aligned input are their own rows, marked as such.
    # Left out of repr so the page names of unaligned rows stay as they were (make_groups names aligned ones).
    alignment: str | None = field(default=None, repr=False)

    @classmethod
    def of(cls, result: RunResult) -> GroupKey:
        spec = result.spec.to_dict()
        return cls(spec["model"], json.dumps(spec["overrides"], sort_keys=True), spec["text_mode"], spec["epochs"],
                   alignment_of(result))

    @property
    def is_default(self) -> bool:
        return self.overrides == "{}" and self.text_mode == "features" and self.epochs is None

    def sort_key(self) -> tuple:
        """The model's own settings first, then overrides, text mode and epoch budget."""
        return (self.model, self.overrides != "{}", self.overrides, self.text_mode,
                -1 if self.epochs is None else self.epochs)

    def settings_text(self) -> str:
        """`defaults` or `key=value, ...`, then the text mode and epoch budget when they are not the defaults."""
        overrides = json.loads(self.overrides)
        parts = [", ".join(f"{k}={_compact(v)}" for k, v in overrides.items()) or "defaults"]
        if self.text_mode != "features":
            parts.append(f"text: {self.text_mode}")
        if self.epochs is not None:
            parts.append(f"{self.epochs} epoch{'' if self.epochs == 1 else 's'}")
        if self.alignment is not None:
            parts.append(alignment_text(self.alignment))
        return "; ".join(parts)


def alignment_of(result: RunResult) -> str | None:
    return result.dataset.get("alignment")


def alignment_text(alignment: str) -> str:
    """How a row's alignment is shown: aligned files as they are, or unaligned ones aligned by the harness."""
    return "aligned data" if alignment == "native" else f"aligned input ({alignment})"


def _compact(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value)


@dataclass
class Group:
    key: GroupKey
    slug: str
    runs: list[RunResult]     # sorted by seed, one per seed
    tuned: list[Tuned] = field(default_factory=list)   # selections that chose this group on validation, if any
    alternates: list[RunResult] = field(default_factory=list)   # same configuration and seed as a run above

    @property
    def run_ids(self) -> set[str]:
        """Every run id of the row's configuration, alternates included (how selections find their row)."""
        return {run.run_id for run in (*self.runs, *self.alternates)}

    @property
    def seeds(self) -> list[int]:
        return [run.spec.seed for run in self.runs]

    @property
    def page(self) -> str:
        """The group's model page, relative to its board's folder."""
        return f"models/{self.slug}.html"

    def runs_with(self, track: str) -> list[RunResult]:
        return [run for run in self.runs if track in run.metrics["test"].get("all", {})]


@dataclass
class Board:
    dataset: str              # dataset name as registered (e.g. "sims")
    sha256: str               # checksum of the dataset file the runs used
    slug: str                 # folder name of the board in the site
    record: dict[str, Any]    # the dataset record of the newest run (title, style, synthetic, sizes, subsets)
    groups: list[Group]
    siblings: list[str] = field(default_factory=list)   # slugs of boards of the same dataset name, other files
    hidden_candidates: int = 0   # rows of candidates a selection did not choose, left out (unless --all-candidates)

    @property
    def title(self) -> str:
        """The dataset's title; a synthetic dataset whose title does not already say so gets "(synthetic data)"."""
        title = str(self.record.get("title") or self.dataset)
        return f"{title} (synthetic data)" if self.synthetic and "synthetic" not in title.lower() else title

    @property
    def synthetic(self) -> bool:
        return bool(self.record.get("synthetic"))

    @property
    def style(self) -> str:
        return str(self.record["style"])

    @property
    def subsets(self) -> list[str]:
        """Test subsets of the dataset, the standard ones first in their usual order."""
        return sorted((self.record.get("subsets") or {}).keys(), key=subset_rank)

    @property
    def runs(self) -> list[RunResult]:
        return [run for group in self.groups for run in group.runs]

    @property
    def last_update(self) -> str:
        return max(run.created for run in self.runs)

    def tracks(self) -> list[str]:
        return [track for track in TRACK_ORDER if any(group.runs_with(track) for group in self.groups)]


def deduplicate(results: Iterable[RunResult]) -> tuple[list[RunResult], int]:
    """One result per (dataset checksum, run id): the newest `created` wins, the first read among equals."""
    kept: dict[tuple[str, str], RunResult] = {}
    duplicates = 0
    for result in results:
        key = (result.dataset["sha256"], result.run_id)
        if key in kept:
            duplicates += 1
            if result.created <= kept[key].created:
                continue
        kept[key] = result
    return list(kept.values()), duplicates


def make_boards(results: Iterable[RunResult]) -> list[Board]:
    """Boards sorted by dataset name and checksum, groups sorted by their key, runs by seed: a stable order."""
    by_file: dict[tuple[str, str], list[RunResult]] = {}
    for result in results:
        by_file.setdefault((result.spec.dataset, result.dataset["sha256"]), []).append(result)
    names = [name for name, _ in by_file]
    boards = []
    for (name, sha256), runs in sorted(by_file.items()):
        slug = safe_slug(name) if names.count(name) == 1 else f"{safe_slug(name)}-{safe_slug(sha256[:8])}"
        boards.append(Board(name, sha256, slug, newest_run(runs).dataset, make_groups(runs)))
    for board in boards:
        board.siblings = [other.slug for other in boards if other.dataset == board.dataset and other is not board]
    return boards


def config_key(result: RunResult) -> tuple[str, str, str, int | None, str | None]:
    """What a run actually ran: model, resolved configuration (canonical JSON), text mode, epoch budget and the
    alignment of its input. A result that recorded no configuration falls back to its overrides."""
    spec = result.spec.to_dict()
    config = result.model.get("config")
    settled = json.dumps(config if isinstance(config, dict) else {"overrides": spec["overrides"]}, sort_keys=True)
    return spec["model"], settled, spec["text_mode"], spec["epochs"], alignment_of(result)


def display_key(runs: list[RunResult]) -> GroupKey:
    """The settings a row is shown with: the plainest spelling among its runs (fewest overrides, then the canonical
    text), so a row that holds a default-settings run reads "defaults"."""
    keys = {GroupKey.of(run) for run in runs}
    return min(keys, key=lambda key: (len(json.loads(key.overrides)), key.sort_key()))


def one_per_seed(runs: list[RunResult]) -> tuple[list[RunResult], list[RunResult]]:
    """(the newest run of each seed, sorted by seed; the other runs of those seeds)."""
    by_seed: dict[int, list[RunResult]] = {}
    for run in runs:
        by_seed.setdefault(run.spec.seed, []).append(run)
    kept = [newest_run(by_seed[seed]) for seed in sorted(by_seed)]
    chosen = {id(run) for run in kept}
    return kept, sorted((run for run in runs if id(run) not in chosen), key=lambda run: (run.spec.seed, run.run_id))


def make_groups(runs: Iterable[RunResult]) -> list[Group]:
    by_config: dict[tuple, list[RunResult]] = {}
    for run in runs:
        by_config.setdefault(config_key(run), []).append(run)
    groups = []
    shown = [display_key(members) for members in by_config.values()]
    for (config, members), key in zip(by_config.items(), shown):
        slug = safe_slug(key.model) if key.is_default else f"{safe_slug(key.model)}-{short_hash(repr(key))}"
        if shown.count(key) > 1:     # one spelling, two configurations (plugin versions whose defaults differ)
            slug = f"{safe_slug(key.model)}-{short_hash(repr(config))}"
        if key.alignment is not None:
            slug = f"{slug}-{safe_slug(key.alignment)}"
        kept, alternates = one_per_seed(members)
        groups.append(Group(key, slug, kept, alternates=alternates))
    return sorted(groups, key=lambda group: (group.key.sort_key(), group.slug))
