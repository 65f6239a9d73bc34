"""Sweeps: models x datasets x seeds x hyperparameters, run resumably on one machine or on a Slurm cluster.

A sweep is described by a grid file (TOML)::

    description = "CMC's reference search space"      # optional
    results = "../results/cmc-reference"              # result store, relative to this file (required)
    selections = "../results/cmc-reference-selections"  # optional; default: <results>-selections
    datasets = ["sims", "sims-v2"]                    # for every model, unless a model lists its own
    seeds = [1111, 1112, 1113]                        # likewise
    text_mode = "features"                            # optional: "features" or "bert"
    epochs = 30                                       # optional epoch budget per training stage
    probes = true                                     # optional: run the modality probes (default true)
    data_dir = "/data/mmsa"                           # optional, as `mer-bench run --data-dir`

    [models.cmc]                                      # one table per model
    grid = { layers = [1, 2, 3, 4, 5], heads = [1, 2, 4, 8], out_dropout = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5] }
    settings = { lr = 0.001 }                         # optional: held fixed in every configuration
    # datasets, seeds, text_mode and epochs may be given here too, for this model only

    [models.mean]                                     # no grid: the model's defaults, one configuration

Every combination of a model's grid values is one configuration; each configuration runs once per dataset and seed.
A grid may have at most `mer_bench.sweep.grid.MAX_GRID_RUNS` (100,000) runs, counted before any is built; split a
larger search into several files. Seeds are integers from 0 to 2**32-1 (what numpy and torch seeding accept). Every
dataset of the grid must be found (``data_dir``, else $MER_BENCH_DATA, else the default data folder) before `plan`,
`run` or `select` start, since the data's checksum is part of each run's id.
Each run is a `RunSpec` and is trained exactly as `mer-bench run` trains it, into the same result file
``<results>/<dataset>/<model>/<run-id>.json``, named by the spec's hash: a finished run is never redone, so a sweep
resumes where it stopped, and two sweeps sharing a results folder skip each other's work (see
`mer_bench.sweep.store` for the lock and failure files kept beside the results).

Modules: `grid` (reading and checking grid files), `store` (run states, locks, failure records, time estimates),
`worker` (one run inside a worker), `local` (worker processes on this machine), `slurm` (job arrays through
submitit), `select` (choosing configurations on the validation split; the selection file format is documented
there), `view` (the live progress view).
"""

from mer_bench.sweep.grid import GridError, ModelGrid, SweepGrid, load_grid, parse_grid
from mer_bench.sweep.store import RunState, scan

__all__ = ["GridError", "ModelGrid", "RunState", "SweepGrid", "load_grid", "parse_grid", "scan"]
