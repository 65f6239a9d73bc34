"""The plugin example in docs/plugins.md, installed with pip exactly as written, is listed and runnable."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.entry_points import run_cli

PLUGIN_DOC = Path(__file__).resolve().parents[1] / "docs" / "plugins.md"


def readme_plugin_files() -> dict[str, str]:
    """The `pyproject.toml` and `mer_bench_ridge.py` blocks of the "Writing a model plugin" section."""
    section = PLUGIN_DOC.read_text().split("## Writing a model plugin", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"`([\w.]+)`:\n\n```\w+\n(.*?)```", section, flags=re.S)
    return {name: code for name, code in blocks}


def test_readme_example_is_short_and_complete():
    files = readme_plugin_files()
    assert set(files) == {"pyproject.toml", "mer_bench_ridge.py"}
    assert len(files["mer_bench_ridge.py"].strip().splitlines()) <= 50
    assert len(files["pyproject.toml"].strip().splitlines()) + len(
        [line for line in files["mer_bench_ridge.py"].splitlines() if line.strip() and not line.startswith("#")]) < 80


def test_readme_plugin_installs_lists_and_runs(tmp_path):
    package = tmp_path / "mer-bench-ridge"
    package.mkdir()
    for name, code in readme_plugin_files().items():
        (package / name).write_text(code)
    site = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
                    "--target", str(site), str(package)], check=True, capture_output=True, timeout=300)

    listed = run_cli(["models", "list", "--json"], site)
    assert listed.returncode == 0, listed.stderr
    row = next(row for row in json.loads(listed.stdout) if row["name"] == "ridge")
    assert (row["plugin"], row["distribution"]) == ("ridge", "mer-bench-ridge")

    out = tmp_path / "out"
    ran = run_cli(["run", "ridge", "--dataset", "synthetic", "--seeds", "1111", "--out", str(out), "--no-probes"], site)
    assert ran.returncode == 0, ran.stderr
    result = json.loads(next((out / "synthetic" / "ridge").glob("*.json")).read_text())
    regression = result["metrics"]["test"]["all"]["regression"]
    assert regression["has0_acc2"] > 0.75   # the synthetic data is linearly learnable; the mean predictor gets 0.65
    assert result["model"]["config"] == {"l2": 10.0}
