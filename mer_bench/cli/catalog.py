"""`mer-bench models list` and `mer-bench datasets list`."""

from __future__ import annotations

import json

import click
from rich.table import Table

from mer_bench.cli.console import stdout as console
from mer_bench.plugins import get_catalog



@click.group("models")
def models_group() -> None:
    """Models registered by the installed plugins."""


@models_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_models(as_json: bool) -> None:
    """List every model, the plugin it came from, its outputs and text modes."""
    rows = [{"name": entry.name, "plugin": entry.plugin, "distribution": entry.distribution,
             "version": entry.version, "outputs": sorted(entry.value.outputs),
             "text_modes": list(entry.value.text_modes), "summary": entry.value.summary}
            for entry in sorted(get_catalog().models.values(), key=lambda e: (e.plugin, e.name))]
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("model", "plugin", "outputs", "text modes", "summary", title="Models")
    for row in rows:
        table.add_row(row["name"], f"{row['plugin']} ({row['distribution']} {row['version']})",
                      ", ".join(row["outputs"]), ", ".join(row["text_modes"]), row["summary"])
    console.print(table)


@click.group("datasets")
def datasets_group() -> None:
    """Datasets registered by the installed plugins."""


@datasets_group.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
def list_datasets(as_json: bool) -> None:
    """List every dataset with its label style, shapes and expected split sizes."""
    rows = []
    for entry in sorted(get_catalog().datasets.values(), key=lambda e: e.name):
        spec = entry.value
        rows.append({"name": spec.name, "title": spec.title, "plugin": entry.plugin, "style": spec.style,
                     "feature_dims": list(spec.feature_dims), "seq_lens": list(spec.seq_lens),
                     "split_sizes": list(spec.split_sizes) if spec.split_sizes else None,
                     "unimodal_labels": spec.has_unimodal_labels, "text_model": spec.text_model,
                     "synthetic": spec.synthetic, "files": list(spec.relative_paths)})
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    table = Table("dataset", "title", "style", "dims T/A/V", "lengths T/A/V", "train/valid/test", "unimodal labels",
                  title="Datasets")
    for row in rows:
        sizes = "/".join(map(str, row["split_sizes"])) if row["split_sizes"] else "?"
        table.add_row(row["name"], row["title"] + (" (synthetic)" if row["synthetic"] else ""), row["style"],
                      "/".join(map(str, row["feature_dims"])), "/".join(map(str, row["seq_lens"])), sizes,
                      "yes" if row["unimodal_labels"] else "no")
    console.print(table)
