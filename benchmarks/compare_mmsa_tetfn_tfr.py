"""Faithfulness check of tetfn and tfr-net against MMSA's own modules (not a test: it needs an MMSA checkout).

As `compare_mmsa_multitask.py` does for the CH-SIMS models: MMSA's network is built from the same settings as ours,
its weights are copied into ours by a name map (biases and batch-norm statistics drawn at random first), and both
run on the same random inputs at full length. BERT is replaced on MMSA's side by a stand-in that returns the same
precomputed word features ours reads in text mode "features". Listed deviations are switched off on MMSA's side so
the rest can be compared exactly: its causal ("future") attention masks (ours masks padded keys instead), its
position codes left out where a step's first channel is exactly 0 (zeroed missing steps can be), and, for TFR-Net,
its temporal transformers, which are replaced by ours (MMSA's attend across the samples of a batch).

Printed per model: the largest absolute difference of the outputs, of the training loss (TETFN: the ULGM-weighted
four-task L1 with generated labels, and the labels after one ULGM update; TFR-Net: L1 plus the weighted
reconstruction loss of a batch with missing steps, second epoch), and the tensors whose Adam learning rate or weight
decay differs from what MMSA's trainer gives them.

    python benchmarks/compare_mmsa_tetfn_tfr.py /path/to/MMSA      # a checkout of github.com/thuiar/MMSA

MMSA's code is only imported from that path, never copied here.
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn
from torch.nn import functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_mmsa_multitask import (load_module, mmsa_optimiser_settings, optimiser_settings,  # noqa: E402
                                    randomise_statistics)

from mer_bench.model import DataInfo, build_config  # noqa: E402
from mer_bench_baselines.common import Inputs  # noqa: E402
from mer_bench_baselines.self_mm_labels import UnimodalLabelGenerator  # noqa: E402
from mer_bench_baselines.tetfn import TETFN  # noqa: E402
from mer_bench_baselines.tfr_net import TFRNet, with_missing_steps  # noqa: E402

FEATURE_DIMS = (24, 10, 14)        # (text, audio, vision): small, the maths does not depend on the sizes
SEQ_LENS = (8, 12, 10)
BATCH = 16
NAME = {"l": "text", "a": "audio", "v": "vision"}


class Args(dict):
    """MMSA's `args`: read both as attributes and as items."""

    __getattr__ = dict.__getitem__
    __setattr__ = dict.__setitem__


class WordFeatures(nn.Module):
    """Stand-in for MMSA's BertTextEncoder: the word features registered for the token tensor it is given."""

    table: dict[int, torch.Tensor] = {}

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        return self.table[id(tokens)]


def install_mmsa_packages(root: Path) -> None:
    """MMSA's package tree in sys.modules without running its __init__ files (they import the whole toolkit)."""
    src = root / "src/MMSA"
    for package, folder in (("MMSA", src), ("MMSA.models", src / "models"), ("MMSA.trains", src / "trains"),
                            ("MMSA.models.multiTask", src / "models/multiTask"),
                            ("MMSA.models.missingTask", src / "models/missingTask"),
                            ("MMSA.models.missingTask.TFR_NET", src / "models/missingTask/TFR_NET"),
                            ("MMSA.trains.multiTask", src / "trains/multiTask"),
                            ("MMSA.trains.missingTask", src / "trains/missingTask"),
                            ("MMSA.models.subNets.transformers_encoder", src / "models/subNets/transformers_encoder")):
        sys.modules.setdefault(package, types.ModuleType(package)).__path__ = [str(folder)]
    sub_nets = types.ModuleType("MMSA.models.subNets")
    sub_nets.__path__ = [str(src / "models/subNets")]
    sub_nets.BertTextEncoder = WordFeatures
    sys.modules["MMSA.models.subNets"] = sub_nets
    sys.modules["MMSA.models.subNets.BertTextEncoder"] = SimpleNamespace(BertTextEncoder=WordFeatures)
    metrics = SimpleNamespace(getMetics=lambda dataset: None)
    utils = SimpleNamespace(MetricsTop=lambda mode: metrics, dict_to_str=str)
    for name in ("MMSA.utils", "MMSA.utils.functions", "MMSA.utils.metricsTop"):
        sys.modules[name] = utils


def mmsa_module(root: Path, dotted: str) -> types.ModuleType:
    path = root / "src" / (dotted.replace(".", "/") + ".py")
    return load_module(path, dotted)


