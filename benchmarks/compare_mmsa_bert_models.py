"""Faithfulness check of mmim, almt, cenet and mag-bert against MMSA's own modules (not a test: needs MMSA's code).

For each model, MMSA's network (src/MMSA/models/singleTask/*.py) is built from the same settings as ours with a
tiny random BERT standing in for the pretrained one (MMSA's BertTextEncoder would download weights), our weights are
copied into it by a name map, and both run in eval mode, in text mode "bert", on the same random token ids, audio and
vision. Every sequence is given at its full length, so MMSA's unmasked attention and ours, which never attends to
padding, see the same steps. MAG-BERT reads one audio and vision step per token and masks nothing but BERT's own
attention, so its batch is aligned and has random text lengths (zero audio and vision past them). Printed per model:
the largest absolute difference of the forward outputs and of the loss terms. For ALMT also the learning rate per
epoch of MMSA's scheduler pair against ours.

    python benchmarks/compare_mmsa_bert_models.py /path/to/MMSA      # a checkout of github.com/thuiar/MMSA

MMSA's code is only imported from that path, never copied here. Two packages MMSA needs and this project does not
are stood in for: einops (the four patterns ALMT uses) and pytorch_transformers (the base class CENET's BERT uses);
three helpers of Transformers 4 that MAG-BERT's module calls are given their 4.x meaning (`mmsa_mag_model`).
"""

from __future__ import annotations

import argparse
import copy
import re
import sys
import types
from pathlib import Path
from types import SimpleNamespace

import torch
from torch import nn


sys.path.insert(0, str(Path(__file__).resolve().parent))
from compare_mmsa_multitask import load_module  # noqa: E402  (the one loader of MMSA's files)
from mer_bench.bert import tiny_bert_config  # noqa: E402
from mer_bench.model import DataInfo, build_config  # noqa: E402
from mer_bench_baselines.almt import ALMT, warmup_cosine  # noqa: E402
from mer_bench_baselines.cenet import CENET  # noqa: E402
from mer_bench_baselines.common import Inputs, length_mask  # noqa: E402
from mer_bench_baselines.mag_bert import MAGBERT  # noqa: E402
from mer_bench_baselines.mmim import MMIM, EntropyMemory  # noqa: E402

FEATURE_DIMS = (32, 10, 14)        # text = the tiny BERT's hidden size; audio, vision small
SEQ_LENS = (12, 15, 9)
BATCH = 16


def install_stand_ins(bert: nn.Module) -> None:
    """MMSA's package skeleton, a BertTextEncoder around `bert`, einops and pytorch_transformers stand-ins."""
    for package in ("MMSA", "MMSA.models", "MMSA.models.singleTask", "MMSA.trains", "MMSA.trains.singleTask"):
        sys.modules.setdefault(package, types.ModuleType(package)).__path__ = []

    class BertTextEncoder(nn.Module):        # MMSA's forward: ids, mask, segments -> last hidden states
        def __init__(self, **_):
            super().__init__()
            self.model = copy.deepcopy(bert)

        def forward(self, text):
            return self.model(input_ids=text[:, 0].long(), attention_mask=text[:, 1].float(),
                              token_type_ids=text[:, 2].long())[0]

    sys.modules["MMSA.models.subNets"] = SimpleNamespace(BertTextEncoder=BertTextEncoder)
    sys.modules["einops"] = SimpleNamespace(rearrange=_rearrange, repeat=_repeat)
    sys.modules["pytorch_transformers"] = SimpleNamespace(BertConfig=object, BERT_PRETRAINED_MODEL_ARCHIVE_MAP={})
    sys.modules["pytorch_transformers.modeling_utils"] = SimpleNamespace(PreTrainedModel=_PreTrainedModel,
                                                                         prune_linear_layer=None)
    metrics = SimpleNamespace(getMetics=lambda dataset: None)
    sys.modules["MMSA.utils"] = SimpleNamespace(MetricsTop=lambda mode: metrics, dict_to_str=str)


def _rearrange(x: torch.Tensor, pattern: str, h: int | None = None) -> torch.Tensor:
    if pattern == "b n (h d) -> b h n d":
        return x.unflatten(-1, (h, -1)).transpose(1, 2)
    assert pattern == "b h n d -> b n (h d)", pattern
    return x.transpose(1, 2).flatten(2)


