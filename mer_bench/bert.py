"""Loading BERT for text mode "bert": a Hugging Face name or a local folder, with a clear error when offline."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from mer_bench.errors import UserError

# The BERT of generated data: their token ids are no language (mer_bench.data.synthetic draws them from a made-up
# vocabulary), so a pretrained checkpoint would bring nothing it knows; a small BERT is initialised from the run's
# seed and learns the ids from scratch. The name cannot be a Hugging Face id or a folder (it has a colon).
RANDOM_SMALL_BERT = "random-init:small-bert"


def chosen_bert(setting: str, dataset_bert: str) -> str:
    """The BERT a run reads: the model's `bert_model` setting when given, else the dataset's. Models load it and the
    runner records it through this one rule, so `model.bert` in a result file is the BERT that was loaded."""
    return setting or dataset_bert


def load_bert(name_or_path: str, text_len: int | None = None) -> torch.nn.Module:
    """A `transformers.BertModel` from a local folder (config.json + weights) or the local Hugging Face cache.

    The hub is asked only when the model is not available locally and HF_HUB_OFFLINE is not set, so an offline
    machine fails at once with instructions instead of waiting on network timeouts. `RANDOM_SMALL_BERT` is built
    from `small_bert_config` with weights drawn from torch's generator (seeded by the harness for each run).
    """
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    if name_or_path == RANDOM_SMALL_BERT:
        return _check_positions(BertModel(small_bert_config(), add_pooling_layer=False), name_or_path, text_len)
    hf_logging.set_verbosity_error()   # "weights not initialised" chatter is expected for pooler-free checkpoints
    hf_logging.disable_progress_bar()  # a progress bar per load would interleave with mer-bench's own
    return _check_positions(_load_checkpoint(BertModel, name_or_path), name_or_path, text_len)


def _load_checkpoint(model_class, name_or_path: str) -> torch.nn.Module:
    local_folder = Path(name_or_path).expanduser()
    if local_folder.is_dir():
        return _from_pretrained(model_class, str(local_folder), local_only=True)
    try:
        return _from_pretrained(model_class, name_or_path, local_only=True)
    except UserError:
        if os.environ.get("HF_HUB_OFFLINE") == "1":
            raise
    return _from_pretrained(model_class, name_or_path, local_only=False)


def _check_positions(bert: torch.nn.Module, name: str, text_len: int | None) -> torch.nn.Module:
    """A text padded past BERT's position table would fail deep inside the embedding layer; say so up front."""
    positions = bert.config.max_position_embeddings
    if text_len is not None and text_len > positions:
        raise UserError(f"BERT '{name}' has {positions} positions, but the text is padded to {text_len} tokens; "
                        f"use data with at most {positions} text steps.")
    return bert


def _from_pretrained(model_class, name: str, local_only: bool) -> torch.nn.Module:
    try:
        return model_class.from_pretrained(name, local_files_only=local_only, add_pooling_layer=False)
    except (OSError, ValueError) as error:
        raise UserError(
            f"BERT weights '{name}' are not available ({type(error).__name__}). Save them once on a machine with "
            f"internet (python -c \"from transformers import BertModel, BertTokenizer; "
            f"BertModel.from_pretrained('{name}').save_pretrained('DIR')\") and pass --set bert_model=DIR."
        ) from None


def small_bert_config():
    """`RANDOM_SMALL_BERT`: two layers (CENET feeds its second), hidden size 32, the synthetic ids' vocabulary, and
    BERT's 512 positions so any padded text length of the synthetic family fits."""
    from transformers import BertConfig

    from mer_bench.data.synthetic import VOCAB_SIZE

    return BertConfig(vocab_size=VOCAB_SIZE, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=512)


def tiny_bert_config(vocab_size: int = 3100):
    """A small randomly initialised BERT configuration for tests (the synthetic token ids are below 3050)."""
    from transformers import BertConfig

    return BertConfig(vocab_size=vocab_size, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                      intermediate_size=64, max_position_embeddings=128)


def save_tiny_bert(directory: Path, seed: int = 0) -> Path:
    """Write a tiny random BERT to `directory` (config.json + weights), loadable by `load_bert`."""
    from transformers import BertModel
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(seed)
    BertModel(tiny_bert_config(), add_pooling_layer=False).save_pretrained(directory)
    return Path(directory)
