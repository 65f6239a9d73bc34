"""Speed and memory of CMC training on SIMS-v2-shaped synthetic data, next to the official code's figures.

Every case trains both stages for a fixed number of epochs (early stopping off) in its own process, so peak memory
is the case's own, and prints seconds per epoch for each stage, training samples per second and peak memory.

Cases:
- full: the SIMS-v2(s) shapes (2722/647/1034 samples, lengths 50/925/232, dims 768/25/177) with the SIMS-v2 preset,
  in text modes "features" and "bert" (a randomly initialised bert-base from `BertConfig()`). On the CPU the train
  and valid splits are cut to `--cpu-fraction` of their size and the epoch times scaled back up (labelled).
- cut: 256/64/64 samples of the same shapes with the reference hyperparameters (4 layers, 2 heads, dropout 0.3),
  attention dropout on (the reference) and off (our speed option): the setting of the official CPU figures.

    python benchmarks/bench_cmc.py                       # everything, CPU and (when present) CUDA
    python benchmarks/bench_cmc.py --quick               # one epoch per stage, the cut only
    python benchmarks/bench_cmc.py --only cut --official /tmp/cmc-official   # also time the official code

`--official DIR` takes a checkout of github.com/gw-zhong/CMC outside this repository (nothing of it is copied here).
Its own `main.py` runs unchanged on the CPU from a scratch copy; only paths are redirected (`--data_path`,
`--model_path`, its hard-coded BERT folder, through `transformers.BertModel.from_pretrained`, to the same random
bert-base, and on a machine without CUDA the `map_location='cuda'` of its stage-2 checkpoint loader to the CPU). Its
printed per-epoch time (train, valid and test passes) is parsed.

Reference figures of the official code from issue 4 are printed next to ours with the ratio official / ours. On a
busy machine wall times are inflated; the "cpu s" column (process CPU time per epoch) is less sensitive to that.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

FULL_SIZES = (2722, 647, 1034)
CUT_SIZES = (256, 64, 64)

# Seconds per epoch of the official code, from issue 4 (its per-epoch valid and test passes included).
OFFICIAL = {
    ("full", "cuda", "stage 1"): (17.3, "official H100 (H200: 16.2-17.0)"),
    ("full", "cuda", "stage 2"): (11.1, "official H100 (H200: 11.8-12.8)"),
    ("cut", "cpu", "stage 1"): (150.0, "official 2 CPU cores"),
}
PLAIN = {("full", "cuda"): (1.86, "plain encoders H200"), ("cut", "cpu"): (90.0, "plain encoders 2 CPU cores")}


@dataclass
class Case:
    """One benchmark configuration, run in a child process."""

    cut: str                     # "full" or "cut"
    device: str                  # "cpu" or "cuda"
    text_mode: str               # "features" or "bert"
    attention_dropout: bool      # the reference's attention dropout on or off
    epochs: int                  # epochs per stage
    fraction: float = 1.0        # share of train/valid samples used (CPU full-size cases); times scaled by 1/fraction
    threads: int | None = None   # torch CPU threads (None: torch's default)
    bert_dir: str | None = None  # folder of the random bert-base for text mode "bert"


@dataclass
class CaseResult:
    case: Case
    wall: dict[str, list[float]] = field(default_factory=dict)   # stage -> wall seconds per epoch (scaled)
    cpu: dict[str, list[float]] = field(default_factory=dict)    # stage -> process CPU seconds per epoch (scaled)
    train_samples: int = 0                                       # training samples per epoch at full size
    peak_memory_mb: float = 0.0
    memory_kind: str = ""
    device_name: str = ""


class TimingProgress:
    """A progress reporter that records wall and CPU time of every epoch (start_stage -> advance -> advance ...).

    `advance` is called after the epoch's metrics reached the host, so on a GPU the time includes all queued work."""

    def __init__(self) -> None:
        self.wall: dict[str, list[float]] = {}
        self.cpu: dict[str, list[float]] = {}
        self.stage, self.clock = "", (0.0, 0.0)

    def start_stage(self, name: str, total: int | None) -> None:
        self.stage, self.clock = name, (time.perf_counter(), time.process_time())
        self.wall.setdefault(name, [])
        self.cpu.setdefault(name, [])

    def advance(self, **status: float) -> None:
        now = (time.perf_counter(), time.process_time())
        self.wall[self.stage].append(now[0] - self.clock[0])
        self.cpu[self.stage].append(now[1] - self.clock[1])
        self.clock = now


