"""mer-bench: a benchmark and evaluation suite for multimodal emotion and sentiment recognition."""

from importlib.metadata import PackageNotFoundError, version

from mer_bench.threads import prefer_short_spinning

prefer_short_spinning()   # before anything imports torch: OpenMP reads its wait policy once (see threads.py)

try:
    __version__ = version("mer-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
