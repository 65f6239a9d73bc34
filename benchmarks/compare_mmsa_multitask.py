"""Faithfulness check of mlf-dnn, mtfn and mlmf against MMSA's own modules (not a test: it needs an MMSA checkout).

For each model, MMSA's network (src/MMSA/models/multiTask/*.py) is built from the same settings as ours, its weights
are copied into ours by a name map (batch-norm running statistics and biases first drawn at random so that every
tensor matters), and both run in eval mode on the same random inputs. Every sequence is given at its full length, so
MMSA's unpacked text LSTM and time average over the padded length see exactly what our packed LSTM and masked mean
see. Printed per model: the largest absolute difference over the four outputs (M, T, A, V), the difference of the
training loss (MMSA's trainer formula: sum over MTAV of weight x L1), and the parameters whose Adam learning rate or
weight decay differs from what MMSA's trainer gives them (its `do_train` is run until it has built its optimiser).

    python benchmarks/compare_mmsa_multitask.py /path/to/MMSA      # a checkout of github.com/thuiar/MMSA

MMSA's code is only imported from that path, never copied here.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn

from mer_bench.model import DataInfo, build_config
from mer_bench_baselines.common import Inputs
from mer_bench_baselines.mlf_dnn import MLFDNN
from mer_bench_baselines.mlmf import MLMF
from mer_bench_baselines.mtfn import MTFN

FEATURE_DIMS = (24, 10, 14)        # (text, audio, vision): small, the maths does not depend on the sizes
SEQ_LENS = (9, 12, 7)
BATCH = 16
TASK_KEYS = (("M", "score"), ("T", "score_text"), ("A", "score_audio"), ("V", "score_vision"))
MODELS = {"mlf-dnn": (MLFDNN, "MLF_DNN"), "mtfn": (MTFN, "MTFN"), "mlmf": (MLMF, "MLMF")}
MODALITY = {"text": "text", "audio": "audio", "video": "vision"}


class StopAfterOptimiser(Exception):
    """Raised by the stand-in Adam once MMSA's trainer has handed it its parameter groups."""


def load_module(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load_mmsa_trainer(root: Path, file: str) -> types.ModuleType:
    """MMSA's trainer module, with its package and `...utils` stubbed (only its optimiser set-up is used)."""
    for package in ("MMSA", "MMSA.trains", "MMSA.trains.multiTask"):
        sys.modules.setdefault(package, types.ModuleType(package)).__path__ = []
    metrics = SimpleNamespace(getMetics=lambda dataset: None)
    sys.modules["MMSA.utils"] = SimpleNamespace(MetricsTop=lambda mode: metrics, dict_to_str=str)
    return load_module(root / "src/MMSA/trains/multiTask" / f"{file}.py", f"MMSA.trains.multiTask.{file}")


def mmsa_args(config) -> SimpleNamespace:
    """MMSA's `args` for our config: its field names and its (audio, vision, text) / (text, audio, vision, fusion)
    dropout orders."""
    c = config
    fusion_dropout = getattr(c, "post_fusion_dropout", 0.0)
    args = dict(feature_dims=FEATURE_DIMS, hidden_dims=c.hidden_dims, dropouts=c.dropouts,
                post_dropouts=(*c.post_dropouts, fusion_dropout), post_text_dim=c.post_text_dim,
                post_audio_dim=c.post_audio_dim, post_video_dim=c.post_video_dim, train_mode="regression",
                num_classes=3, dataset_name="sims", learning_rate=c.learning_rate, weight_decay=c.weight_decay,
                text_weight_decay=c.text_weight_decay, audio_weight_decay=c.audio_weight_decay,
                video_weight_decay=c.video_weight_decay, M=c.fusion_loss_weight, T=c.text_loss_weight,
                A=c.audio_loss_weight, V=c.vision_loss_weight, device="cpu")
    for optional in ("text_out", "post_fusion_dim", "rank", "factor_lr"):
        if hasattr(c, optional):
            args[optional] = getattr(c, optional)
    return SimpleNamespace(**args)


def our_name(mmsa_name: str) -> str | None:
    """Our state-dict key for an MMSA key; None for MMSA's fixed output range and shift (constants here)."""
    rules = (
        (r"^(audio|video)_subnet\.norm\.(.*)$", lambda m: f"subnets.{MODALITY[m[1]]}_subnet.norm.{m[2]}"),
        (r"^(audio|video)_subnet\.linear_(\d)\.(.*)$",
         lambda m: f"subnets.{MODALITY[m[1]]}_subnet.layers.{2 * int(m[2]) - 1}.{m[3]}"),
        (r"^text_subnet\.rnn\.(.*)$", lambda m: f"subnets.text_subnet.lstm.rnn.{m[1]}"),
        (r"^text_subnet\.linear_1\.(.*)$", lambda m: f"subnets.text_subnet.linear.{m[1]}"),
        (r"^post_fusion_layer_(\d)\.(.*)$", lambda m: f"FUSION.{2 * int(m[1]) - 1}.{m[2]}"),
        (r"^post_(text|audio|video)_layer_(\d)\.(.*)$",
         lambda m: f"heads.{MODALITY[m[1]]}.{2 * int(m[2]) - 1}.{m[3]}"),
        (r"^(audio|video|text)_factor$", lambda m: f"{MODALITY[m[1]]}_factor"),
        (r"^fusion_weights$", lambda m: "rank_weights"),
        (r"^fusion_bias$", lambda m: "bias"),
    )
    for pattern, rename in rules:
        match = re.match(pattern, mmsa_name)
        if match:
            return rename(match)
    if mmsa_name in ("output_range", "output_shift"):
        return None
    raise KeyError(f"no mapping for MMSA's {mmsa_name}")


def randomise_statistics(module: nn.Module, generator: torch.Generator) -> None:
    """Random batch-norm running statistics and biases, so eval mode exercises every copied tensor."""
    with torch.no_grad():
        for name, tensor in module.state_dict().items():
            if name.endswith("running_mean") or name.endswith("bias"):
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
            elif name.endswith("running_var"):
                tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)


