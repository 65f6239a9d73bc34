"""Make a plugin visible to a fresh `mer-bench` process through real entry-point metadata, without pip.

A `<name>.dist-info` folder with METADATA and entry_points.txt on PYTHONPATH is exactly what an installed
distribution looks like to `importlib.metadata`, so the subprocess discovers the plugin as users' installs are.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path


def write_plugin_distribution(site: Path, distribution: str, modules: dict[str, str], entry_points: dict[str, str],
                              version: str = "0.1.0") -> Path:
    """Write modules (name -> source) and a dist-info registering `entry_points` (plugin name -> module)."""
    site.mkdir(parents=True, exist_ok=True)
    for module, source in modules.items():
        (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{distribution.replace('-', '_')}-{version}.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {distribution}\nVersion: {version}\n")
    lines = "\n".join(f"{name} = {target}" for name, target in entry_points.items())
    (info / "entry_points.txt").write_text(f"[mer_bench]\n{lines}\n")
    return site


def run_cli(args: list[str], site: Path | None = None, cwd: Path | None = None, timeout: float = 300,
            **popen) -> subprocess.CompletedProcess:
    """Run `python -m mer_bench ARGS` in a fresh process that also sees the plugins under `site`."""
    return subprocess.run([sys.executable, "-m", "mer_bench", *args], env=cli_environment(site), cwd=cwd,
                          capture_output=True, text=True, timeout=timeout, **popen)


def cli_environment(site: Path | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1")
    if site is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH", "")]))
    return env