def _repeat(x: torch.Tensor, pattern: str, b: int) -> torch.Tensor:
    assert pattern in ("1 n d -> b n d", "1 1 d -> b 1 d"), pattern
    return x.expand(b, -1, -1)


class _PreTrainedModel(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config

    def init_weights(self):
        self.apply(self._init_weights)


def tiny_bert(layers: int) -> nn.Module:
    from transformers import BertModel

    config = tiny_bert_config()
    config.num_hidden_layers = layers
    return BertModel(config, add_pooling_layer=False).eval()


def info() -> DataInfo:
    return DataInfo(dataset="compare", style="mosi", feature_dims=FEATURE_DIMS, seq_lens=SEQ_LENS,
                    has_unimodal_labels=False, text_model="", text_mode="bert")


def random_batch(generator: torch.Generator) -> Inputs:
    full = lambda length: torch.full((BATCH,), length, dtype=torch.long)  # noqa: E731
    rand = lambda *shape: torch.randn(*shape, generator=generator)  # noqa: E731
    (_, da, dv), (lt, la, lv) = FEATURE_DIMS, SEQ_LENS
    ids = torch.stack([torch.randint(1, 3000, (BATCH, lt), generator=generator), torch.ones(BATCH, lt).long(),
                       torch.zeros(BATCH, lt).long()], dim=1)                   # (B, 3, Lt)
    return Inputs(index=torch.arange(BATCH), label=rand(BATCH).clamp(-3, 3), text=None, text_ids=ids,
                  text_lengths=full(lt), audio=rand(BATCH, la, da), audio_lengths=full(la), vision=rand(BATCH, lv, dv),
                  vision_lengths=full(lv))


def build(model_class, settings: dict, bert: nn.Module):
    """Our model in text mode "bert" around a copy of `bert` (TextInput would load a folder)."""
    from mer_bench_baselines import common

    original = common.load_bert
    common.load_bert = lambda name: copy.deepcopy(bert)
    try:
        return model_class(build_config(model_class, info(), settings), info())
    finally:
        common.load_bert = original


def copy_into(theirs: nn.Module, ours: nn.Module, rules: list[tuple[str, str]]) -> None:
    """Load our tensors into MMSA's network: each MMSA name is ours after the (pattern, replacement) rules."""
    state, ours_state, seen = theirs.state_dict(), ours.state_dict(), set()
    for name in state:
        our_name = name
        for pattern, replacement in rules:
            our_name = re.sub(pattern, replacement, our_name)
        if our_name not in ours_state:
            if name.startswith(("bert.pooler", "bert.embeddings.position_ids")) or "position_ids" in name:
                continue
            raise KeyError(f"MMSA's {name} -> {our_name}: not one of ours")
        state[name] = ours_state[our_name].reshape(state[name].shape).clone()
        seen.add(our_name)
    missing = {n for n in ours_state if n not in seen and "position_ids" not in n}
    assert not missing, f"our tensors without an MMSA counterpart: {sorted(missing)}"
    theirs.load_state_dict(state)


def gap(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.reshape(-1).double() - b.reshape(-1).double()).abs().max())


MMIM_RULES = [(r"^bertmodel\.model\.", "text_model.bert."), (r"^(visual|acoustic)_enc\.rnn\.", r"\1_enc.lstm.rnn."),
              (r"^(visual|acoustic)_enc\.linear_1\.", r"\1_enc.linear."), (r"^mi_(tv|ta|va)\.", r"mmilb.\1."),
              (r"^cpc_z([tva])\.", r"cpc.\1."), (r"^fusion_prj\.", "fusion.")]


