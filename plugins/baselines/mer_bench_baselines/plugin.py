"""Entry point of the baselines plugin: registers every baseline model."""

from mer_bench.hookspecs import hookimpl
from mer_bench_baselines.mean import MeanPredictor


@hookimpl
def register_models(register):
    register(MeanPredictor)