def without_listed_deviations(network: nn.Module) -> None:
    """No causal ("future") attention masks, and a position code at every step: MMSA's fairseq embedding leaves out
    the code of a step whose first channel is exactly 0 (its padding test), which zeroed missing steps can meet."""
    for module in network.modules():
        if hasattr(module, "attn_mask") and isinstance(module.attn_mask, bool):
            module.attn_mask = False
        if type(module).__name__ == "SinusoidalPositionalEmbedding":
            every_step = type(module).forward
            module.forward = lambda steps, module=module, every_step=every_step: every_step(
                module, torch.ones_like(steps))


def transformer_name(rest: str) -> str | None:
    """Our name inside a transformer for MMSA's; None for its constant buffers."""
    if rest in ("version", "embed_positions._float_tensor"):
        return None
    rules = ((r"^layers\.(\d+)\.self_attn\.(in_proj_weight|in_proj_bias)$", r"layers.\1.attention.\2"),
             (r"^layers\.(\d+)\.self_attn\.out_proj\.(.*)$", r"layers.\1.attention.out_proj.\2"),
             (r"^layers\.(\d+)\.fc1\.(.*)$", r"layers.\1.feed_forward.0.\2"),
             (r"^layers\.(\d+)\.fc2\.(.*)$", r"layers.\1.feed_forward.3.\2"),
             (r"^layers\.(\d+)\.layer_norms\.0\.(.*)$", r"layers.\1.attention_norm.\2"),
             (r"^layers\.(\d+)\.layer_norms\.1\.(.*)$", r"layers.\1.feed_forward_norm.\2"),
             (r"^layer_norm\.(.*)$", r"final_norm.\1"))
    for pattern, replacement in rules:
        if re.match(pattern, rest):
            return re.sub(pattern, replacement, rest)
    raise KeyError(rest)


def copy_weights(theirs: nn.Module, ours: nn.Module, rename, skip_ours: str = "^$") -> dict[str, str]:
    """Load MMSA's tensors into ours through `rename`; every tensor of ours (but `skip_ours`) must be set."""
    state, names = ours.state_dict(), {}
    for mmsa_name, tensor in theirs.state_dict().items():
        name = rename(mmsa_name)
        if name is None:
            continue
        state[name] = tensor.reshape(state[name].shape).clone()
        names[name] = mmsa_name
    missing = {n for n in set(state) - set(names) if not re.match(skip_ours, n)}
    assert not missing, f"our tensors not set from MMSA: {sorted(missing)}"
    ours.load_state_dict(state)
    return names


def random_inputs(generator: torch.Generator) -> Inputs:
    full = lambda length: torch.full((BATCH,), length, dtype=torch.long)  # noqa: E731
    rand = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    (dt, da, dv), (lt, la, lv) = FEATURE_DIMS, SEQ_LENS
    return Inputs(index=torch.arange(BATCH), label=rand(BATCH).clamp(-1, 1), text=rand(BATCH, lt, dt), text_ids=None,
                  text_lengths=full(lt), audio=rand(BATCH, la, da), audio_lengths=full(la), vision=rand(BATCH, lv, dv),
                  vision_lengths=full(lv))


def token_tensor(features: torch.Tensor) -> torch.Tensor:
    """A (B, 3, L) stand-in for token ids (all attended) whose BERT output is `features`."""
    tokens = torch.ones(features.shape[0], 3, features.shape[1])
    WordFeatures.table[id(tokens)] = features
    return tokens


def optimiser_differences(their_groups, model, theirs, names) -> list[str]:
    our_groups = optimiser_settings(model.parameter_groups(), {})
    theirs_by_name = dict(theirs.named_parameters())
    differ = []
    for name, parameter in model.network.named_parameters():
        if name in names and their_groups[id(theirs_by_name[names[name]])] != our_groups[id(parameter)]:
            differ.append(names[name])
    return differ


# ---- TETFN -------------------------------------------------------------------------------------------------------