def compare_mmim(root: Path, bert: nn.Module, generator: torch.Generator) -> dict[str, float]:
    model = build(MMIM, {}, bert)
    c = model.config
    args = SimpleNamespace(
        use_bert=True, train_mode="regression", num_classes=1, need_data_aligned=False, add_va=c.add_va,
        feature_dims=list(FEATURE_DIMS), use_finetune=True, transformers="bert", pretrained="", d_vh=c.d_vh,
        d_ah=c.d_ah, d_vout=c.d_vout, d_aout=c.d_aout, n_layer=c.n_layer, dropout_v=c.dropout_v,
        dropout_a=c.dropout_a, bidirectional=c.bidirectional, mmilb_mid_activation="ReLU",
        mmilb_last_activation="Tanh", d_prjh=c.d_prjh, cpc_layers=c.cpc_layers, cpc_activation="Tanh",
        dropout_prj=c.dropout_prj)
    theirs = load_module(root / "src/MMSA/models/singleTask/MMIM.py", "MMSA.models.singleTask.MMIM").MMIM(args)
    copy_into(theirs, model.network, MMIM_RULES)
    theirs.eval(), model.network.eval()
    first, second = random_batch(generator), random_batch(generator)
    mmsa_inputs = lambda b: (b.text_ids.float(), (b.audio, b.audio_lengths), (b.vision, b.vision_lengths))  # noqa
    with torch.no_grad():
        remembered = theirs(*mmsa_inputs(first), y=first.label.view(-1, 1), mem={"tv": None, "ta": None})["pn_dic"]
        mem = {pair: {kind: [remembered[pair][kind]] for kind in ("pos", "neg")} for pair in ("tv", "ta")}
        their_out = theirs(*mmsa_inputs(second), y=second.label.view(-1, 1), mem=mem)
        model.memory = EntropyMemory(c.mem_size)
        for batch in (first, first):                # MMSA adds the entropy from the (mem_size + 1)-th batch on
            model.memory.entropy(model.network, model.network(batch), batch.label)
        ours = model.network(second)
        our_loss = model.training_loss(second, ours, epoch=1)
    their_loss = (nn.L1Loss()(their_out["M"], second.label.view(-1, 1)) + c.alpha * their_out["nce"]
                  - c.beta * their_out["lld"] - c.beta * their_out["H"])    # MMSA's train_others, from batch 2 on
    return {"output": gap(their_out["M"], ours["score"]), "lld": gap(their_out["lld"], ours["lld"]),
            "nce": gap(their_out["nce"], ours["nce"]), "loss": gap(their_loss, our_loss)}


ALMT_LAYER_RULES = [(r"layers\.(\d+)\.0\.norm_", r"layers.\1.norm_"),
                    (r"layers\.(\d+)\.0\.fn\.to_out\.0\.", r"layers.\1.attention.to_out."),
                    (r"layers\.(\d+)\.0\.fn\.", r"layers.\1.attention."),
                    (r"layers\.(\d+)\.1\.norm\.", r"layers.\1.norm_ff."),
                    (r"layers\.(\d+)\.1\.fn\.net\.0\.", r"layers.\1.feed_forward.0."),
                    (r"layers\.(\d+)\.1\.fn\.net\.3\.", r"layers.\1.feed_forward.2.")]
ALMT_RULES = [(r"^bertmodel\.model\.", "text_input.bert."),
              *[(rf"^embedding_{m}\.0\.", f"embed.{i}.project.") for i, m in enumerate("lav")],
              *[(rf"^embedding_{m}\.1\.pos_embedding$", f"embed.{i}.positions") for i, m in enumerate("lav")],
              *[(rf"^embedding_{m}\.1\.extra_token$", f"embed.{i}.tokens") for i, m in enumerate("lav")],
              *[(rf"^embedding_{m}\.1\.encoder\.", f"embed.{i}.") for i, m in enumerate("lav")],
              (r"^l_encoder\.pos_embedding$", "language_positions"), (r"^l_encoder\.encoder\.layers", "language_layers"),
              (r"^h_hyper$", "hyper_tokens"),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.norm1", r"hyper_layers.\1.norm_t"),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.norm2", r"hyper_layers.\1.norm_a"),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.norm3", r"hyper_layers.\1.norm_v"),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.norm4", r"hyper_layers.\1.norm_hyper"),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.fn\.to_out\.0\.", r"hyper_layers.\1.to_out."),
              (r"^h_hyper_layer\.layers\.(\d+)\.0\.fn\.", r"hyper_layers.\1."),
              (r"^fusion_layer\.pos_embedding_s$", "fusion_positions.source"),
              (r"^fusion_layer\.pos_embedding_t$", "fusion_positions.target"),
              (r"^fusion_layer\.extra_token$", "fusion_token"),
              (r"^fusion_layer\.CrossTransformerEncoder\.layers", "fusion_layers"),
              *ALMT_LAYER_RULES]


