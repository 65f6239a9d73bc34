"""Faithfulness check of the aligned-input baselines against MMSA's own modules (not a test: it needs an MMSA
checkout).

For each model, MMSA's network (src/MMSA/models/singleTask/*.py) is built from the same settings as ours, its
weights are copied into ours by a name map (biases first redrawn at random so that every tensor matters), and both
run in eval mode on the same random aligned inputs (every modality of one length, every step valid, as MMSA's
aligned files are read). Printed per model and preset: the largest absolute difference of the forward outputs,
and of the auxiliary loss values where the model has them (MCTN's total loss, MFM's reconstruction and MMD).

    python benchmarks/compare_mmsa_aligned.py /path/to/MMSA      # a checkout of github.com/thuiar/MMSA

MMSA's code is only imported from that path, never copied here.
"""

from __future__ import annotations

import argparse
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn


sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_mmsa_multitask import load_module  # noqa: E402  (the one loader of MMSA's files)
from mer_bench.model import DataInfo, build_config  # noqa: E402
from mer_bench_baselines.common import Inputs  # noqa: E402
from mer_bench_baselines.graph_mfn import GraphMFN  # noqa: E402
from mer_bench_baselines.mctn import MCTN  # noqa: E402
from mer_bench_baselines.mfm import MFM  # noqa: E402
from mer_bench_baselines.mfn import MFN  # noqa: E402

FEATURE_DIMS = (24, 10, 14)        # (text, audio, vision): small, the maths does not depend on the sizes
LENGTH = 9                         # aligned: one length for every modality
BATCH = 16


def load_mmsa_model(root: Path, file: str) -> types.ModuleType:
    """MMSA's model module, with its packages stubbed (only the module itself is run)."""
    for package in ("MMSA", "MMSA.models", "MMSA.models.singleTask", "MMSA.models.subNets"):
        sys.modules.setdefault(package, types.ModuleType(package)).__path__ = []
    sub_nets = sys.modules["MMSA.models.subNets"]
    sub_nets.BertTextEncoder = getattr(sub_nets, "BertTextEncoder", None)   # imported by MCTN; unused without BERT
    return load_module(root / "src/MMSA/models/singleTask" / f"{file}.py", f"MMSA.models.singleTask.{file}")


def random_inputs(seed: int) -> Inputs:
    generator = torch.Generator().manual_seed(seed)
    draw = lambda dim: torch.randn(BATCH, LENGTH, dim, generator=generator)  # noqa: E731
    full = torch.full((BATCH,), LENGTH, dtype=torch.long)
    return Inputs(index=torch.arange(BATCH), label=torch.zeros(BATCH), text=draw(FEATURE_DIMS[0]), text_ids=None,
                  text_lengths=full, audio=draw(FEATURE_DIMS[1]), audio_lengths=full, vision=draw(FEATURE_DIMS[2]),
                  vision_lengths=full)


def info() -> DataInfo:
    return DataInfo(dataset="mosi-aligned", style="mosi", feature_dims=FEATURE_DIMS, seq_lens=(LENGTH,) * 3,
                    has_unimodal_labels=False, text_model="bert-base-uncased", aligned=True)