def tetfn_name(mmsa: str) -> str | None:
    pairs = {"l_with_a": "text<-audio", "l_with_v": "text<-vision", "a_with_l": "audio<-text",
             "v_with_l": "vision<-text", "a_with_v": "audio<-vision", "v_with_a": "vision<-audio"}
    if match := re.match(r"^trans_(\w_with_\w)\.(?:(lower|upper)_mha\.)?(.*)$", mmsa):
        inner = transformer_name(match[3])
        half = f"{match[2]}." if match[2] else ""
        return None if inner is None else f"crossmodal.{pairs[match[1]]}.{half}{inner}"
    if match := re.match(r"^trans_(\w)_mem\.(.*)$", mmsa):
        inner = transformer_name(match[2])
        return None if inner is None else f"memory.{NAME[match[1]]}.{inner}"
    if match := re.match(r"^post_(fusion|text|audio|video)_layer_(\d)\.(.*)$", mmsa):
        task = {"video": "vision"}.get(match[1], match[1])
        where = {"1": "first.1", "2": "rest.0", "3": "rest.2"}[match[2]]
        return f"heads.{task}.{where}.{match[3]}"
    if mmsa.startswith("proj_l."):
        return mmsa.replace("proj_l.", "project_text.")
    if mmsa.startswith(("audio_model.", "video_model.")):
        return mmsa
    raise KeyError(mmsa)


def tetfn_args(config) -> Args:
    c = config
    args = Args(need_data_aligned=False, use_finetune=False, transformers="bert", pretrained="",
                feature_dims=FEATURE_DIMS,
                conv1d_kernel_size_l=c.conv1d_kernel_sizes[0], conv1d_kernel_size_a=c.conv1d_kernel_sizes[1],
                conv1d_kernel_size_v=c.conv1d_kernel_sizes[2], train_mode="regression", dataset_name="sims",
                train_samples=BATCH, excludeZero=c.exclude_zero, update_epochs=c.accumulation, device="cpu",
                KeyEval="Loss", save_labels=False)
    for f in dataclasses.fields(c):
        args.setdefault(f.name, getattr(c, f.name))
    return args


def compare_tetfn(root: Path) -> None:
    info = DataInfo(dataset="sims", style="sims", feature_dims=FEATURE_DIMS, seq_lens=SEQ_LENS,
                    has_unimodal_labels=False, text_model="")
    # MMSA's SIMS preset, smaller; equal audio and vision kernels, as MMSA's video subnetwork uses the audio one
    config = build_config(TETFN, info, {"dst_feature_dims": 10, "nheads": 2, "conv1d_kernel_sizes": (3, 3, 3)})
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    args = tetfn_args(config)
    theirs = mmsa_module(root, "MMSA.models.multiTask.TETFN").TETFN(args)
    randomise_statistics(theirs, generator)
    without_listed_deviations(theirs)
    model = TETFN(config, info)
    names = copy_weights(theirs, model.network, tetfn_name)
    theirs.eval(), model.network.eval()
    batch = random_inputs(generator)
    with torch.no_grad():
        their_out = theirs(token_tensor(batch.text), (batch.audio, batch.audio_lengths),
                           (batch.vision, batch.vision_lengths))
        our_out = model.forward(batch)
    keys = (("M", "score"), ("T", "score_text"), ("A", "score_audio"), ("V", "score_vision"),
            ("Feature_f", "feature_fusion"), ("Feature_t", "feature_text"), ("Feature_a", "feature_audio"),
            ("Feature_v", "feature_vision"))
    output_gap = max(float((their_out[m].squeeze(-1) - our_out[k]).abs().max()) for m, k in keys)

    # the trainer's loss with generated labels, then one ULGM update (second epoch), on both sides
    trainer = mmsa_module(root, "MMSA.trains.multiTask.TETFN").TETFN(args)
    trainer.init_labels(batch.index, batch.label)
    model.labels = UnimodalLabelGenerator(batch.label, {"fusion": config.post_fusion_dim, "text": config.post_text_dim,
                                                        "audio": config.post_audio_dim,
                                                        "vision": config.post_video_dim}, config.H, config.exclude_zero)
    for task in ("text", "audio", "vision"):
        generated = torch.rand(BATCH, generator=generator) * 2 - 1
        trainer.label_map[task][:] = generated
        model.labels.labels[task][:] = generated
    their_loss = sum(trainer.weighted_loss(their_out[m], trainer.label_map[trainer.name_map[m]], indexes=batch.index,
                                           mode=trainer.name_map[m]) for m in "MTAV")
    loss_gap = abs(float(their_loss) - float(model.training_loss(batch, our_out, epoch=2)))
    features = {t: their_out[f"Feature_{t[0]}"] for t in ("fusion", "text", "audio")}
    features["vision"] = their_out["Feature_v"]
    for _ in range(2):    # the first update stores features and centres; the second moves the labels
        trainer.update_labels(features["fusion"], features["text"], features["audio"], features["vision"], 2,
                              batch.index, their_out)
        trainer.update_features(features["fusion"], features["text"], features["audio"], features["vision"],
                                batch.index)
        trainer.update_centers()
        model.labels.update(features, batch.index, epoch=2)
    label_gap = max(float((trainer.label_map[t] - model.labels.labels[t]).abs().max()) for t in ("text", "audio",
                                                                                                   "vision"))
    trainer_module = sys.modules["MMSA.trains.multiTask.TETFN"]
    their_groups = mmsa_optimiser_settings(trainer_module, "TETFN", args, theirs)
    differ = optimiser_differences(their_groups, model, theirs, names)
    print(f"tetfn: largest output difference {output_gap:.3g}, loss difference {loss_gap:.3g}, generated labels "
          f"after an update {label_gap:.3g}; {len(differ)} tensors optimised differently {differ or ''}")


