"""Probe arithmetic on fake models whose reliance is known by construction, and the guarantees probes give."""

from __future__ import annotations

import pytest
import torch

from mer_bench.data.split import Split
from mer_bench.model import Model, Predictions, TorchModel
from mer_bench.probes.analysis import normalised_auc, reliance_shares
from mer_bench.probes.perturb import derangement, emptied, feature_std, noised, special_tokens_only, swapped
from mer_bench.probes import RATES, ProbePlan, run_probes

CLS, SEP, FILLER, POSITIVE, NEGATIVE = 101, 102, 1000, 2000, 3000


def hand_split(n: int = 80, seed: int = 0) -> Split:
    """A SIMS-style split where each modality's own label sits in its first feature of its first frame.

    Every 4th sample is a text conflict: its text label has the other polarity than the multimodal label.
    """
    g = torch.Generator().manual_seed(seed)
    label = torch.tensor([-0.8, -0.4, 0.0, 0.4, 0.8])[torch.randint(0, 5, (n,), generator=g)]
    unimodal = label.unsqueeze(1).repeat(1, 3)                            # (N, 3) T, A, V
    conflict = torch.arange(n) % 4 == 0
    unimodal[conflict, 0] = torch.where(label[conflict] == 0, 0.4, -label[conflict])
    text = torch.randn(n, 4, 8, generator=g)
    text[:, 0, 0] = unimodal[:, 0]
    audio, audio_lengths = _frames(unimodal[:, 1], (n, 6, 3), g)
    vision, vision_lengths = _frames(unimodal[:, 2], (n, 5, 4), g)
    word = torch.full((n,), FILLER)
    word[unimodal[:, 0] > 0], word[unimodal[:, 0] < 0] = POSITIVE, NEGATIVE
    ids = torch.stack([torch.full((n,), CLS), word, torch.full((n,), FILLER), torch.full((n,), SEP),
                       torch.zeros(n, dtype=torch.long)], dim=1)             # (N, 5), last position padding
    text_bert = torch.stack([ids, (ids > 0).long(), torch.zeros_like(ids)], dim=1)   # (N, 3, 5)
    return Split(name="test", ids=tuple(f"test_{i}" for i in range(n)), label=label, audio=audio, vision=vision,
                 audio_lengths=audio_lengths, vision_lengths=vision_lengths, text=text, text_bert=text_bert,
                 unimodal_labels=unimodal)


def _frames(own_label: torch.Tensor, shape: tuple[int, int, int], g: torch.Generator):
    n, length, _ = shape
    frames = torch.randn(shape, generator=g)
    frames[:, 0, 0] = own_label
    lengths = torch.randint(1, length + 1, (n,), generator=g)
    frames *= (torch.arange(length).unsqueeze(0) < lengths.unsqueeze(1)).unsqueeze(-1)
    return frames, lengths


class FakeModel(Model):
    """No training; `predict` computes a score from the split with `read`. Subclasses say what they read."""

    name = "fake"
    outputs = frozenset({"score"})

    def __init__(self):
        super().__init__(None, None)

    def fit(self, train, valid, ctx):
        pass

    def predict(self, split):
        return Predictions(score=self.read(split))


class TextFeatureReader(FakeModel):
    def read(self, split):
        return split.text[:, 0, 0].clone()                                  # (N,) the text label itself


class TextTokenReader(FakeModel):
    def read(self, split):
        ids = split.text_bert[:, 0]                                          # (N, Lt)
        return 0.6 * (ids == POSITIVE).any(1).float() - 0.6 * (ids == NEGATIVE).any(1).float()


class AudioVisionReader(FakeModel):
    def read(self, split):
        return (split.audio[:, 0, 0] + split.vision[:, 0, 0]) / 2


class MultimodalReader(FakeModel):
    """Reads every modality, so that every probe condition changes its prediction."""

    def read(self, split):
        return (split.text[:, 0, 0] + split.audio[:, 0, 0] + split.vision[:, 0, 0]) / 3


class TextClassifier(FakeModel):
    outputs = frozenset({"probs"})

    def predict(self, split):
        classes = (torch.sign(split.text[:, 0, 0]) + 1).long()
        return Predictions(probs=torch.nn.functional.one_hot(classes, 3).float())