def randomise_biases(module: nn.Module, seed: int) -> None:
    """PyTorch initialises some biases to zero; random ones make a wrong bias mapping visible."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            if name.endswith("bias"):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.1)


def copy_weights(source: nn.Module, target: nn.Module, names: dict[str, str]) -> None:
    """target[ours] = source[theirs] for every (theirs prefix -> ours prefix); every tensor of ours must be set."""
    theirs, ours = source.state_dict(), target.state_dict()
    copied = {}
    for key, value in theirs.items():
        prefix = next((p for p in names if key == p or key.startswith(p + ".")), None)
        if prefix is not None:
            copied[names[prefix] + key[len(prefix):]] = value
    missing = set(ours) - set(copied)
    if missing:
        raise SystemExit(f"not mapped: {sorted(missing)}")
    target.load_state_dict(copied)


# --- MFN ------------------------------------------------------------------------------------------------------------

MFN_NAMES = {"lstm_l": "cells.0", "lstm_a": "cells.1", "lstm_v": "cells.2",
             "att1_fc1": "attention.0", "att1_fc2": "attention.3", "att2_fc1": "proposal.0", "att2_fc2": "proposal.3",
             "gamma1_fc1": "retain_gate.0", "gamma1_fc2": "retain_gate.3",
             "gamma2_fc1": "update_gate.0", "gamma2_fc2": "update_gate.3", "out_fc1": "head.0", "out_fc2": "head.3"}


def compare_mfn(root: Path, preset: str) -> float:
    config = build_config(MFN, info(), MFN.presets[preset])
    c = config
    args = SimpleNamespace(
        feature_dims=FEATURE_DIMS, hidden_dims=c.hidden_dims, memsize=c.memsize, windowsize=2,
        train_mode="regression", num_classes=1,
        NN1Config={"shapes": c.att1_size, "drop": c.att1_dropout},
        NN2Config={"shapes": c.att2_size, "drop": c.att2_dropout},
        gamma1Config={"shapes": c.gamma1_size, "drop": c.gamma1_dropout},
        gamma2Config={"shapes": c.gamma2_size, "drop": c.gamma2_dropout},
        outConfig={"shapes": c.out_size, "drop": c.out_dropout})
    torch.manual_seed(0)
    theirs = load_mmsa_model(root, "MFN").MFN(args)
    randomise_biases(theirs, 1)
    ours = MFN(config, info()).network
    copy_weights(theirs, ours, MFN_NAMES)
    inputs = random_inputs(2)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        expected = theirs(inputs.text, inputs.audio, inputs.vision)["M"].squeeze(-1)
        actual = ours(inputs)["score"]
    return float((expected - actual).abs().max())


# --- MCTN -----------------------------------------------------------------------------------------------------------

MCTN_NAMES = {"encoder1.rnn": "text_to_vision.encoder.rnn", "encoder1.fc": "text_to_vision.encoder.summary",
              "decoder1.rnn": "text_to_vision.decoder.rnn", "decoder1.fc_out": "text_to_vision.decoder.out",
              "attn1.attn": "text_to_vision.decoder.attention.energy",
              "attn1.v": "text_to_vision.decoder.attention.score",
              "encoder2.rnn": "joint_to_audio.encoder.rnn", "encoder2.fc": "joint_to_audio.encoder.summary",
              "decoder2.rnn": "joint_to_audio.decoder.rnn", "decoder2.fc_out": "joint_to_audio.decoder.out",
              "attn2.attn": "joint_to_audio.decoder.attention.energy",
              "attn2.v": "joint_to_audio.decoder.attention.score",
              "regression.rnn": "regression.rnn", "regression.linear": "regression.attention",
              "regression.linear2": "regression.out"}


class BatchFirstRegression(nn.Module):
    """MMSA's regression head given batch-major states with its LSTM reading them batch-first. MMSA's MCTN feeds
    batch-major tensors to time-major LSTMs (fault 1 in the README); the comparison therefore gives MMSA's module
    time-major inputs, which its seq2seq models then read correctly, and turns only this head back, whose attention
    pools over axis 1."""

    def __init__(self, regression: nn.Module):
        super().__init__()
        self.inner = regression
        regression.rnn.batch_first = True

    def forward(self, join: torch.Tensor) -> torch.Tensor:
        return self.inner(join.transpose(0, 1))


def compare_mctn(root: Path) -> tuple[float, float]:
    """Largest |difference| of the scores and of the total training loss (translation errors and L1), eval mode."""
    config = build_config(MCTN, info(), MCTN.presets["mosi"])
    args = SimpleNamespace(hid_dim=config.hidden_size, output_dim=FEATURE_DIMS[0], max_seq_len=BATCH, use_bert=False)
    torch.manual_seed(0)
    theirs = load_mmsa_model(root, "MCTN").MCTN(args)
    randomise_biases(theirs, 1)
    theirs.seq2seq1.device = theirs.seq2seq2.device = "cpu"     # MMSA hard-codes "cuda" for the decoder outputs
    ours = MCTN(config, info()).network
    copy_weights(theirs, ours, MCTN_NAMES)
    theirs.regression = BatchFirstRegression(theirs.regression)
    inputs = random_inputs(2)
    label = torch.randn(BATCH, generator=torch.Generator().manual_seed(3))
    time_major = [x.transpose(0, 1) for x in (inputs.text, inputs.audio, inputs.vision)]    # (L, B, D)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        their_loss, their_score = theirs(*time_major, label.view(-1, 1), lengths=None)
        outputs = ours(inputs, translate=True)
        translation = outputs["vision_error"] + outputs["text_error"] + outputs["audio_error"]
        our_loss = torch.nn.functional.l1_loss(outputs["score"], label) + config.translation_weight * translation
    return float((their_score.squeeze(-1) - outputs["score"]).abs().max()), float((their_loss - our_loss).abs())


# --- MFM ------------------------------------------------------------------------------------------------------------

MFM_NAMES = {**{"mfn_encoder." + theirs: "mfn." + ours for theirs, ours in MFN_NAMES.items()
                if not ours.startswith("head")},      # MFM never calls its MFN's output layers; ours has none
             "encoder_l.lstm": "encoders.0.cell", "encoder_l.fc1": "encoders.0.out",
             "encoder_a.lstm": "encoders.1.cell", "encoder_a.fc1": "encoders.1.out",
             "encoder_v.lstm": "encoders.2.cell", "encoder_v.fc1": "encoders.2.out",
             "decoder_l.lstm": "decoders.0.cell", "decoder_l.fc1": "decoders.0.out",
             "decoder_a.lstm": "decoders.1.cell", "decoder_a.fc1": "decoders.1.out",
             "decoder_v.lstm": "decoders.2.cell", "decoder_v.fc1": "decoders.2.out",
             "last_to_zy_fc1": "to_zy", "zy_to_fy_fc1": "zy_to_fy.0", "zy_to_fy_fc2": "zy_to_fy.3",
             "zl_to_fl_fc1": "z_to_f.0.0", "zl_to_fl_fc2": "z_to_f.0.3", "za_to_fa_fc1": "z_to_f.1.0",
             "za_to_fa_fc2": "z_to_f.1.3", "zv_to_fv_fc1": "z_to_f.2.0", "zv_to_fv_fc2": "z_to_f.2.3",
             "fy_to_y_fc1": "head.0", "fy_to_y_fc2": "head.3"}


def compare_mfm(root: Path, preset: str) -> tuple[float, float, float]:
    """Largest |difference| of the scores, the weighted reconstruction error and the MMD sum (the MMD's normal
    draws made from the same seed on both sides), eval mode."""
    c = build_config(MFM, info(), MFM.presets[preset])
    (zl, za, zv), (fl, fa, fv), (dl, da, dv), (xl, xa, xv) = c.z_sizes, c.f_sizes, c.z_dropouts, c.lda_x
    args = SimpleNamespace(
        feature_dims=FEATURE_DIMS, hidden_dims=c.hidden_dims, memsize=c.memsize, windowsize=2,
        train_mode="regression", num_classes=1, device="cpu", zy_size=c.zy_size, zl_size=zl, za_size=za,
        zv_size=zv, fy_size=c.fy_size, fl_size=fl, fa_size=fa, fv_size=fv, zy_to_fy_dropout=c.zy_dropout,
        zl_to_fl_dropout=dl, za_to_fa_dropout=da, zv_to_fv_dropout=dv, fy_to_y_dropout=c.fy_dropout,
        lda_mmd=c.lda_mmd, lda_xl=xl, lda_xa=xa, lda_xv=xv,
        NN1Config={"shapes": c.att1_size, "drop": c.att1_dropout},
        NN2Config={"shapes": c.att2_size, "drop": c.att2_dropout},
        gamma1Config={"shapes": c.gamma1_size, "drop": c.gamma1_dropout},
        gamma2Config={"shapes": c.gamma2_size, "drop": c.gamma2_dropout},
        outConfig={"shapes": 8, "drop": 0.0})      # sizes MMSA's MFN's unused output layers only
    load_mmsa_model(root, "MFN")                   # MFM imports it as .MFN
    torch.manual_seed(0)
    theirs = load_mmsa_model(root, "MFM").MFM(args)
    randomise_biases(theirs, 1)
    ours = MFM(c, info()).network
    copy_weights(theirs, ours, MFM_NAMES)
    inputs = random_inputs(2)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        torch.manual_seed(4)
        score, generation, mmd, _ = theirs(inputs.text, inputs.audio, inputs.vision)
        torch.manual_seed(4)
        outputs = ours(inputs, generate=True)
    return (float((score.squeeze(-1) - outputs["score"]).abs().max()),
            float((generation - outputs["reconstruction"]).abs()), float((mmd - outputs["mmd"]).abs()))


# --- Graph-MFN ------------------------------------------------------------------------------------------------------

GRAPH_MFN_NAMES = {"lstm_l": "cells.0", "lstm_a": "cells.1", "lstm_v": "cells.2", "l_transform": "singletons.0",
                   "a_transform": "singletons.1", "v_transform": "singletons.2",
                   **{f"graph_mfn.vertex_list.{i}.{theirs}": f"graph.vertices.{i}.{ours}"
                      for i in range(4) for theirs, ours in (("0", "0"), ("1.0", "1"))},
                   "graph_mfn.t_network.0": "graph.tau.0", "graph_mfn.t_network.1.0": "graph.tau.1",
                   "graph_mfn.efficacy_model.0": "graph.efficacy.0.0",
                   "graph_mfn.efficacy_model.1.0": "graph.efficacy.0.1",
                   "graph_mfn.efficacy_model.2": "graph.efficacy.1",
                   "att2_fc1": "proposal.0", "att2_fc2": "proposal.3", "gamma1_fc1": "retain_gate.0",
                   "gamma1_fc2": "retain_gate.3", "gamma2_fc1": "update_gate.0", "gamma2_fc2": "update_gate.3",
                   "out_fc1": "head.0", "out_fc2": "head.3"}


def compare_graph_mfn(root: Path, preset: str) -> float:
    c = build_config(GraphMFN, info(), GraphMFN.presets[preset])
    args = SimpleNamespace(
        feature_dims=FEATURE_DIMS, hidden_dims=c.hidden_dims, memsize=c.memsize, inner_node_dim=c.inner_node_dim,
        train_mode="regression", num_classes=1, device="cpu",
        NNConfig={"shapes": c.proposal_size, "drop": c.proposal_dropout},
        gamma1Config={"shapes": c.gamma1_size, "drop": c.gamma1_dropout},
        gamma2Config={"shapes": c.gamma2_size, "drop": c.gamma2_dropout},
        outConfig={"shapes": c.out_size, "drop": c.out_dropout})
    torch.manual_seed(0)
    theirs = load_mmsa_model(root, "Graph_MFN").Graph_MFN(args)
    # MMSA keeps the vertex networks in a plain dict, out of its parameters (fault 1 of graph-mfn in the README):
    # registered here, in MMSA's order, only so that their weights are drawn, randomised and copied like the rest.
    theirs.graph_mfn.vertex_list = nn.ModuleList(theirs.graph_mfn.networks.values())
    randomise_biases(theirs, 1)
    ours = GraphMFN(c, info()).network
    copy_weights(theirs, ours, GRAPH_MFN_NAMES)
    inputs = random_inputs(2)
    theirs.eval(), ours.eval()
    with torch.no_grad():
        expected = theirs(inputs.text, inputs.audio, inputs.vision)["M"].squeeze(-1)
        actual = ours(inputs)["score"]
    return float((expected - actual).abs().max())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mmsa", type=Path, help="a checkout of github.com/thuiar/MMSA")
    root = parser.parse_args().mmsa
    torch.set_num_threads(1)
    for preset in ("mosi", "mosei", "sims", "sims-v2"):
        print(f"mfn ({preset} preset): largest |forward difference| {compare_mfn(root, preset):.3g}")
    for preset in ("mosi", "mosei", "sims"):
        score, generation, mmd = compare_mfm(root, preset)
        print(f"mfm ({preset} preset): largest |forward difference| {score:.3g}, "
              f"|reconstruction loss difference| {generation:.3g}, |MMD difference| {mmd:.3g}")
    for preset in ("mosi", "mosei", "sims", "sims-v2"):
        print(f"graph-mfn ({preset} preset): largest |forward difference| {compare_graph_mfn(root, preset):.3g}")
    score, loss = compare_mctn(root)
    print(f"mctn (MMSA's one preset): largest |forward difference| {score:.3g}, |loss difference| {loss:.3g}")


if __name__ == "__main__":
    main()
