"""Entry point of the CMC plugin."""

from mer_bench.hookspecs import hookimpl


@hookimpl
def register_models(register):
    """Registers `cmc` and `cmc-gt` once they are implemented."""