def probe(model, split, seed=7):
    reference = model.predict(split).check(len(split), model.outputs, model.name)
    return run_probes(model, split, reference, "sims", seed)


@pytest.mark.parametrize("model", [TextFeatureReader(), TextTokenReader(), TextClassifier()],
                         ids=["features", "token-ids", "classification"])
def test_text_only_model_relies_on_text_alone_and_follows_it(model):
    split = hand_split()
    if isinstance(model, TextTokenReader):
        split = split.replace(text=None)                                     # a dataset with token ids only
    result = probe(model, split)
    assert result["track"] == ("classification" if isinstance(model, TextClassifier) else "regression")
    assert result["text_reliance_share"] == 1.0
    assert result["reliance_share"]["mean"] == {"text": 1.0, "audio": 0.0, "vision": 0.0}
    assert result["follows_text_rate"] == 1.0
    assert result["conflict"]["follows_multimodal_rate"] == 0.0
    assert result["conflict"]["disagreeing"] == result["conflict"]["subsets"]["text-conflict"]["n"] == 20
    assert result["conflict"]["subsets"]["text-conflict"]["has0_acc2"] < result["conflict"]["subsets"]["consistent"][
        "has0_acc2"]
    for kind in ("zero", "permute"):
        assert result["ablation"][kind]["text"]["drop"] > 0
        assert result["ablation"][kind]["audio"]["drop"] == result["ablation"][kind]["vision"]["drop"] == 0.0
    assert result["robustness"]["noise"]["retention"] == 1.0                  # noise never touches text


def test_model_ignoring_text_has_text_share_zero():
    result = probe(AudioVisionReader(), hand_split())
    assert result["text_reliance_share"] == 0.0
    shares = result["reliance_share"]["mean"]
    assert shares["audio"] > 0 and shares["vision"] > 0 and shares["audio"] + shares["vision"] == pytest.approx(1.0)
    assert result["follows_text_rate"] == 0.0                                # audio and vision agree with the label
    assert result["ablation"]["permute"]["audio"]["mae_increase"] > 0
    assert result["robustness"]["noise"]["auc"] < result["clean"]["has0_acc2"]


def test_same_seed_same_probes_other_seed_other_permutation():
    split, model = hand_split(), MultimodalReader()
    first, again, other = probe(model, split, seed=3), probe(model, split, seed=3), probe(model, split, seed=4)
    assert first == again
    assert first["ablation"] != other["ablation"] or first["robustness"] != other["robustness"]
    source = ProbePlan(split, 3).source
    assert torch.equal(source, ProbePlan(split, 3).source)
    assert not torch.equal(source, ProbePlan(split, 4).source)


def test_permutation_gives_every_sample_another_samples_modality_with_its_lengths():
    split = hand_split(n=30)
    import numpy as np
    source = derangement(30, np.random.default_rng(0))
    assert sorted(source.tolist()) == list(range(30)) and bool((source != torch.arange(30)).all())
    fields = swapped(split, "audio", source)
    assert torch.equal(fields["audio"], split.audio[source])
    assert torch.equal(fields["audio_lengths"], split.audio_lengths[source])
    assert set(swapped(split, "text", source)) == {"text", "text_bert"}


def test_masking_curve_equals_predicting_the_masked_split_directly():
    """Masking reuses zero-ablation and clean predictions; the assembled result must match a full prediction."""
    split, model = hand_split(), MultimodalReader()
    plan = ProbePlan(split, seed=5)
    reference = model.predict(split)
    from mer_bench.probes.passes import PassCount, predict_variants
    count = PassCount()
    predicted = predict_variants(model, split, reference, plan.variants(), count)
    for rate in RATES:
        masks = plan.masks[rate]                                              # (N, 3) T, A, V
        assert int(masks[:, 0].sum()) == round(rate * len(split))
        direct = split
        for column, modality in enumerate(("text", "audio", "vision")):
            direct = direct.replace(**emptied(direct, modality, rows=masks[:, column]))
        assert torch.allclose(plan.masked_predictions(rate, predicted, reference).score, model.predict(direct).score)
    # 6 ablations and 5 noise rates change every sample; masking predicts only samples with 2+ modalities masked.
    assert count.samples_predicted < 12 * len(split) and count.largest_call == len(split)


