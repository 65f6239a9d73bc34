"""The `cmc` and `cmc-gt` models: both CMC stages inside one `fit`, 3-class probabilities and router gates out."""

from __future__ import annotations

import copy

import torch
from torch import nn

from mer_bench.bert import chosen_bert, load_bert
from mer_bench.data import Split
from mer_bench.errors import UserError
from mer_bench.model import DataInfo, FitContext, Predictions, TorchModel
from mer_bench.training import epoch_budget
from mer_bench_cmc.claims import claims_record, plgm_claims
from mer_bench_cmc.config import CMCConfig, check_cmc_config, preset_config
from mer_bench_cmc.encoders import MODALITIES, BertText
from mer_bench_cmc.inputs import FrozenBert, SplitTensors
from mer_bench_cmc.networks import CMCNet, UnimodalNet
from mer_bench_cmc.stage1 import Stage1, Stage1Result
from mer_bench_cmc.stage2 import Stage2, infer
from mer_bench_cmc.supcon import binary_rule
from mer_bench_cmc.transfer import transferred_state


class CMC(TorchModel):
    """CMC with pseudo unimodal labels (PLGM) in stage 1; runs on every dataset."""

    name = "cmc"
    summary = "CMC (Zhong et al. 2025): PLGM pseudo-label unimodal pretraining, then PFM + top-k router fine-tuning"
    Config = CMCConfig
    outputs = frozenset({"probs"})
    text_modes = ("features", "bert")
    smoke_settings = {"layers": 1, "heads": 2, "embed_dim": 8, "batch_size": 16, "eval_batch_size": 64,
                      "patience": 2}
    pseudo_labels = True           # False: stage 1 trains on ground-truth unimodal labels (cmc-gt)

    def __init__(self, config: CMCConfig, info: DataInfo):
        super().__init__(config, info)
        self.check_config(config)
        text_model = None
        if info.text_mode == "bert":
            text_model = BertText(load_bert(chosen_bert(config.bert_model, info.text_model), info.seq_lens[0]))
        self.in_dims = (text_model.hidden_size if text_model is not None else info.feature_dims[0],
                        info.feature_dims[1], info.feature_dims[2])
        self.network = CMCNet(self.in_dims, config, text_model)
        self.rule = binary_rule(info.style)

    @classmethod
    def default_config(cls, info: DataInfo) -> CMCConfig:
        return preset_config(cls.name, info)

    @classmethod
    def check_config(cls, config: CMCConfig) -> None:
        check_cmc_config(config)

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        config = self.config
        generator = torch.Generator().manual_seed(ctx.seed)   # data order; dropout and init use the seeded global RNG
        self.network.to(ctx.device)
        tensors = tuple(SplitTensors.from_split(split, self.info.text_mode, ctx.device, config.masked_pooling)
                        for split in (train, valid))
        stage1_inputs = self._text_inputs(tensors, config.finetune_bert_stage1, ctx)
        result = self._stage1(*stage1_inputs, ctx, generator)
        # read-only comparisons of labels already on hand: no RNG draw, no forward pass, predictions unchanged
        self.plgm_record = plgm_claims(result.train_targets, result.valid_targets, *tensors, self.pseudo_labels)
        self.network.load_state_dict(transferred_state(self.network.state_dict(), result.states))
        stage2_inputs = stage1_inputs
        if config.finetune_bert_stage1 or config.finetune_bert_stage2:
            # otherwise BERT is frozen and the same in both stages, so stage 1's BERT features (or BERT) serve again
            stage2_inputs = self._text_inputs(tensors, config.finetune_bert_stage2, ctx)
        self._stage2(*stage2_inputs, result, ctx, generator)

    def _text_inputs(self, tensors: tuple[SplitTensors, SplitTensors], trained: bool,
                     ctx: FitContext) -> tuple[SplitTensors, SplitTensors, FrozenBert | None]:
        """(train, valid, frozen BERT) as a stage reads them. Without BERT, or with BERT trained in the stage, the
        splits as they are; with a frozen BERT, its eval-mode features cached once per split, or (without the cache)
        the token ids and the frozen BERT to run on every batch."""
        bert = self._bert()
        if bert is None or trained:
            return (*tensors, None)
        frozen = FrozenBert(bert, self.config.amp)
        if not self.config.cache_frozen_bert:
            return (*tensors, frozen)
        return (*self._cached(frozen, ctx, *tensors), None)

    def _stage1(self, train: SplitTensors, valid: SplitTensors, frozen: FrozenBert | None, ctx: FitContext,
                generator: torch.Generator) -> Stage1Result:
        config, bert = self.config, self._bert()
        # A BERT trained in stage 1 is a copy inside the text student; stage 2 gets its weights by transfer.
        text_model = BertText(copy.deepcopy(bert.model)) if bert is not None and config.finetune_bert_stage1 else None
        students = nn.ModuleList(UnimodalNet(modality, dim, config, text_model if modality == "text" else None)
                                 for modality, dim in zip(MODALITIES, self.in_dims)).to(ctx.device)
        epochs = epoch_budget(config.epochs, ctx.max_epochs)
        ctx.progress.start_stage("stage 1: unimodal pretraining", epochs)
        stage = Stage1(students, train, valid, config, self.rule, frozen, pseudo=self.pseudo_labels)
        return stage.run(epochs, config.patience, generator, ctx.progress, model_name=self.name)

    def _stage2(self, train: SplitTensors, valid: SplitTensors, frozen: FrozenBert | None, result: Stage1Result,
                ctx: FitContext, generator: torch.Generator) -> None:
        config, bert = self.config, self._bert()
        if bert is not None:
            bert.requires_grad_(config.finetune_bert_stage2)
        epochs = epoch_budget(config.epochs, ctx.max_epochs)
        ctx.progress.start_stage("stage 2: multimodal fine-tuning", epochs)
        stage = Stage2(self.network, train, valid, result.train_targets, result.valid_targets, config, self.rule,
                       frozen)
        stage.run(epochs, config.patience, generator, ctx.progress, model_name=self.name)
        if bert is not None:
            bert.requires_grad_(True)

    def _cached(self, frozen: FrozenBert, ctx: FitContext, *splits: SplitTensors) -> tuple[SplitTensors, ...]:
        ctx.progress.start_stage("frozen BERT features", len(splits))
        cached = []
        for tensors in splits:
            cached.append(frozen.cache(tensors, self.config.eval_batch_size))
            ctx.progress.advance()
        return tuple(cached)

    def _bert(self) -> BertText | None:
        return getattr(self.network, "text_model", None)

    def predict(self, split: Split) -> Predictions:
        device = next(self.network.parameters()).device
        tensors = SplitTensors.from_split(split, self.info.text_mode, device, self.config.masked_pooling)
        probs, gates = infer(self.network, tensors, self.config.eval_batch_size, self.config.amp)
        return Predictions(probs=probs, extras={"gates": gates})

    def claim_checks(self, test: Predictions, subsets: dict[str, torch.Tensor] | None, probes: dict | None) -> dict:
        """The run's "claims" record (mer_bench_cmc.claims), after the fit: PLGM from fit, router on the test split."""
        return claims_record(getattr(self, "plgm_record", None), test.extras.get("gates"), subsets, probes)


class CMCGT(CMC):
    """CMC-GT: stage 1 on the ground-truth unimodal labels (SIMS-style datasets only)."""

    name = "cmc-gt"
    summary = "CMC-GT: CMC with ground-truth unimodal labels in stage 1 (SIMS-style datasets with T/A/V labels only)"
    pseudo_labels = False

    @classmethod
    def check_dataset(cls, info: DataInfo) -> None:
        super().check_dataset(info)
        if not info.has_unimodal_labels:
            raise UserError(f"Model 'cmc-gt' trains on ground-truth unimodal (T/A/V) labels, which dataset "
                            f"'{info.dataset}' does not have (only SIMS-style datasets do). Use 'cmc', which "
                            f"derives pseudo unimodal labels instead.")

    def fit(self, train: Split, valid: Split, ctx: FitContext) -> None:
        if train.unimodal_labels is None or valid.unimodal_labels is None:
            raise UserError("Model 'cmc-gt' needs unimodal labels in the train and valid splits.")
        super().fit(train, valid, ctx)