def run_case(case: Case) -> CaseResult:
    """Train one case in this process and measure it."""
    import torch

    from mer_bench.data.builtin import synthetic_spec
    from mer_bench.model import FitContext, build_config
    from mer_bench.runner import data_info
    from mer_bench.training import device_name, seed_everything
    from mer_bench_cmc.model import CMC

    if case.threads:
        torch.set_num_threads(case.threads)
    device = torch.device(case.device)
    sizes = CUT_SIZES if case.cut == "cut" else FULL_SIZES
    data = synthetic_spec("sims-v2", sizes=sizes, name="sims-v2").generate()
    train, valid = _fraction(data.train, case.fraction), _fraction(data.valid, case.fraction)
    info = data_info(data, case.text_mode)
    overrides = {"patience": case.epochs + 1, "attention_dropout": case.attention_dropout}
    if case.bert_dir:
        overrides["bert_model"] = case.bert_dir
    seed_everything(1111)
    model = CMC(build_config(CMC, info, overrides), info)
    progress = TimingProgress()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    model.fit(train, valid, FitContext(device, 1111, Path(tempfile.gettempdir()), progress, max_epochs=case.epochs))
    scale = lambda times: [t / case.fraction for t in times]  # noqa: E731
    result = CaseResult(case, {k: scale(v) for k, v in progress.wall.items()},
                        {k: scale(v) for k, v in progress.cpu.items()}, len(data.train),
                        device_name=device_name(device))
    if device.type == "cuda":
        result.peak_memory_mb, result.memory_kind = torch.cuda.max_memory_allocated(device) / 2**20, "CUDA allocated"
    else:
        result.peak_memory_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        result.memory_kind = "process peak RSS, data included"
    return result


def _fraction(split, fraction: float):
    import torch

    if fraction >= 1.0:
        return split
    return split.take(torch.arange(max(2, round(len(split) * fraction))))


def spawn(case: Case) -> CaseResult | None:
    """Run a case in a child process; None (with its error output shown) if it failed."""
    done = subprocess.run([sys.executable, __file__, "--case", json.dumps(asdict(case))], capture_output=True,
                          text=True)
    if done.returncode != 0:
        print(f"case {case} failed:\n{done.stderr[-3000:]}", file=sys.stderr)
        return None
    payload = json.loads(done.stdout.strip().splitlines()[-1])
    return CaseResult(Case(**payload.pop("case")), **payload)


def steady(times: list[float]) -> float:
    """Seconds per epoch: the median after the first epoch (which pays for allocation and warm-up) if there is one."""
    return statistics.median(times[1:]) if len(times) > 1 else times[0]


# --- the official code ---------------------------------------------------------------------------------------------
OFFICIAL_DRIVER = r'''
import runpy, sys, transformers
bert_dir = sys.argv[1]
load = transformers.BertModel.from_pretrained
transformers.BertModel.from_pretrained = classmethod(lambda cls, name, *a, **k: load(bert_dir))
transformers.BertTokenizer.from_pretrained = classmethod(lambda cls, *a, **k: None)   # never used in training
import torch
if not torch.cuda.is_available():   # its stage-2 loader hard-codes map_location='cuda'
    torch_load = torch.load
    torch.load = lambda *a, **k: torch_load(*a, **{**k, "map_location": "cpu"})
sys.argv = ["main.py"] + sys.argv[2:]
runpy.run_path("main.py", run_name="__main__")
'''
OFFICIAL_EPOCH = re.compile(r"Epoch\s+(\d+)\s*\|\s*Time\s+([0-9.]+)\s*sec")
OFFICIAL_ARGS = ["--dataset", "SIMS-v2", "--transformer_layers", "4", "--nhead", "2", "--out_dropout", "0.3",
                 "--no_cuda"]