def compare_almt(root: Path, bert: nn.Module, generator: torch.Generator) -> dict[str, float]:
    model = build(ALMT, {}, bert)            # MMSA's MOSI preset (its head is fixed to 128 inputs and 8 tokens)
    c = model.config
    args = SimpleNamespace(
        use_bert=True, use_finetune=True, transformers="bert", pretrained="", feature_dims=list(FEATURE_DIMS),
        feature_length=list(SEQ_LENS), dst_feature_dims=c.dst_feature_dims,
        dst_feature_hidden_dims=c.dst_feature_hidden_dims, dst_embedding_length=c.dst_embedding_length,
        embedding_depth=list(c.embedding_depth), embedding_heads=list(c.embedding_heads),
        l_encoder_heads=c.l_encoder_heads, AHL_depth=c.AHL_depth, h_hyper_layer_heads=c.h_hyper_layer_heads,
        fusion_hidden_d=c.fusion_hidden_d, fusion_heads=c.fusion_heads, fusion_layer_depth=c.fusion_layer_depth)
    theirs = load_module(root / "src/MMSA/models/singleTask/ALMT.py", "MMSA.models.singleTask.ALMT").ALMT(args)
    copy_into(theirs, model.network, ALMT_RULES)
    theirs.eval(), model.network.eval()
    batch = random_batch(generator)
    with torch.no_grad():
        their_score = theirs(batch.text_ids.float(), batch.audio, batch.vision)
        ours = model.network(batch)
    their_loss = nn.MSELoss()(their_score, batch.label.view(-1, 1))
    return {"output": gap(their_score, ours["score"]),
            "loss": gap(their_loss, model.training_loss(batch, ours, epoch=1)),
            "learning rate": schedule_gap(root, c.learning_rate)}


def schedule_gap(root: Path, learning_rate: float) -> float:
    """Largest difference of the per-epoch learning rate, MMSA's warm-up + cosine pair against ours, over schedules
    of 200 (MMSA's) and 30 epochs, each run 20 epochs past its end."""
    trainer = load_module(root / "src/MMSA/trains/singleTask/ALMT.py", "MMSA.trains.singleTask.ALMT")
    worst = 0.0
    for total in (200, 30):
        optimizer = torch.optim.AdamW([nn.Parameter(torch.zeros(1))], lr=learning_rate)
        scheduler = trainer.get_scheduler(optimizer, total)
        for epoch in range(1, total + 21):
            ours = learning_rate * warmup_cosine(epoch - 1, total)
            worst = max(worst, abs(optimizer.param_groups[0]["lr"] - ours))
            optimizer.step()
            scheduler.step()             # MMSA steps it once after each epoch's validation
    return worst


CENET_RULES = [(r"^bert\.encoder\.CE\.", "enhance."), (r"^bert\.", "text_input.bert."),
               (r"^classifier\.dense\.", "head.1."), (r"^classifier\.out_proj\.", "head.4.")]


def compare_cenet(root: Path, bert: nn.Module, generator: torch.Generator) -> dict[str, float]:
    model = build(CENET, {}, bert)           # MMSA injects before layer 1: the tiny BERT has two layers
    config = SimpleNamespace(**bert.config.to_dict())
    config.num_labels, config.output_attentions, config.output_hidden_states = 1, False, False
    module = load_module(root / "src/MMSA/models/singleTask/CENET.py", "MMSA.models.singleTask.CENET")
    theirs = module.CENET(config, args=SimpleNamespace(feature_dims=list(FEATURE_DIMS)))
    copy_into(theirs, model.network, CENET_RULES)
    theirs.eval(), model.network.eval()
    batch = random_batch(generator)
    with torch.no_grad():
        their_score = theirs(batch.text_ids.float(), batch.audio, batch.vision)[0]
        ours = model.network(batch)
    their_loss = nn.L1Loss()(their_score, batch.label.view(-1, 1))
    return {"output": gap(their_score, ours["score"]),
            "loss": gap(their_loss, model.training_loss(batch, ours, epoch=1))}


MAG_BERT_RULES = [(r"^bert\.MAG\.W_hv\.", "gate.gate_vision."), (r"^bert\.MAG\.W_ha\.", "gate.gate_audio."),
                  (r"^bert\.MAG\.W_v\.", "gate.project_vision."), (r"^bert\.MAG\.W_a\.", "gate.project_audio."),
                  (r"^bert\.MAG\.LayerNorm\.", "gate.norm."), (r"^bert\.pooler\.dense\.", "pooler.0."),
                  (r"^bert\.", "text_input.bert."), (r"^classifier\.", "head.1.")]


