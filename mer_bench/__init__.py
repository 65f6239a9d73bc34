"""mer-bench: a benchmark and evaluation suite for multimodal emotion and sentiment recognition."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("mer-bench")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__"]