def time_official(checkout: Path, epochs: int, threads: int | None, bert_dir: str) -> dict[str, float]:
    """{"stage 1": s/epoch, "stage 2": s/epoch} of the official code on the cut, CPU (the last epoch's time)."""
    with tempfile.TemporaryDirectory(prefix="cmc-official-") as scratch:
        scratch = Path(scratch)
        work = scratch / "code"
        shutil.copytree(checkout, work, ignore=shutil.ignore_patterns(".git"))
        _write_official_cut(scratch / "data")
        (scratch / "models").mkdir()
        (work / "_driver.py").write_text(OFFICIAL_DRIVER)
        common = [*OFFICIAL_ARGS, "--data_path", str(scratch / "data"), "--model_path", str(scratch / "models"),
                  "--num_epochs", str(epochs), "--is_pseudo"]
        env = dict(os.environ) if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
        stage1, cpu1 = _run_official(work, [bert_dir, *common], env)
        stage2, cpu2 = _run_official(work, [bert_dir, *common, "--finetune", "--pretrained_model"], env)
    return {"stage 1": stage1, "stage 2": stage2, "stage 1 run cpu": cpu1, "stage 2 run cpu": cpu2}


def _write_official_cut(folder: Path) -> None:
    """The cut in the official loader's layout, plus its D_msc / D_msi test subsets (here the whole test split)."""
    from mer_bench.data.synthetic import generate_raw

    raw = generate_raw("sims-v2", CUT_SIZES)
    processed = folder / "CH-SIMS-v2" / "CH-SIMS-v2(s)" / "Processed"
    processed.mkdir(parents=True)
    with open(processed / "unaligned.pkl", "wb") as handle:
        pickle.dump(raw, handle)
    for subset in ("D_msc", "D_msi"):
        with open(processed / f"[test]{subset}.pkl", "wb") as handle:
            pickle.dump({"test": raw["test"]}, handle)


