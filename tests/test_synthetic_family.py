"""The synthetic family: knobs change what they say (measured on generated data), names are canonical, the default is
the registered `synthetic` byte for byte, and members run, record their knobs and are written by `data synth`."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest

from mer_bench.data.builtin import checksum_arrays, member_spec, synthetic_spec
from mer_bench.data.mmsa import read_pickle
from mer_bench.data.synthetic import Knobs, generate_raw
from mer_bench.data.synthetic_family import Member, parse
from mer_bench.errors import UserError
from mer_bench.plugins import get_catalog
from tests.test_data_cli import cli  # noqa: F401  (the fixture: `mer-bench ARGS` in this process)

# checksum_arrays(generate_raw()) at the commit before the generator became a family
DEFAULT_SYNTHETIC_SHA256 = "681ca47e9403671dd290335e746a9cfaa7903680eb03356735d272756e1e9723"
SIZES = (600, 300, 4)


def _members(**knobs) -> dict:
    return generate_raw("synthetic", SIZES, 0, knobs=Knobs(**knobs))


def _polarity_accuracy(raw: dict, modality: str, column: str) -> float:
    """Ridge on time-averaged features (train) predicting the polarity of the modality's own label, scored on
    valid's non-neutral samples: how linearly readable the modality is after averaging over time."""
    def features(split):
        frames = raw[split][modality]                                          # (N, L, D)
        return np.concatenate([frames.mean(axis=1), np.ones((len(frames), 1))], axis=1)

    x, y = features("train"), np.sign(raw["train"][f"regression_labels_{column}"])
    weights = np.linalg.solve(x.T @ x + 10.0 * np.eye(x.shape[1]), x.T @ y)
    label = np.sign(raw["valid"][f"regression_labels_{column}"])
    guess = np.sign(features("valid") @ weights)
    return float((guess == label)[label != 0].mean())


def test_the_default_knobs_are_the_registered_synthetic_byte_for_byte():
    assert checksum_arrays(generate_raw()) == DEFAULT_SYNTHETIC_SHA256
    assert checksum_arrays(generate_raw(knobs=Knobs())) == DEFAULT_SYNTHETIC_SHA256
    assert Member().name == "synthetic" and synthetic_spec().generator["knobs"]["text_conflict"] == 0.25


@pytest.mark.parametrize("rate", [0.0, 0.4])
def test_text_conflict_sets_the_realised_share_of_disagreeing_text_labels(rate):
    train = _members(text_conflict=rate)["train"]
    disagree = np.sign(train["regression_labels_T"]) != np.sign(train["regression_labels"])
    assert abs(disagree.mean() - rate) < 0.05
    audio = np.sign(train["regression_labels_A"]) != np.sign(train["regression_labels"])
    assert abs(audio.mean() - 0.10) < 0.04                       # other modalities keep their default rates


def test_strength_sets_how_separable_a_modality_is():
    silent, strong = _members(audio_strength=0.0), _members(audio_strength=3.0)
    assert _polarity_accuracy(silent, "audio", "A") < 0.62       # chance is about 0.5
    assert _polarity_accuracy(strong, "audio", "A") > 0.95
    assert _polarity_accuracy(_members(text_strength=0.0), "text", "T") < 0.62


def test_salient_and_constant_frames_are_less_readable_after_time_averaging():
    spread = _polarity_accuracy(_members(audio_strength=2.0), "audio", "A")
    salient = _polarity_accuracy(_members(audio_strength=2.0, time="salient", salient_frames=1), "audio", "A")
    constant = _members(audio_strength=2.0, time="constant")
    assert spread > 0.9 and salient < spread - 0.2 and _polarity_accuracy(constant, "audio", "A") < spread - 0.2
    frames, lengths = constant["train"]["audio"], constant["train"]["audio_lengths"]
    assert np.array_equal(frames[0, 0], frames[0, lengths[0] - 1])     # one frame repeated over the sample's length


def test_nonlinear_coding_hides_the_sign_from_linear_readout_but_not_from_an_interaction():
    raw = _members(nonlinear=1.0, audio_strength=3.0)
    assert _polarity_accuracy(raw, "text", "T") < 0.65          # default text: about 1.0
    assert _polarity_accuracy(raw, "audio", "A") < 0.65
    ids = raw["train"]["text_bert"][:, 0]                           # (N, L) token ids
    negated = (ids == 2500).any(axis=1)
    says_positive = ((ids >= 2000) & (ids < 2050)).sum(1) > ((ids >= 3000) & (ids < 3050)).sum(1)
    label = np.sign(raw["train"]["regression_labels_T"])
    decoded = np.where(says_positive != negated, 1.0, -1.0)       # the interaction: polarity XOR negation
    assert (decoded == label)[label != 0].mean() > 0.99 and 0.3 < negated.mean() < 0.7


def test_member_names_are_canonical_and_bad_knobs_are_one_line_errors():
    member = parse("synthetic+text_conflict-0.3+text_strength-0.5+time-salient")
    assert member.knobs == Knobs(text_conflict=0.3, text_strength=0.5, time="salient")
    for bad, phrase in [("synthetic+time-salient+text_conflict-0.3", "write this member as "
                         "'synthetic+text_conflict-0.3+time-salient'"),
                        ("synthetic+text_conflit-0.3", "Did you mean 'text_conflict'"),
                        ("synthetic+text_conflict-0.7+audio_conflict-0.5", "sum to at most 1"),
                        ("synthetic+time-wavy", "time must be one of"), ("synthetic+nonlinear-x", "needs float"),
                        ("synthetic+text_conflict-0.25", "write this member as 'synthetic'")]:
        with pytest.raises(UserError, match=re.escape(phrase)) as error:
            parse(bad)
        assert "\n" not in str(error.value)


def test_a_member_runs_from_the_catalog_and_its_result_records_every_knob(tmp_path):
    from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many

    name = "synthetic+sizes-40x20x30+text_conflict-0.4+nonlinear-0.5"
    catalog = get_catalog()
    spec = make_spec(catalog, "mean", name, 1, data_sha256=data_checksum(catalog, name))
    (outcome,) = run_many([spec], RunOptions(out_dir=tmp_path, device="cpu", probes=False), catalog)
    record = json.loads(next(tmp_path.rglob("*.json")).read_text())
    assert record["dataset"]["name"] == name and record["dataset"]["synthetic"] is True
    assert record["dataset"]["generator"]["knobs"] == {**Member().settings(), "sizes": [40, 20, 30],
                                                      "lens": [20, 40, 30], "dims": [768, 25, 35],
                                                      "text_conflict": 0.4, "nonlinear": 0.5}
    assert record["dataset"]["sha256"] == member_spec(parse(name)).generate().sha256


def test_data_synth_writes_a_member_as_an_mmsa_pickle(cli, tmp_path):
    out = tmp_path / "member.pkl"
    status, stdout, _ = cli("data", "synth", out, "--n", 20, 10, 10, "--knob", "text_conflict=0.4",
                            "--knob", "time=constant")
    assert status == 0 and "member synthetic+sizes-20x10x10+text_conflict-0.4+time-constant" in stdout
    member = parse("synthetic+sizes-20x10x10+text_conflict-0.4+time-constant")
    assert checksum_arrays(read_pickle(out)) == checksum_arrays(generate_raw(member.shape, None, 0,
                                                                             knobs=member.knobs))
    status, _, stderr = cli("data", "synth", tmp_path / "bad.pkl", "--knob", "nonlinear=2")
    assert status == 2 and stderr.strip() == "Error: --knob: nonlinear must be 0..1."