# ---- TFR-Net -----------------------------------------------------------------------------------------------------

def tfr_name(mmsa: str) -> str | None:
    pairs = {"l_with_a": "text<-audio", "l_with_v": "text<-vision", "a_with_l": "audio<-text",
             "a_with_v": "audio<-vision", "v_with_l": "vision<-text", "v_with_a": "vision<-audio"}
    if match := re.match(r"^align_subnet\.Model\.trans_(\w_with_\w)\.(.*)$", mmsa):
        inner = transformer_name(match[2])
        return None if inner is None else f"extraction.crossmodal.{pairs[match[1]]}.{inner}"
    if match := re.match(r"^align_subnet\.Model\.trans_(\w)_mem\.(.*)$", mmsa):
        inner = transformer_name(match[2])
        return None if inner is None else f"extraction.own.{NAME[match[1]]}.{inner}"
    if re.match(r"^align_subnet\.Model\.trans_\w_final\.", mmsa):
        return None                       # replaced by ours (see the module docstring)
    if match := re.match(r"^align_subnet\.Model\.proj_(\w)\.(.*)$", mmsa):
        return f"extraction.project.{NAME[match[1]]}.{match[2]}"
    if match := re.match(r"^generator_(\w)\.Model\.linear\.(.*)$", mmsa):
        return f"generators.{ {'t': 'text', 'a': 'audio', 'v': 'vision'}[match[1]] }.{match[2]}"
    if match := re.match(r"^fusion_subnet\.Model\.(text|audio|vision)_encoder\.(gru\.gru|cnn|fc)\.(.*)$", mmsa):
        part = {"gru.gru": "gru", "cnn": "gate", "fc": "project"}[match[2]]
        return f"fusion.{match[1]}.{part}.{match[3]}"
    if match := re.match(r"^fusion_subnet\.Model\.classifier\.linear_trans_(norm|hidden|final)\.(.*)$", mmsa):
        return f"classifier.{ {'norm': 0, 'hidden': 1, 'final': 4}[match[1]] }.{match[2]}"
    raise KeyError(mmsa)


class OurTemporal(nn.Module):
    """Takes the place of MMSA's temporal transformer: ours over (B, L, 3d), given and returned as (B, 3d, L)."""

    def __init__(self, ours: nn.Module):
        super().__init__()
        self.ours = ours

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        steps = x.transpose(1, 2)                                                     # (B, L, 3d)
        padding = torch.zeros(steps.shape[:2], dtype=torch.bool)
        return self.ours(steps, padding).transpose(1, 2)


def tfr_args(config) -> Args:
    c = config
    dim, _ = c.dst_feature_dim_nheads
    args = Args(use_bert_finetune=True, alignmentModule="crossmodal_attn", generatorModule="linear",
                fusionModule="c_gate", recloss_type="combine", without_generator=False, attn_mask=True,
                seq_lens=SEQ_LENS, feature_dims=FEATURE_DIMS, num_temporal_head=2,
                conv1d_kernel_size_l=c.conv1d_kernel_sizes[0], conv1d_kernel_size_a=c.conv1d_kernel_sizes[1],
                conv1d_kernel_size_v=c.conv1d_kernel_sizes[2], fusion_t_in=3 * dim, fusion_a_in=3 * dim,
                fusion_v_in=3 * dim, fusion_t_hid=c.fusion_hidden_sizes[0], fusion_a_hid=c.fusion_hidden_sizes[1],
                fusion_v_hid=c.fusion_hidden_sizes[2], fusion_drop=c.fusion_dropout, train_mode="regression",
                dataset_name="sims", device="cpu", KeyEval="Loss", update_epochs=c.accumulation,
                patience=c.plateau_patience, early_stop=c.patience)
    for f in dataclasses.fields(c):
        args.setdefault(f.name, getattr(c, f.name))
    return args


