"""What a result records about where it was produced: versions, commit, hardware."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import numpy as np
import torch

import mer_bench
from mer_bench.training import device_name


def git_commit(directory: Path) -> str | None:
    """HEAD of the git checkout holding `directory`, with '+dirty' when it has uncommitted changes; None outside git."""
    def git(*args: str) -> str:
        return subprocess.run(["git", "-C", str(directory), *args], capture_output=True, text=True, timeout=10,
                              check=True).stdout.strip()
    try:
        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+dirty" if dirty else "")


def environment(device: torch.device, plugin: dict[str, str]) -> dict[str, object]:
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "mer_bench": mer_bench.__version__,
        "plugin": plugin,
        "git_commit": git_commit(Path(mer_bench.__file__).parent),
        "device": str(device),
        "device_name": device_name(device),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
    }
