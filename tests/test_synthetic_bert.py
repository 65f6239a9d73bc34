"""Text mode "bert" on generated data: the random-init small BERT, the models that exist only inside BERT picking
that mode by themselves, the BERT named in the result file, and texts longer than BERT's positions refused."""

from __future__ import annotations

import pytest
import torch

from mer_bench.bert import RANDOM_SMALL_BERT, load_bert
from mer_bench.cli import main
from mer_bench.data.synthetic import VOCAB_SIZE
from mer_bench.errors import UserError
from mer_bench.plugins import get_catalog
from mer_bench.results import read_result
from mer_bench.runner import make_spec

TINY = "synthetic+sizes-40x20x20"


def invoke(args, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(args)
    captured = capsys.readouterr()
    return exit_info.value.code, captured.out, captured.err


def weights(bert: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().flatten() for p in bert.parameters()])


def test_the_random_bert_is_drawn_from_the_seed_and_covers_the_synthetic_vocabulary():
    torch.manual_seed(5)
    first = load_bert(RANDOM_SMALL_BERT)
    torch.manual_seed(5)
    again = load_bert(RANDOM_SMALL_BERT)
    torch.manual_seed(6)
    other = load_bert(RANDOM_SMALL_BERT)
    assert torch.equal(weights(first), weights(again))
    assert not torch.equal(weights(first), weights(other))
    assert first.config.vocab_size == VOCAB_SIZE and first.config.num_hidden_layers == 2
    ids = torch.tensor([[101, VOCAB_SIZE - 1, 102]])
    assert first(input_ids=ids).last_hidden_state.shape == (1, 3, 32)


def test_a_text_longer_than_the_position_table_is_refused_up_front():
    with pytest.raises(UserError, match="has 512 positions, but the text is padded to 600 tokens"):
        load_bert(RANDOM_SMALL_BERT, text_len=600)
    assert load_bert(RANDOM_SMALL_BERT, text_len=512).config.max_position_embeddings == 512


def test_generated_datasets_name_the_random_bert():
    catalog = get_catalog()
    assert catalog.dataset("synthetic").value.text_model == RANDOM_SMALL_BERT
    assert catalog.dataset("mosi").value.text_model == "bert-base-uncased"


@pytest.mark.parametrize("model,expected", [("cenet", "bert"), ("mag-bert", "bert"), ("misa", "features"),
                                            ("lf-dnn", "features")])
def test_without_a_text_mode_a_model_reads_features_if_it_can_else_its_only_mode(model, expected):
    spec = make_spec(get_catalog(), model, "synthetic", 1)
    assert spec.text_mode == expected


def test_an_explicit_text_mode_the_model_lacks_is_still_refused(capsys, tmp_path):
    code, out, err = invoke(["run", "cenet", "--dataset", TINY, "--seeds", "1", "--text-mode", "features",
                             "--out", str(tmp_path)], capsys)
    assert code == 2 and "--text-mode bert only" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))


@pytest.mark.parametrize("model", ["cenet", "mag-bert"])
def test_bert_only_models_run_on_synthetic_with_no_flag_and_record_their_bert(model, capsys, tmp_path):
    code, _, err = invoke(["run", model, "--dataset", TINY, "--seeds", "1", "--epochs", "1", "--threads", "1",
                           "--out", str(tmp_path)], capsys)
    assert code == 0, err
    (path,) = tmp_path.rglob("*.json")
    result = read_result(path)
    assert result.spec.text_mode == "bert"
    assert result.model["bert"] == RANDOM_SMALL_BERT
    assert "--text-mode bert" in result.command


def test_a_features_run_records_no_bert(capsys, tmp_path):
    code, _, err = invoke(["run", "mean", "--dataset", TINY, "--seeds", "1", "--out", str(tmp_path)], capsys)
    assert code == 0, err
    (path,) = tmp_path.rglob("*.json")
    assert "bert" not in read_result(path).model


def test_a_member_whose_text_outgrows_bert_fails_in_one_line(capsys, tmp_path):
    code, _, err = invoke(["run", "cenet", "--dataset", "synthetic+sizes-20x10x10+lens-600x10x10", "--seeds", "1",
                           "--epochs", "1", "--out", str(tmp_path)], capsys)
    assert code == 2 and "512 positions" in err and "Traceback" not in err
    assert not list(tmp_path.rglob("*.json"))