def aligned_batch(generator: torch.Generator) -> Inputs:
    """A random batch with one audio and vision step per token and random text lengths (padding zeroed)."""
    batch = random_batch(generator)
    length = batch.text_ids.shape[-1]
    lengths = torch.randint(3, length + 1, (BATCH,), generator=generator)                 # (B,)
    valid = length_mask(lengths, length)                                                    # (B, Lt)
    ids = batch.text_ids.clone()
    ids[:, 0] *= valid
    ids[:, 1] = valid.long()
    audio = batch.audio[:, :1].expand(-1, length, -1) + torch.randn(BATCH, length, FEATURE_DIMS[1], generator=generator)
    vision = torch.randn(BATCH, length, FEATURE_DIMS[2], generator=generator)
    zero_padding = lambda x: x * valid.unsqueeze(-1)  # noqa: E731
    return Inputs(index=batch.index, label=batch.label, text=None, text_ids=ids, text_lengths=lengths,
                  audio=zero_padding(audio), audio_lengths=lengths, vision=zero_padding(vision), vision_lengths=lengths)


def mmsa_mag_model(module: types.ModuleType, config, args) -> nn.Module:
    """MMSA's MAG_BertForSequenceClassification (BERT_MAG's inner model, built without a download) under the
    transformers installed here: MMSA calls three helpers that transformers 5 dropped, so they are stood in for with
    their 4.x meaning (additive attention mask, no head mask, an encoder returning a tuple). Its initialisation is
    skipped, as every tensor is overwritten by ours."""
    for model_class in (module.MAG_BertModel, module.MAG_BertForSequenceClassification):
        model_class.init_weights = lambda self: None
    module.MAG_BertModel.get_extended_attention_mask = lambda self, mask, shape, device: (
        (1.0 - mask[:, None, None, :].float()) * torch.finfo(torch.float32).min)
    module.MAG_BertModel.get_head_mask = lambda self, head_mask, layers: None
    model = module.MAG_BertForSequenceClassification(config, args)
    encoder = model.bert.encoder
    run_layers = encoder.forward
    encoder.forward = lambda hidden, attention_mask=None, **_: (run_layers(hidden, attention_mask=attention_mask)[0],)
    return model


def compare_mag_bert(root: Path, bert: nn.Module, generator: torch.Generator) -> dict[str, float]:
    from transformers import BertConfig

    model = build(MAGBERT, {}, bert)           # MMSA's MOSI preset
    c = model.config
    module = load_module(root / "src/MMSA/models/singleTask/BERT_MAG.py", "MMSA.models.singleTask.BERT_MAG")
    args = SimpleNamespace(feature_dims=list(FEATURE_DIMS), beta_shift=c.beta_shift, dropout_prob=c.dropout_prob,
                           device=torch.device("cpu"))
    settings = {k: v for k, v in bert.config.to_dict().items() if k not in ("id2label", "label2id")}
    config = BertConfig(**settings, num_labels=1)
    theirs = mmsa_mag_model(module, config, args)
    copy_into(theirs, model.network, MAG_BERT_RULES)
    theirs.eval(), model.network.eval()
    batch = aligned_batch(generator)
    ids = batch.text_ids
    with torch.no_grad():
        their_score = theirs(ids[:, 0], batch.vision, batch.audio, attention_mask=ids[:, 1].float(),
                             token_type_ids=ids[:, 2])[0]
        ours = model.network(batch)
    their_loss = nn.L1Loss()(their_score, batch.label.view(-1, 1))
    return {"output": gap(their_score, ours["score"]),
            "loss": gap(their_loss, model.training_loss(batch, ours, epoch=1))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mmsa", type=Path, help="a checkout of github.com/thuiar/MMSA")
    root = parser.parse_args().mmsa
    torch.manual_seed(0)
    bert = tiny_bert(layers=2)
    install_stand_ins(bert)
    for name, compare in (("mmim", compare_mmim), ("almt", compare_almt), ("cenet", compare_cenet),
                          ("mag-bert", compare_mag_bert)):
        gaps = compare(root, bert, torch.Generator().manual_seed(0))
        print(f"{name:8s} " + ", ".join(f"{key} {value:.2g}" for key, value in gaps.items()))


if __name__ == "__main__":
    main()
