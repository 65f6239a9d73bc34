"""CMC hyperparameters and the per-dataset presets of the reference implementation.

Defaults are the reference's (`main.py` of gw-zhong/CMC) unless a field says otherwise. Fields that switch a fix of
the reference on are off by default, so a plain run measures the method as published; the plugin README lists them.
"""

from __future__ import annotations

from dataclasses import dataclass

from mer_bench.errors import UserError
from mer_bench.model import DataInfo

EMA_BUFFER_MODES = ("reference", "copy", "ema")
VALID_TARGET_MODES = ("moving", "fixed")
SNAPSHOT_MODES = ("any", "per-modality")


@dataclass
class CMCConfig:
    """Hyperparameters of `cmc` and `cmc-gt`. Settable with ``--set key=value``; tuples as ``a,b,c``."""

    # Architecture (the three tuned values come from the per-dataset presets below)
    layers: int = 2                      # transformer layers per modality encoder (reference --transformer_layers)
    heads: int = 4                       # attention heads (reference --nhead); must divide embed_dim
    out_dropout: float = 0.4             # dropout inside the residual heads (reference --out_dropout)
    embed_dim: int = 32                  # width d of every encoder (fixed to 32 in the reference)
    dropout: float = 0.1                 # transformer dropout (PyTorch's default, which the reference keeps)
    attention_dropout: bool = True       # dropout on attention weights as the reference; False allows the fused
                                         # attention kernel (much faster on CPU, slightly different training)
    masked_pooling: bool = False         # fix: ignore padding in attention and mean pooling (reference: no masks)

    # Optimisation (both stages)
    batch_size: int = 64                 # training batch size; also the chunk size of the validation SupCon term
    lr: float = 1e-3                     # Adam learning rate of everything except BERT
    lr_bert: float = 5e-5                # Adam learning rate of BERT weights (text mode "bert", when fine-tuned)
    weight_decay_bert: float = 1e-3      # coupled L2 on BERT weights except biases and LayerNorm (Adam, as reference)
    epochs: int = 100                    # maximum epochs per stage (a run's --epochs budget overrides it)
    patience: int = 10                   # epochs without validation improvement before a stage stops

    # Stage 1: PLGM pseudo labels and EMA teachers, per modality (text, audio, vision)
    label_momentum: tuple[float, ...] = (0.8, 0.99, 0.99)   # initial pseudo-label momentum m_k
    label_gamma: tuple[float, ...] = (0.5, 0.5, 0.5)        # schedule exponent: m = 1 - (1 - m0) / epoch**gamma
    ema_momentum: tuple[float, ...] = (0.8, 0.9, 0.6)       # initial EMA-teacher momentum mu_k
    ema_gamma: tuple[float, ...] = (2.5, 5.0, 2.0)          # EMA schedule exponent, same formula
    ema_buffers: str = "reference"       # teachers' BatchNorm statistics: "reference" keeps their initial values
                                         # (the reference averages parameters only), "copy" copies the student's,
                                         # "ema" averages them like the parameters
    alpha_eps: float = 1e-8              # added to the denominator of PLGM's alpha (reference: none, 0/0 risk)
    valid_targets: str = "moving"        # stage-1 validation pseudo labels: "moving" (reference: start at the valid
                                         # multimodal labels, updated from student predictions) or "fixed"
    label_snapshot: str = "any"          # which pseudo labels stage 2 gets: "any" (reference: those of the last
                                         # epoch where any modality improved) or "per-modality" (each modality's
                                         # labels from the epoch its teacher was selected)

    # Stage 2: PFM + MCR
    pfm_temperature: float = 0.07        # tau of the parameter-free fusion softmax (reference --temperature)
    supcon_temperature: float = 0.07     # tau of the SupCon loss (reference --pretrain_temperature)
    top_k: int = 3                       # experts kept by the router (3 = dense gating, the reference default)
    mask_unselected_experts: bool = False  # fix for top_k < 3: drop the CE of experts the router did not select
                                         # (reference: their zero outputs still enter the loss as ln 3)

    # Text mode "bert"
    bert_model: str | None = None        # BERT name or local folder; None: the dataset's text model
    finetune_bert_stage1: bool = False   # train BERT in stage 1 (reference: cmc no, cmc-gt yes)
    finetune_bert_stage2: bool = True    # train BERT in stage 2 (reference: yes)
    cache_frozen_bert: bool = True       # run a frozen BERT once in eval mode and reuse its outputs; False runs it on
                                         # every batch in train mode as the reference does (BERT dropout active)

    # Speed
    eval_batch_size: int = 256           # batch size of validation and prediction passes (results do not depend
                                         # on it: validation SupCon is still computed per batch_size chunk)
    amp: bool = True                     # bf16 autocast of the encoders and BERT on CUDA (heads, fusion, losses
                                         # and pseudo labels stay float32); no effect on the CPU


# (layers, heads, out_dropout) from the reference README; cmc-gt only for the SIMS datasets.
REFERENCE_PRESETS = {
    "cmc": {"sims": (5, 4, 0.4), "sims-v2": (4, 2, 0.3), "mosi": (2, 4, 0.5), "mosei": (2, 4, 0.0)},
    "cmc-gt": {"sims": (1, 2, 0.1), "sims-v2": (4, 8, 0.1)},
}
# Ours, not the reference's: one small layer keeps `mer-bench run cmc --dataset synthetic` to about two minutes on
# two CPU cores (see the plugin README for the measured time).
SYNTHETIC_PRESET = (1, 2, 0.1)


def preset_config(model_name: str, info: DataInfo) -> CMCConfig:
    """The config a run gets before ``--set``: reference defaults, the dataset's preset, the variant's BERT schedule."""
    layers, heads, out_dropout = _preset(model_name, info.dataset)
    return CMCConfig(layers=layers, heads=heads, out_dropout=out_dropout,
                     finetune_bert_stage1=model_name == "cmc-gt")


def _preset(model_name: str, dataset: str) -> tuple[int, int, float]:
    if dataset == "synthetic":
        return SYNTHETIC_PRESET
    presets = REFERENCE_PRESETS[model_name]
    if dataset in presets:
        return presets[dataset]
    defaults = CMCConfig()
    return defaults.layers, defaults.heads, defaults.out_dropout


def check_cmc_config(config: CMCConfig) -> None:
    """Raise `UserError` for settings that cannot work together, before any training starts (each setting's type
    and bounds are checked for every model by `mer_bench.model_config`)."""
    problems = []
    if config.embed_dim % config.heads:
        problems.append(f"heads={config.heads} must divide embed_dim={config.embed_dim}")
    if not 1 <= config.top_k <= 3:
        problems.append(f"top_k={config.top_k} must be 1, 2 or 3")
    for name in ("label_momentum", "label_gamma", "ema_momentum", "ema_gamma"):
        if len(getattr(config, name)) != 3:
            problems.append(f"{name} needs three values (text, audio, vision)")
    for name, allowed in (("ema_buffers", EMA_BUFFER_MODES), ("valid_targets", VALID_TARGET_MODES),
                          ("label_snapshot", SNAPSHOT_MODES)):
        if getattr(config, name) not in allowed:
            problems.append(f"{name}={getattr(config, name)!r} is not one of {', '.join(allowed)}")
    if config.batch_size < 2 or config.eval_batch_size < 1:
        problems.append("batch_size must be at least 2 and eval_batch_size at least 1")
    if problems:
        raise UserError("Invalid CMC settings: " + "; ".join(problems) + ".")