def compare_tfr_net(root: Path) -> None:
    info = DataInfo(dataset="sims", style="sims", feature_dims=FEATURE_DIMS, seq_lens=SEQ_LENS,
                    has_unimodal_labels=False, text_model="")
    zero_dropouts = {f.name: 0.0 for f in dataclasses.fields(TFRNet.Config) if f.name.endswith("dropout")}
    config = build_config(TFRNet, info, {"dst_feature_dim_nheads": (6, 2), "fusion_hidden_sizes": (5, 4, 6),
                                         "cls_hidden_dim": 8, "missing_rates": (0.2, 0.2, 0.2), **zero_dropouts,
                                         "conv1d_kernel_sizes": (3, 3, 3),
                                         "attn_dropout_a": 0.0, "attn_dropout_v": 0.0, "fusion_dropout": 0.0})
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    args = tfr_args(config)
    theirs = mmsa_module(root, "MMSA.models.missingTask.TFR_NET.model").TFR_NET(args)
    randomise_statistics(theirs, generator)
    without_listed_deviations(theirs)
    model = TFRNet(config, info)
    names = copy_weights(theirs, model.network, tfr_name, skip_ours=r"^temporal\.")
    aligned = theirs.align_subnet.Model
    for short, modality in NAME.items():
        setattr(aligned, f"trans_{short}_final", OurTemporal(model.network.temporal[modality]))
    batch = random_inputs(generator)
    model.on_fit_start(batch, SimpleNamespace())
    missing = model.missing
    dropped = with_missing_steps(batch, missing)

    def mmsa_inputs(given: Inputs):
        kept = {m: (~missing[m]).float() for m in missing}
        ones = {m: torch.ones(BATCH, n) for m, n in zip(("text", "audio", "vision"), SEQ_LENS)}
        return ((token_tensor(batch.text), token_tensor(given.text), kept["text"]),
                (batch.audio, given.audio, ones["audio"], kept["audio"]),
                (batch.vision, given.vision, ones["vision"], kept["vision"]))

    theirs.train(), model.network.train()      # every dropout is 0; batch norm on batch statistics on both sides
    their_score, their_gen = theirs(*mmsa_inputs(dropped))
    our_out = model.forward(batch)
    train_gap = float((their_score.squeeze(-1) - our_out["score"]).abs().max())
    their_loss = F.l1_loss(their_score, batch.label.view(-1, 1)) + their_gen
    loss_gap = abs(float(their_loss) - float(model.training_loss(batch, our_out, epoch=2)))
    theirs.eval(), model.network.eval()
    with torch.no_grad():       # prediction: MMSA given the inputs as they are as its "missing" version
        their_clean, _ = theirs(*mmsa_inputs(batch))
        clean_gap = float((their_clean.squeeze(-1) - model.forward(batch)["score"]).abs().max())
    trainer_module = mmsa_module(root, "MMSA.trains.missingTask.TFR_NET")
    their_groups = mmsa_optimiser_settings(trainer_module, "TFR_NET", args, theirs)
    differ = optimiser_differences(their_groups, model, theirs, names)
    print(f"tfr-net: largest output difference {clean_gap:.3g} (eval) and {train_gap:.3g} (training, missing steps), "
          f"loss difference {loss_gap:.3g}; {len(differ)} tensors optimised differently {differ or ''}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mmsa", type=Path, help="root of a thuiar/MMSA checkout (holds src/MMSA)")
    options = parser.parse_args()
    if not (options.mmsa / "src/MMSA/models/multiTask/TETFN.py").is_file():
        parser.exit(2, f"error: {options.mmsa} is not an MMSA checkout (no src/MMSA/models/multiTask/TETFN.py)\n")
    torch.set_num_threads(1)
    install_mmsa_packages(options.mmsa)
    compare_tetfn(options.mmsa)
    compare_tfr_net(options.mmsa)


if __name__ == "__main__":
    main()
