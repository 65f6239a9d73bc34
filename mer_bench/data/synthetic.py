"""A deterministic synthetic dataset in the MMSA layout, with unimodal labels and planted cross-modal conflict.

How the data is built (the "planted signal", which tests and docs rely on):
- Each sample has a consensus sentiment ``s`` in [-1, 1] (multiples of 0.2; 15 % neutral). The multimodal label is
  ``s`` (times 3 for MOSI-style shapes).
- Each modality's own label equals ``s`` except on planted conflicts, where it takes the opposite polarity (or neutral).
  At most one modality conflicts per sample, so the majority of the three always agrees with the multimodal label:
  text conflicts on 25 % of samples, audio on 10 %, vision on 10 %.
- Features carry each modality's own label: text through sentiment tokens (token ids for BERT mode, and their fixed
  embeddings plus noise as "BERT features"), audio and vision through a fixed direction scaled by the label, buried in
  Gaussian noise. Signal strength: text clean, audio medium, vision weak. So a text-only model beats an audio-only one,
  which beats a vision-only one; a text-dominated model fails on the text-conflict subset, where the other two
  modalities agree with the label and a consensus model can be right.

Those rates and strengths are the defaults of `Knobs`; other values (and how the signal sits in time, and how
nonlinearly it is coded) make the other members of the family, named and documented in
`mer_bench.data.synthetic_family` and docs/synthetic.md. Every random draw a non-default knob adds comes from its own
generator stream, so the default knobs give the registered `synthetic` byte for byte.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from mer_bench.data.align import segment_means, token_lengths

CLS_ID, SEP_ID = 101, 102
FILLER_IDS = (1000, 2000)     # neutral words
POSITIVE_IDS = (2000, 2050)   # positive sentiment words
NEGATIVE_IDS = (3000, 3050)   # negative sentiment words
VOCAB_SIZE = 3050             # every id generated is below this

CONFLICT_RATES = {"text": 0.25, "audio": 0.10, "vision": 0.10}
SIGNAL = {"audio": 0.35, "vision": 0.18}   # amplitude of the label direction per frame, noise std is 1
TEXT_NOISE = 0.3                           # std of the noise added to token embeddings
SENTIMENT_STEPS = np.round(np.arange(0.2, 1.01, 0.2), 1)
NEGATION_ID = 2500           # an id no other rule draws: the marker word of text whose sentiment words are flipped
MARKER_AMPLITUDE = 0.5       # per-frame amplitude of the audio/vision marker of coded samples (noise std is 1)
TIME_MODES = ("spread", "salient", "constant")
TEXT_CHUNK = 256             # samples per block of text features: bounds the float64 temporaries


@dataclass(frozen=True)
class Knobs:
    """What the generator plants; the defaults are the registered `synthetic` data. See docs/synthetic.md."""

    text_conflict: float = CONFLICT_RATES["text"]      # share of samples whose text label's polarity differs from s
    audio_conflict: float = CONFLICT_RATES["audio"]    # likewise audio; the three rates sum to at most 1, since at
    vision_conflict: float = CONFLICT_RATES["vision"]  # most one modality conflicts per sample
    text_strength: float = 1.0      # multiplies the sentiment-word offset of the token embeddings (1.5)
    audio_strength: float = 1.0     # multiplies the per-frame label amplitude of audio (0.35)
    vision_strength: float = 1.0    # multiplies the per-frame label amplitude of vision (0.18)
    time: str = "spread"            # audio/vision: every frame (spread), a few frames (salient), one frame repeated
    salient_frames: int = 3         # frames that carry the signal when time is "salient"
    nonlinear: float = 0.0          # share of samples per modality whose signal is sign-coded by a marker (XOR)

    def conflict_rates(self) -> dict[str, float]:
        return {"text": self.text_conflict, "audio": self.audio_conflict, "vision": self.vision_conflict}

    @property
    def coded(self) -> bool:
        """Whether audio/vision need the general signal path (time layout or nonlinear coding not the default)."""
        return self.time != "spread" or self.nonlinear > 0


@dataclass(frozen=True)
class SyntheticShape:
    """Array shapes and label style of one synthetic variant."""

    style: str                             # "sims" or "mosi"
    seq_lens: tuple[int, int, int]         # padded (text, audio, vision) lengths
    feature_dims: tuple[int, int, int]     # (text, audio, vision) feature sizes
    sizes: tuple[int, int, int]            # (train, valid, test) sample counts
    unimodal_labels: bool                  # whether the file carries regression_labels_T/A/V


SHAPES = {
    # Small by default so `mer-bench run cmc --dataset synthetic` takes minutes on two CPU cores.
    "synthetic": SyntheticShape("sims", (20, 40, 30), (768, 25, 35), (600, 200, 400), True),
    "sims-v2": SyntheticShape("sims", (50, 925, 232), (768, 25, 177), (2722, 647, 1034), True),
    "sims": SyntheticShape("sims", (39, 400, 55), (768, 33, 709), (1368, 456, 457), True),
    "mosi": SyntheticShape("mosi", (50, 375, 500), (768, 5, 20), (1284, 229, 686), False),
    "mosei": SyntheticShape("mosi", (50, 500, 500), (768, 74, 35), (16326, 1871, 4659), False),
}


# Limits of `mer-bench data synth`, checked before anything is generated (a request past them would end in a numpy
# traceback or the out-of-memory killer):
SEED_RANGE = (0, 2**32 - 1)          # the seeds `run` accepts, so a file and a run can share one
MAX_SPLIT_SAMPLES = 1_000_000        # per split; MOSEI, the largest real dataset, has 16,326 training samples
MAX_FILE_BYTES = 64 * 2**30          # 64 GiB; the MOSEI-shaped default is about 9 GiB
PEAK_MEMORY_FACTOR = 2               # generation holds each split's arrays plus their noise and pickling copies


def estimated_bytes(like: str | SyntheticShape, sizes: tuple[int, int, int]) -> int:
    """About how large the pickle of this request will be: the float32 arrays and token ids, per sample."""
    shape = SHAPES[like] if isinstance(like, str) else like
    (text_len, audio_len, vision_len), (text_dim, audio_dim, vision_dim) = shape.seq_lens, shape.feature_dims
    per_sample = 4 * (text_len * text_dim + audio_len * audio_dim + vision_len * vision_dim + 3 * text_len) + 100
    return per_sample * sum(sizes)


def request_problem(like: str | SyntheticShape, sizes: tuple[int, int, int], seed: int, available_memory: int | None) -> str | None:
    """Why this request cannot be generated (limits above, or this machine's free memory), or None."""
    low, high = SEED_RANGE
    if not low <= seed <= high:
        return f"--seed {seed} is out of range: seeds are integers from {low} to {high} (2**32-1)"
    if any(not 1 <= n <= MAX_SPLIT_SAMPLES for n in sizes):
        return f"--n {' '.join(map(str, sizes))}: each split size must be from 1 to {MAX_SPLIT_SAMPLES:,}"
    size = estimated_bytes(like, sizes)
    like = like if isinstance(like, str) else "(the member's shape)"
    if size > MAX_FILE_BYTES:
        return (f"--n {' '.join(map(str, sizes))} with --like {like} would make a file of about "
                f"{size / 2**30:.0f} GiB; the limit is {MAX_FILE_BYTES / 2**30:.0f} GiB")
    if available_memory is not None and PEAK_MEMORY_FACTOR * size > available_memory:
        return (f"--n {' '.join(map(str, sizes))} with --like {like} needs about "
                f"{PEAK_MEMORY_FACTOR * size / 2**30:.1f} GiB of memory to generate; {available_memory / 2**30:.1f} "
                "GiB is free")
    return None


def generate_raw(like: str | SyntheticShape = "synthetic", sizes: tuple[int, int, int] | None = None, seed: int = 0,
                 aligned: bool = False, knobs: Knobs = Knobs()) -> dict:
    """The dataset as MMSA pickles hold it: {"train": {...}, "valid": {...}, "test": {...}} of numpy arrays.

    `like`: a preset name of SHAPES or a shape of its own. `aligned`: the same samples word-aligned, in the layout of
    MMSA's `aligned_50.pkl` (see `aligned_columns`). `knobs`: which member of the family (defaults: `synthetic`)."""
    shape = SHAPES[like] if isinstance(like, str) else like
    sizes = sizes or shape.sizes
    rng = np.random.default_rng(seed)
    constants = _Constants.draw(rng, shape, knobs, np.random.default_rng([seed, 0, 1]))
    raw = {}
    for offset, (split, n) in enumerate(zip(("train", "valid", "test"), sizes)):
        split_rng = np.random.default_rng([seed, offset + 1])
        coding_rng = np.random.default_rng([seed, offset + 1, 1])   # every draw the knobs add: default bytes kept
        raw[split] = _generate_split(split_rng, shape, constants, n, split, _Coding(knobs, coding_rng))
        if aligned:
            raw[split] = aligned_columns(raw[split])
    return raw


def aligned_columns(columns: dict) -> dict:
    """One split's columns word-aligned as in MMSA's aligned files: audio and vision averaged onto the text tokens by
    the harness's own alignment (`mer_bench.data.align.segment_means`), every modality Lt steps long, zero after the
    tokens, and no `*_lengths` columns (aligned files carry none)."""
    frames = {key: torch.from_numpy(columns[key]) for key in ("audio", "vision")}
    lengths = {key: torch.from_numpy(columns[f"{key}_lengths"]).clamp(min=1) for key in frames}
    text_bert = torch.from_numpy(columns["text_bert"])                     # (N, 3, Lt)
    steps = token_lengths(text_bert, None)                                 # (N,) tokens
    aligned = {key: segment_means(frames[key], lengths[key], steps, text_bert.shape[-1]).numpy() for key in frames}
    return {**{k: v for k, v in columns.items() if not k.endswith("_lengths")}, **aligned}


@dataclass(frozen=True)
class _Constants:
    """What stays fixed across splits: the token embedding table, the label directions of audio and vision, and the
    marker directions of nonlinearly coded samples (drawn from their own stream, unused by the default knobs)."""

    embeddings: np.ndarray   # (VOCAB_SIZE, Dt) float32
    directions: dict         # modality -> (D,) unit vector
    markers: dict            # modality -> (D,) unit vector orthogonal to its label direction

    @staticmethod
    def draw(rng: np.random.Generator, shape: SyntheticShape, knobs: Knobs, marker_rng: np.random.Generator):
        text_dim, audio_dim, vision_dim = shape.feature_dims
        embeddings = rng.standard_normal((VOCAB_SIZE, text_dim), dtype=np.float32) / np.sqrt(text_dim)
        text_direction = _unit(rng.standard_normal(text_dim))
        offset = 1.5 * knobs.text_strength   # 1.5 exactly at the default strength
        embeddings[slice(*POSITIVE_IDS)] += offset * text_direction.astype(np.float32)
        embeddings[slice(*NEGATIVE_IDS)] -= offset * text_direction.astype(np.float32)
        directions = {"audio": _unit(rng.standard_normal(audio_dim)), "vision": _unit(rng.standard_normal(vision_dim))}
        markers = {name: _orthogonal_unit(marker_rng, direction) for name, direction in directions.items()}
        return _Constants(embeddings, directions, markers)


def _unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def _orthogonal_unit(rng: np.random.Generator, direction: np.ndarray) -> np.ndarray:
    """A random unit vector orthogonal to `direction` (any vector when the feature size is 1)."""
    vector = rng.standard_normal(direction.shape[0])
    if direction.shape[0] > 1:
        vector -= (vector @ direction) * direction
    return _unit(vector)


class _Coding:
    """Per split, which samples each modality codes nonlinearly, and the draws of salient frames: all from the
    split's coding stream, so the default knobs draw nothing from the streams the default data comes from."""

    def __init__(self, knobs: Knobs, rng: np.random.Generator):
        self.knobs, self.rng = knobs, rng

    def flips(self, n: int) -> tuple[np.ndarray, np.ndarray]:
        """(coded (N,) bool, sign (N,) +1/-1): a coded sample's signal is multiplied by its sign, which a marker
        shows; half the coded samples are flipped, so their signal alone says nothing about the label's sign."""
        coded = self.rng.random(n) < self.knobs.nonlinear
        sign = np.where(coded & (self.rng.random(n) < 0.5), -1.0, 1.0)
        return coded, sign


def _generate_split(rng: np.random.Generator, shape: SyntheticShape, constants: _Constants, n: int, split: str,
                    coding: _Coding) -> dict:
    consensus = _consensus_sentiment(rng, n)                    # (N,)
    unimodal = _unimodal_labels(rng, consensus, coding.knobs.conflict_rates())   # (N, 3) T, A, V
    text_len, audio_len, vision_len = shape.seq_lens
    text_bert, text = _text_modality(rng, unimodal[:, 0], text_len, constants.embeddings, coding)
    audio, audio_lengths = _signal_modality(rng, unimodal[:, 1], audio_len, constants, "audio", coding)
    vision, vision_lengths = _signal_modality(rng, unimodal[:, 2], vision_len, constants, "vision", coding)
    scale = 3.0 if shape.style == "mosi" else 1.0
    data = {
        "id": np.array([f"synth_{split}_{i // 10:04d}$_${i % 10}" for i in range(n)], dtype=object),
        "raw_text": np.array([""] * n, dtype=object),
        "text": text, "text_bert": text_bert.astype(np.float32),   # MMSA stores token ids as floats too
        "audio": audio, "vision": vision,
        "audio_lengths": audio_lengths, "vision_lengths": vision_lengths,
        "regression_labels": (consensus * scale).astype(np.float32),
    }
    if shape.unimodal_labels:
        for column, name in enumerate("TAV"):
            data[f"regression_labels_{name}"] = (unimodal[:, column] * scale).astype(np.float32)
    return data


def _consensus_sentiment(rng: np.random.Generator, n: int) -> np.ndarray:
    """(N,) values in {-1, -0.8, ..., 1}: 45 % negative, 15 % neutral, 40 % positive."""
    sign = rng.choice([-1.0, 0.0, 1.0], size=n, p=[0.45, 0.15, 0.40])
    return np.round(sign * rng.choice(SENTIMENT_STEPS, size=n), 1)


def _unimodal_labels(rng: np.random.Generator, consensus: np.ndarray, rates: dict[str, float]) -> np.ndarray:
    """(N, 3): each modality repeats the consensus except on its planted conflicts (at most one modality per sample)."""
    n = consensus.shape[0]
    labels = np.repeat(consensus[:, None], 3, axis=1)
    draw = rng.random(n)
    bounds = np.cumsum([0.0] + [rates[m] for m in ("text", "audio", "vision")])
    for column in range(3):
        conflicted = (draw >= bounds[column]) & (draw < bounds[column + 1])
        labels[conflicted, column] = _conflicting_label(rng, consensus[conflicted])
    return labels


def _conflicting_label(rng: np.random.Generator, consensus: np.ndarray) -> np.ndarray:
    """A label whose polarity differs from the consensus: the opposite sign (80 %) or neutral (20 %)."""
    sign = np.where(consensus == 0, rng.choice([-1.0, 1.0], size=consensus.shape), -np.sign(consensus))
    sign = np.where((consensus != 0) & (rng.random(consensus.shape) < 0.2), 0.0, sign)
    return np.round(sign * rng.choice(SENTIMENT_STEPS, size=consensus.shape), 1)


def _text_modality(rng: np.random.Generator, labels: np.ndarray, length: int, embeddings: np.ndarray,
                   coding: _Coding):
    """Token ids (N, 3, L) with [CLS] words [SEP] and padding, and their "BERT features" (N, L, D)."""
    n = labels.shape[0]
    ids = np.zeros((n, length), dtype=np.int64)
    word_counts = rng.integers(max(2, length // 3), length - 1, size=n)   # words between [CLS] and [SEP]
    for i in range(n):   # builds token strings once at generation time; training never loops per sample
        ids[i, : word_counts[i] + 2] = _sentence(rng, labels[i], word_counts[i])
    if coding.knobs.nonlinear > 0:
        ids = _negate(ids, *coding.flips(n), coding.rng)
    mask = (ids > 0).astype(np.int64)
    text_bert = np.stack([ids, mask, np.zeros_like(ids)], axis=1)
    features = np.empty((n, length, embeddings.shape[1]), dtype=np.float32)
    scale = np.sqrt(embeddings.shape[1])
    for start in range(0, n, TEXT_CHUNK):   # blocks: the float64 sums stay small; same values as one big block
        block = slice(start, start + TEXT_CHUNK)
        noise = rng.standard_normal((len(ids[block]), length, embeddings.shape[1]), dtype=np.float32) * TEXT_NOISE
        features[block] = (embeddings[ids[block]] + noise / scale) * mask[block, :, None]
    return text_bert, features


def _negate(ids: np.ndarray, coded: np.ndarray, sign: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Flipped samples (sign -1) say the opposite polarity with a negation word in place of one filler word: only
    the pair (negation present, polarity of the sentiment words) tells the label, an interaction across time."""
    flipped = (sign < 0)[:, None]                                        # (N, 1)
    positive = (ids >= POSITIVE_IDS[0]) & (ids < POSITIVE_IDS[1])
    negative = (ids >= NEGATIVE_IDS[0]) & (ids < NEGATIVE_IDS[1])
    shift = NEGATIVE_IDS[0] - POSITIVE_IDS[0]
    ids = np.where(flipped & positive, ids + shift, np.where(flipped & negative, ids - shift, ids))
    filler = (ids >= FILLER_IDS[0]) & (ids < FILLER_IDS[1])              # (N, L)
    where = np.where(filler, rng.random(ids.shape), -1.0).argmax(axis=1)  # one random filler word per sample
    rows = np.nonzero(flipped[:, 0] & filler.any(axis=1))[0]
    ids[rows, where[rows]] = NEGATION_ID
    return ids


def _sentence(rng: np.random.Generator, label: float, words: int) -> np.ndarray:
    """[CLS] + `words` ids (filler plus round(5|label|) sentiment words of the label's polarity) + [SEP]."""
    tokens = rng.integers(*FILLER_IDS, size=words)
    sentiment = min(words, int(round(5 * abs(label))))
    if sentiment:
        pool = POSITIVE_IDS if label > 0 else NEGATIVE_IDS
        positions = rng.choice(words, size=sentiment, replace=False)
        tokens[positions] = rng.integers(*pool, size=sentiment)
    return np.concatenate([[CLS_ID], tokens, [SEP_ID]])


def _signal_modality(rng: np.random.Generator, labels: np.ndarray, length: int, constants: _Constants,
                     modality: str, coding: _Coding):
    """Frames (N, L, D) = label * amplitude * direction + unit Gaussian noise, zero padded after a random length
    (the default knobs); `_coded_signal` for the other layouts in time and nonlinear coding."""
    direction = constants.directions[modality]
    amplitude = SIGNAL[modality] * getattr(coding.knobs, f"{modality}_strength")
    n, dim = labels.shape[0], direction.shape[0]
    lengths = rng.integers(max(1, length // 2), length + 1, size=n)
    frames = rng.standard_normal((n, length, dim), dtype=np.float32)
    if coding.knobs.coded:
        _add_coded_signal(frames, labels, lengths, amplitude, direction, constants.markers[modality], coding)
    else:
        frames += (labels[:, None, None] * amplitude * direction[None, None, :]).astype(np.float32)
    frames *= (np.arange(length)[None, :] < lengths[:, None])[:, :, None]
    return frames, lengths.astype(np.int64)


def _add_coded_signal(frames: np.ndarray, labels: np.ndarray, lengths: np.ndarray, amplitude: float,
                      direction: np.ndarray, marker: np.ndarray, coding: _Coding) -> None:
    """Adds, in place, the label signal laid out in time as `coding.knobs.time` says, and on nonlinearly coded samples
    the sign-coded signal plus a marker along `marker` whose sign is the code (an interaction across features).
    frames: (N, L, D) noise; labels, lengths: (N,). Blocks of samples keep the temporaries small (float32)."""
    knobs, n = coding.knobs, len(labels)
    coded, sign = coding.flips(n) if knobs.nonlinear > 0 else (np.zeros(n, bool), np.ones(n))
    weights = (_salient_weights(lengths, frames.shape[1], knobs.salient_frames, coding.rng)
               if knobs.time == "salient" else np.ones((n, 1, 1), np.float32))                    # (N, L or 1, 1)
    signal = ((labels * sign * amplitude)[:, None] * direction[None, :]).astype(np.float32)       # (N, D)
    signal += ((coded * sign * MARKER_AMPLITUDE)[:, None] * marker[None, :]).astype(np.float32)
    for start in range(0, n, TEXT_CHUNK):
        block = slice(start, start + TEXT_CHUNK)
        if knobs.time == "constant":   # one frame (noise included) repeated: averaging over time gains nothing
            frames[block] = frames[block, :1] + signal[block, None, :]
        else:                          # the marker rides on the weights too: salient frames carry all of it
            frames[block] += weights[block] * signal[block, None, :]


def _salient_weights(lengths: np.ndarray, length: int, frames: int, rng: np.random.Generator) -> np.ndarray:
    """(N, L, 1) float32: sqrt(length / k) on k random frames within each sample's length, 0 elsewhere, so a sample
    carries the signal energy of the spread layout in k frames (k = min(frames, its length))."""
    valid = np.arange(length)[None, :] < lengths[:, None]                 # (N, L)
    scores = np.where(valid, rng.random(valid.shape), -1.0)
    k = np.minimum(frames, lengths)                                        # (N,)
    threshold = -np.sort(-scores, axis=1)[np.arange(len(k)), k - 1]        # the k-th highest score per sample
    chosen = scores >= threshold[:, None]
    return (chosen * np.sqrt(lengths / k)[:, None]).astype(np.float32)[:, :, None]
