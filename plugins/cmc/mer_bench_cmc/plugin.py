"""Entry point of the CMC plugin: registers `cmc` and `cmc-gt`."""

from mer_bench.hookspecs import hookimpl
from mer_bench_cmc.model import CMC, CMCGT


@hookimpl
def register_models(register):
    register(CMC)
    register(CMCGT)