def test_empty_text_keeps_cls_and_sep_and_empty_frames_keep_lengths():
    split = hand_split(n=6)
    empty = special_tokens_only(split.text_bert)
    assert empty[:, 0, :2].tolist() == [[CLS, SEP]] * 6 and empty[:, 1].sum(1).tolist() == [2] * 6
    assert int(empty[:, 0, 2:].abs().sum()) == 0
    audio = emptied(split, "audio")
    assert set(audio) == {"audio"} and float(audio["audio"].abs().sum()) == 0.0


def test_noise_is_scaled_by_feature_std_and_leaves_padding_zero():
    split = hand_split(n=200)
    stds = {m: feature_std(getattr(split, m), getattr(split, f"{m}_lengths")) for m in ("audio", "vision")}
    noise = {m: torch.randn(getattr(split, m).shape, generator=torch.Generator().manual_seed(1))
             for m in ("audio", "vision")}
    out = noised(split, 0.5, noise, stds)
    padding = split.audio.abs().sum(-1) == 0                                  # (N, La)
    assert float(out["audio"][padding].abs().sum()) == 0.0
    added = (out["audio"] - split.audio)[~padding]                            # (M, Da)
    assert torch.allclose(added.std(0) / stds["audio"], torch.full((3,), 0.5), atol=0.05)


def test_probes_see_only_the_test_split_and_never_change_the_model():
    class Recorder(TorchModel):
        name = "recorder"

        def __init__(self):
            super().__init__(None, None)
            self.network = torch.nn.Linear(3, 1)
            self.seen_ids: set[str] = set()

        def fit(self, train, valid, ctx):
            raise AssertionError("probes must not train")

        def predict(self, split):
            self.seen_ids.update(split.ids)
            inputs = torch.stack([split.text[:, 0, 0], split.audio[:, 0, 0], split.vision[:, 0, 0]], dim=1)
            return Predictions(score=self.network(inputs).squeeze(1))

    model, split = Recorder(), hand_split()
    model.network.eval()
    before = {key: value.clone() for key, value in model.state_dict().items()}
    reference = model.predict(split).check(len(split), model.outputs, model.name)
    run_probes(model, split, reference, "sims", seed=1)
    assert model.seen_ids == set(split.ids)
    assert all(torch.equal(before[key], value) for key, value in model.state_dict().items())
    assert all(parameter.grad is None for parameter in model.network.parameters())
    assert not model.network.training


def test_split_without_unimodal_labels_has_no_conflict_section():
    result = probe(TextFeatureReader(), hand_split().replace(unimodal_labels=None))
    assert result["conflict"] is None and result["follows_text_rate"] is None
    assert result["text_reliance_share"] == 1.0


def test_reliance_share_clips_negative_drops_and_is_null_without_drops():
    assert reliance_shares({"text": 0.3, "audio": -0.1, "vision": 0.1}) == pytest.approx(
        {"text": 0.75, "audio": 0.0, "vision": 0.25})
    assert reliance_shares({"text": 0.0, "audio": -0.2, "vision": 0.0}) is None
    assert reliance_shares({"text": None, "audio": 0.1, "vision": 0.1}) is None


def test_curve_area_is_clean_metric_when_flat_and_the_trapezoid_otherwise():
    assert normalised_auc(0.8, [0.8] * 5, RATES) == pytest.approx(0.8)
    # (0, 1.0) -> (0.1, 0.9) -> ... -> (0.5, 0.5): a straight line, mean height 0.75
    assert normalised_auc(1.0, [0.9, 0.8, 0.7, 0.6, 0.5], RATES) == pytest.approx(0.75)
    assert normalised_auc(1.0, [0.9, None, 0.7, 0.6, 0.5], RATES) is None


class StageRecorder:
    """A Progress that records its stages and steps."""

    def __init__(self):
        self.stages, self.steps = [], 0

    def start_stage(self, name, total):
        self.stages.append((name, total))

    def advance(self, **status):
        self.steps += 1


def test_probes_report_a_progress_stage_with_one_step_per_predicted_condition():
    model, split, recorder = MultimodalReader(), hand_split(), StageRecorder()
    reference = model.predict(split)
    result = run_probes(model, split, reference, "sims", 7, recorder)
    assert recorder.stages == [("probes", recorder.steps)]
    assert recorder.steps == result["cost"]["variants"] > 0   # every condition changes this model's input
