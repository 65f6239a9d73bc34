"""Faithfulness check of the aligned-input baselines against MMSA's own modules (not a test: it needs an MMSA
checkout).

For each model, MMSA's network (src/MMSA/models/singleTask/*.py) is built from the same settings as ours, its
weights are copied into ours by a name map (biases first redrawn at random so that every tensor matters), and both
run in eval mode on the same random aligned inputs (every modality of one length, every step valid, as MMSA's
aligned files are read). Printed per model: the largest absolute difference of the forward outputs.

    python benchmarks/compare_mmsa_aligned.py /path/to/MMSA      # a checkout of github.com/thuiar/MMSA

MMSA's code is only imported from that path, never copied here.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from mer_bench.model import DataInfo, build_config
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mfn import MFN

FEATURE_DIMS = (24, 10, 14)        # (text, audio, vision): small, the maths does not depend on the sizes
LENGTH = 9                         # aligned: one length for every modality
BATCH = 16


def load_module(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_mmsa_model(root: Path, file: str) -> types.ModuleType:
    """MMSA's model module, with its packages stubbed (only the module itself is run)."""
    for package in ("MMSA", "MMSA.models", "MMSA.models.singleTask", "MMSA.models.subNets"):
        sys.modules.setdefault(package, types.ModuleType(package)).__path__ = []
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mmsa", type=Path, help="a checkout of github.com/thuiar/MMSA")
    root = parser.parse_args().mmsa
    torch.set_num_threads(1)
    for preset in ("mosi", "mosei", "sims", "sims-v2"):
        print(f"mfn ({preset} preset): largest |forward difference| {compare_mfn(root, preset):.3g}")


if __name__ == "__main__":
    main()