def copy_weights(theirs: nn.Module, ours: nn.Module, fusion_prefix: str) -> dict[str, str]:
    """Load MMSA's tensors into our network; returns our name -> MMSA's name. Every tensor of ours must be set."""
    state, names = ours.state_dict(), {}
    for mmsa_name, tensor in theirs.state_dict().items():
        name = our_name(mmsa_name)
        if name is None:
            continue
        name = name.replace("FUSION", fusion_prefix)
        state[name] = tensor.reshape(state[name].shape).clone()
        names[name] = mmsa_name
    missing = set(state) - set(names)
    assert not missing, f"our tensors not set from MMSA: {sorted(missing)}"
    ours.load_state_dict(state)
    return names


def random_batch(generator: torch.Generator) -> Inputs:
    full = lambda length: torch.full((BATCH,), length, dtype=torch.long)  # noqa: E731
    rand = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    (dt, da, dv), (lt, la, lv) = FEATURE_DIMS, SEQ_LENS
    return Inputs(index=torch.arange(BATCH), label=rand(BATCH).clamp(-1, 1), text=rand(BATCH, lt, dt), text_ids=None,
                  text_lengths=full(lt), audio=rand(BATCH, la, da), audio_lengths=full(la), vision=rand(BATCH, lv, dv),
                  vision_lengths=full(lv))


def optimiser_settings(groups: list[dict], defaults: dict) -> dict[int, tuple[float, float]]:
    """id(parameter) -> (learning rate, weight decay), a group's own values before Adam's defaults."""
    return {id(p): (group.get("lr", defaults.get("lr")), group.get("weight_decay", defaults.get("weight_decay", 0.0)))
            for group in groups for p in group["params"]}


def mmsa_optimiser_settings(trainer_module: types.ModuleType, class_name: str, args, network: nn.Module):
    """Run MMSA's `do_train` until it builds Adam, and read the learning rate and decay it gives each tensor."""
    captured = {}

    def adam(groups, **defaults):
        captured.update(optimiser_settings(groups, defaults))
        raise StopAfterOptimiser

    trainer_module.optim = SimpleNamespace(Adam=adam)
    wrapper = nn.Module()
    wrapper.Model = network              # MMSA's AMIO wraps every network as `.Model`
    try:
        getattr(trainer_module, class_name)(args).do_train(wrapper, dataloader=None)
    except StopAfterOptimiser:
        pass
    return captured


