"""CMC's claim checks ("claims" in its result file) are filled on a tiny run, for cmc and cmc-gt, and its model page
shows them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mer_bench.plugins import get_catalog
from mer_bench.runner import RunOptions, data_checksum, make_spec, run_many

DATASET = "synthetic+sizes-48x24x40+text_conflict-0.4"   # a tiny member with many text conflicts


@pytest.mark.parametrize("model", ["cmc", "cmc-gt"])
def test_claim_checks_are_recorded_after_a_tiny_run_and_shown_on_the_model_page(model, tmp_path):
    catalog = get_catalog()
    settings = {key: str(value) for key, value in catalog.model(model).value.smoke_settings.items()}
    spec = make_spec(catalog, model, DATASET, 1, settings, epochs=1, data_sha256=data_checksum(catalog, DATASET))
    (outcome,) = run_many([spec], RunOptions(out_dir=tmp_path / "results", device="cpu", probes=False), catalog)
    claims = json.loads(outcome.path.read_text())["claims"]
    plgm, router = claims["plgm"], claims["router"]
    assert plgm["pseudo_labels"] is (model == "cmc")
    for split in ("train", "valid"):
        assert set(plgm["differs_from_multimodal"][split]) == {"text", "audio", "vision"}
        before = plgm["agreement_with_unimodal"]["before"][split]["text"]
        assert 0.15 < 1 - before < 0.7          # the planted text conflict rate, 0.4, on 24-48 samples
    if model == "cmc-gt":                       # stage 2 trains on the ground truth itself
        assert plgm["agreement_with_unimodal"]["after"]["train"] == {"text": 1.0, "audio": 1.0, "vision": 1.0}
        train = plgm["differs_from_multimodal"]["train"]["text"]
        assert train == pytest.approx(1 - plgm["agreement_with_unimodal"]["before"]["train"]["text"])
    gates = router["mean_gates"]
    assert set(gates) == {"all", "consistent", "inconsistent", "text-conflict"}
    assert sum(gates["all"].values()) == pytest.approx(1.0, abs=1e-4)
    assert router["text_gate_lower_on_text_conflict"] == (gates["text-conflict"]["text"] < gates["consistent"]["text"])
    assert claims["text_reliance_share"] is None                 # probes off in this run
    _model_page_shows_the_claims(tmp_path / "results", model, gates)


def _model_page_shows_the_claims(results: Path, model: str, gates: dict) -> None:
    site = results.parent / f"site-{model}"
    built = subprocess.run([sys.executable, "-m", "mer_bench", "leaderboard", "build", str(results), "--out",
                            str(site)], capture_output=True, text=True)
    assert built.returncode == 0, built.stderr
    (page,) = [path for path in site.rglob("models/*.html") if path.name.startswith(model + "-")]
    html = page.read_text()
    assert 'id="claims"' in html and "Pseudo ≠ multimodal" in html
    consistent, conflict = gates["consistent"]["text"], gates["text-conflict"]["text"]
    assert f"{consistent:.3f} → {conflict:.3f}" in html