def _run_official(work: Path, args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(the last printed epoch time, CPU seconds of the whole run: start-up, data loading and final test included)."""
    print(f"official code: main.py {' '.join(args[1:])}", file=sys.stderr, flush=True)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run([sys.executable, "_driver.py", *args], cwd=work, capture_output=True, text=True, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    times = [float(match.group(2)) for match in OFFICIAL_EPOCH.finditer(done.stdout)]
    if done.returncode != 0 or not times:
        raise RuntimeError(f"the official code failed (exit {done.returncode}):\n{done.stdout[-2000:]}\n"
                           f"{done.stderr[-3000:]}")
    return times[-1], cpu


# --- report ----------------------------------------------------------------------------------------------------------
def report(results: list[CaseResult], official: dict[str, float]) -> None:
    header = (f"{'case':<5} {'device':<6} {'text':<8} {'attn-drop':<9} {'stage':<8} {'s/epoch':>8} {'cpu s':>8} "
              f"{'1st ep':>7} {'samples/s':>9} {'peak MB':>8}  reference s/epoch (ratio reference / ours)")
    print(header)
    print("-" * len(header))
    for result in results:
        case = result.case
        for stage, times in result.wall.items():
            label = stage.split(":")[0] if stage.startswith("stage") else "once"
            seconds = steady(times) if label != "once" else sum(times)
            dropout = "on" if case.attention_dropout else "off"
            line = (f"{case.cut:<5} {case.device:<6} {case.text_mode:<8} {dropout:<9} {label:<8} {seconds:>8.2f} "
                    f"{(steady if label != 'once' else sum)(result.cpu[stage]):>8.2f} {times[0]:>7.2f}")
            if label == "once":
                print(f"{line} {'':>9} {'':>8}  ({stage}, once per run)")
                continue
            print(f"{line} {result.train_samples / seconds:>9.1f} {result.peak_memory_mb:>8.0f}  "
                  f"{_references(case, label, seconds, official)}")
    for device, name in {r.case.device: (r.device_name, r.memory_kind) for r in results}.items():
        print(f"{device}: {name[0]}; peak memory = {name[1]}")
    if official:
        print(f"official code, this run: {official['stage 1']:.1f} / {official['stage 2']:.1f} s per stage-1 / stage-2 "
              f"epoch (wall); CPU time of its whole 1-epoch runs (start-up, data loading, final test included): "
              f"{official['stage 1 run cpu']:.1f} / {official['stage 2 run cpu']:.1f} s")
    if any(r.case.fraction < 1 for r in results):
        print("CPU full-size rows ran on a fraction of train/valid; their times are scaled to the full size.")
    print("s/epoch: median wall time of the epochs after the first (train pass + validation pass; we run no test "
          "pass); cpu s: the same in process CPU time; samples/s: training samples per wall second.")


def _references(case: Case, stage: str, seconds: float, official: dict[str, float]) -> str:
    """The official figures that apply to this row, each with the ratio official / ours."""
    references = []
    if case.cut == "cut" and case.device == "cpu" and stage in official:
        references.append(("official, this run", official[stage]))
    if (case.cut, case.device, stage) in OFFICIAL:
        value, label = OFFICIAL[(case.cut, case.device, stage)]
        references.append((label, value))
    if stage == "stage 1" and (case.cut, case.device) in PLAIN:
        value, label = PLAIN[(case.cut, case.device)]
        references.append((label, value))
    return "; ".join(f"{label} {value:.1f} ({value / seconds:.2f}x)" for label, value in references)


# --- main ------------------------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--case", help=argparse.SUPPRESS)
    parser.add_argument("--epochs", type=int, default=3, help="epochs per stage (default 3)")
    parser.add_argument("--quick", action="store_true", help="one epoch per stage, the cut only")
    parser.add_argument("--devices", default=None, help="comma-separated cpu,cuda (default: cpu, and cuda if present)")
    parser.add_argument("--modes", default="features,bert", help="text modes (default features,bert)")
    parser.add_argument("--only", choices=("full", "cut"), help="run only the full-size or only the cut cases")
    parser.add_argument("--dropout", choices=("on", "off", "both"), default="both",
                        help="attention dropout settings of the cut cases (default both)")
    parser.add_argument("--cpu-fraction", type=float, default=0.1, help="share of train/valid for CPU full-size cases")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    parser.add_argument("--official", type=Path, help="a checkout of gw-zhong/CMC to time on the cut (CPU)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    if args.case:
        print(json.dumps(asdict(run_case(Case(**json.loads(args.case))))))
        return
    bert_dir = _random_bert_base() if "bert" in args.modes.split(",") or args.official else None
    official = {}
    if args.official:
        official = time_official(args.official, 1, args.threads, bert_dir)     # its epochs have no warm-up to skip
    results = [result for case in cases(args, bert_dir) if (result := _timed_spawn(case)) is not None]
    report(results, official)
    if args.json:
        args.json.write_text(json.dumps({"official": official, "cases": [asdict(r) for r in results]}, indent=2))


def cases(args, bert_dir: str | None) -> list[Case]:
    import torch

    devices = args.devices.split(",") if args.devices else ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    epochs = 1 if args.quick else args.epochs
    dropouts = {"on": (True,), "off": (False,), "both": (True, False)}[args.dropout]
    planned = []
    for device in devices:
        for mode in args.modes.split(","):
            bert = bert_dir if mode == "bert" else None
            if not args.quick and args.only != "cut":
                fraction = args.cpu_fraction if device == "cpu" else 1.0
                planned.append(Case("full", device, mode, True, epochs, fraction, args.threads, bert))
            if args.only != "full":
                planned += [Case("cut", device, mode, dropout, epochs, 1.0, args.threads, bert) for dropout in dropouts]
    return planned


def _timed_spawn(case: Case) -> CaseResult | None:
    clock = time.perf_counter()
    print(f"running {case.cut} / {case.device} / {case.text_mode} / attention dropout "
          f"{'on' if case.attention_dropout else 'off'} ...", file=sys.stderr, flush=True)
    result = spawn(case)
    print(f"  done in {time.perf_counter() - clock:.0f}s", file=sys.stderr, flush=True)
    return result


def _random_bert_base() -> str:
    """A randomly initialised bert-base (BertConfig() defaults), saved once to a temporary folder."""
    from transformers import BertConfig, BertModel

    folder = Path(tempfile.gettempdir()) / "mer-bench-bench-bert-base"
    if not (folder / "config.json").exists():
        BertModel(BertConfig(), add_pooling_layer=False).save_pretrained(folder)
    return str(folder)


if __name__ == "__main__":
    main()