def compare(root: Path, model_name: str) -> None:
    model_class, file = MODELS[model_name]
    # MTFN hard-codes a (-3, 3) output range; a MOSI-style DataInfo gives ours the same range.
    info = DataInfo(dataset="compare", style="mosi", feature_dims=FEATURE_DIMS, seq_lens=SEQ_LENS,
                    has_unimodal_labels=True, text_model="")
    small = {"hidden_dims": (16, 6, 8), **({"text_out": 8} if model_name != "mlmf" else {})}
    config = build_config(model_class, info, small)          # MMSA's SIMS preset, smaller subnetworks
    generator = torch.Generator().manual_seed(0)
    torch.manual_seed(0)
    args = mmsa_args(config)
    theirs = getattr(load_module(root / "src/MMSA/models/multiTask" / f"{file}.py", f"mmsa_{file}"), file)(args)
    randomise_statistics(theirs, generator)
    model = model_class(config, info)
    names = copy_weights(theirs, model.network, "post_fusion" if model_name == "mtfn" else "fusion")
    theirs.eval(), model.network.eval()

    batch = random_batch(generator)
    unimodal = torch.rand(BATCH, 3, generator=generator) * 2 - 1
    with torch.no_grad():
        their_out = theirs(batch.text, batch.audio.mean(dim=1, keepdim=True), batch.vision.mean(dim=1, keepdim=True))
        our_out = model.forward(batch)
    output_gap = max(float((their_out[m].view(-1) - our_out[k]).abs().max()) for m, k in TASK_KEYS)

    labels = {"M": batch.label, "T": unimodal[:, 0], "A": unimodal[:, 1], "V": unimodal[:, 2]}
    their_loss = sum(getattr(args, m) * nn.L1Loss()(their_out[m], labels[m].view(-1, 1)) for m, _ in TASK_KEYS)
    model.targets = {"train": torch.cat([batch.label[:, None], unimodal], dim=1)}
    loss_gap = abs(float(their_loss) - float(model.training_loss(batch, our_out, epoch=1)))

    their_groups = mmsa_optimiser_settings(load_mmsa_trainer(root, file), file, args, theirs)
    our_groups = optimiser_settings(model.parameter_groups(), {})
    theirs_by_name = dict(theirs.named_parameters())
    differ: dict[tuple, list[str]] = {}      # (MMSA's (lr, decay), ours) -> MMSA's names of the tensors
    for name, parameter in model.network.named_parameters():
        mmsa, ours = their_groups[id(theirs_by_name[names[name]])], our_groups[id(parameter)]
        if mmsa != ours:
            differ.setdefault((mmsa, ours), []).append(names[name])
    scale = max(float(value.abs().max()) for value in our_out.values())
    print(f"{model_name}: largest output difference {output_gap:.3g} (outputs up to {scale:.3g}), loss difference "
          f"{loss_gap:.3g}; {sum(map(len, differ.values()))} of {len(our_groups)} tensors optimised differently")
    for (mmsa, ours), tensors in differ.items():
        print(f"    (lr, weight decay) MMSA {mmsa}, ours {ours}: {', '.join(tensors)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mmsa", type=Path, help="root of a thuiar/MMSA checkout (holds src/MMSA)")
    parser.add_argument("--models", default=",".join(MODELS), help="comma-separated subset of " + ",".join(MODELS))
    options = parser.parse_args()
    if not (options.mmsa / "src/MMSA/models/multiTask").is_dir():
        parser.exit(2, f"error: {options.mmsa} is not an MMSA checkout (no src/MMSA/models/multiTask)\n")
    torch.set_num_threads(1)
    for name in options.models.split(","):
        if name not in MODELS:
            parser.exit(2, f"error: unknown model {name!r} (choose from {', '.join(MODELS)})\n")
        compare(options.mmsa, name)


if __name__ == "__main__":
    main()
