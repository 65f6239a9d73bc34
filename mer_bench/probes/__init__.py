"""Modality reliance (text dominance) and robustness probes, run on any model through `predict` alone.

The runner calls `run_probes` once, after the scored test prediction; the probes never train and never change the
model. The package has one module per job:

- `run`: the probe conditions of one run (`ProbePlan`) and the result dict (`run_probes`, `PROBES_VERSION`);
- `perturb`: the perturbed inputs (a modality emptied, swapped between samples, masked, or noised);
- `passes`: predicting many perturbed versions of the test split in as few `predict` calls as memory allows;
- `analysis`: the arithmetic (drops, reliance shares, curve areas, the conflict analysis).

docs/probes.md describes every number the probes report.
"""

from mer_bench.probes.run import ABLATIONS, PROBES_VERSION, RATES, ProbePlan, run_probes

__all__ = ["ABLATIONS", "PROBES_VERSION", "RATES", "ProbePlan", "run_probes"]
