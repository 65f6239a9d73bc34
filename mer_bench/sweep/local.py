"""The local executor: N worker processes on this machine (`concurrent.futures.ProcessPoolExecutor`).

Each worker takes a slot number when it starts; with GPUs present, slot i gets GPU i (modulo the GPU count) through
``CUDA_VISIBLE_DEVICES``, and every worker gets an equal share of the CPU cores as torch threads, so N jobs never
oversubscribe the machine. Workers are never plain forks: a forked copy of a process that already ran torch
threads can deadlock in OpenMP (see `worker_context`).

Stopping: Ctrl-C reaches every process of the terminal, but only the main process acts on it (workers ignore SIGINT):
it cancels queued runs and sends SIGTERM to the workers, which leave their run by KeyboardInterrupt, so its lock,
temporary files and scratch folder are removed and no partial result is left.

A main process that dies without cleaning up (``kill -9``, the OOM killer) must not leave workers training for
nobody: each worker asks the kernel for SIGTERM when its parent exits (Linux ``PR_SET_PDEATHSIG``; the parent is the
forkserver, or the main process under "spawn") and, everywhere, watches the main process's pid once a second
(`WATCH_PARENT_S`) and stops the same way when it is gone. The forkserver itself exits when the main process's end
of its pipe closes, which the kernel does for a killed process too.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

from mer_bench.runlock import process_alive
from mer_bench.runspec import RunSpec
from mer_bench.threads import apply_threads, cpu_budget, share_of_budget
from mer_bench.sweep.store import lock_is_stale, lock_path, write_lost_failure
from mer_bench.sweep.worker import FAILED, WorkerSettings, execute_run

MAX_DEFAULT_CPU_JOBS = 8   # beyond this, memory (one dataset copy per worker) matters more than cores
STOP_GRACE_S = 30.0
WATCH_PARENT_S = 1.0
PR_SET_PDEATHSIG = 1   # from <linux/prctl.h>


def visible_gpus() -> list[str]:
    """GPU ids a worker may be given: those in CUDA_VISIBLE_DEVICES if set (the user's restriction), else all."""
    listed = os.environ.get("CUDA_VISIBLE_DEVICES")
    if listed is not None:
        return [gpu.strip() for gpu in listed.split(",") if gpu.strip() and gpu.strip() != "-1"]
    import torch

    return [str(index) for index in range(torch.cuda.device_count())]


@dataclass(frozen=True)
class LocalLayout:
    """How a machine is shared by a local sweep."""

    jobs: int                # worker processes
    threads: int             # torch CPU threads per worker
    gpus: tuple[str, ...]    # GPU ids handed to workers in turn; empty on a CPU-only machine

    @classmethod
    def fit(cls, jobs: int | None = None, device: str = "auto") -> LocalLayout:
        """Default: one job per GPU when there are GPUs, else one per CPU core (up to MAX_DEFAULT_CPU_JOBS)."""
        gpus = tuple(visible_gpus()) if device != "cpu" else ()
        if jobs is None:
            jobs = len(gpus) if gpus else max(1, min(cpu_budget(), MAX_DEFAULT_CPU_JOBS))
        return cls(jobs=jobs, threads=share_of_budget(jobs), gpus=gpus)

    def describe(self) -> str:
        gpu = f", GPU {', '.join(self.gpus)} in turn" if self.gpus else ""
        return f"{self.jobs} local job(s), {self.threads} CPU thread(s) each{gpu}"


def run_local(specs: list[RunSpec], settings: WorkerSettings, layout: LocalLayout,
              on_poll: Callable[[], None] = lambda: None, poll_s: float = 0.5) -> dict[RunSpec, str]:
    """Run `specs` on `layout.jobs` processes; returns each spec's outcome (see mer_bench.sweep.worker).

    If a worker dies abruptly (killed for memory, a crash in native code), the pool is broken: the runs it was
    training are recorded as failed and a fresh pool takes the rest."""
    outcomes: dict[RunSpec, str] = {}
    pending = list(specs)
    while pending:
        before = len(outcomes)
        broken = _run_pool(pending, settings, layout, outcomes, on_poll, poll_s)
        left = [spec for spec in pending if spec not in outcomes]
        if not broken:
            break
        for spec in _record_dead_runs(left, settings):
            outcomes[spec] = FAILED
        if len(outcomes) == before:   # nothing finished and no run died with its worker: workers die at start
            raise RuntimeError("local sweep workers keep dying before they finish a run (see the messages above)")
        pending = [spec for spec in left if spec not in outcomes]
    return outcomes


def worker_context() -> multiprocessing.context.BaseContext:
    """Workers are forked from a fresh server process that has imported the training code once ("forkserver"), so
    N workers do not import torch N times; "spawn" where there is no forkserver. Never plain "fork": a copy of a
    process that already ran torch threads or initialised CUDA can deadlock or fail."""
    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["mer_bench.sweep.worker"])
    return context


def _run_pool(specs: list[RunSpec], settings: WorkerSettings, layout: LocalLayout, outcomes: dict[RunSpec, str],
              on_poll: Callable[[], None], poll_s: float) -> bool:
    """One pool over `specs`; fills `outcomes`; True if the pool broke."""
    context = worker_context()
    slots = context.Queue()
    for slot in range(layout.jobs):
        slots.put(slot)
    pool = ProcessPoolExecutor(max_workers=min(layout.jobs, len(specs)), mp_context=context,
                               initializer=_init_worker, initargs=(slots, layout.gpus, layout.threads, os.getpid()))
    broken = False
    try:
        futures: dict[Future, RunSpec] = {pool.submit(_run_in_worker, spec, settings): spec for spec in specs}
        waiting = set(futures)
        while waiting:
            finished, waiting = wait(waiting, timeout=poll_s, return_when=FIRST_COMPLETED)
            for future in finished:
                try:
                    outcomes[futures[future]] = future.result()
                except BrokenProcessPool:
                    broken = True
            on_poll()
    except BaseException:
        _stop_workers(pool)
        raise
    pool.shutdown(wait=True)
    return broken


def _record_dead_runs(specs: list[RunSpec], settings: WorkerSettings) -> list[RunSpec]:
    """Runs whose lock is held by a process of ours that no longer exists: they died with their worker."""
    dead = []
    for spec in specs:
        lock = lock_path(spec, settings.out_dir)
        if lock.exists() and lock_is_stale(lock):
            write_lost_failure(spec, settings.out_dir, "the worker process died during the run (killed, e.g. for "
                               "memory, or crashed in native code)")
            lock.unlink(missing_ok=True)
            dead.append(spec)
    return dead


def _stop_workers(pool: ProcessPoolExecutor) -> None:
    pool.shutdown(wait=False, cancel_futures=True)
    workers = multiprocessing.active_children()
    for process in workers:
        process.terminate()
    for process in workers:
        process.join(STOP_GRACE_S)
        if process.is_alive():
            process.kill()


_in_run = False   # inside a worker: is a run being trained right now?


def _init_worker(slots, gpus: tuple[str, ...], threads: int, main_pid: int) -> None:
    slot = slots.get()
    signal.signal(signal.SIGINT, signal.SIG_IGN)   # the main process alone decides what Ctrl-C means
    signal.signal(signal.SIGTERM, _on_terminate)
    stop_with_parent(main_pid)
    if gpus:
        os.environ["CUDA_VISIBLE_DEVICES"] = gpus[slot % len(gpus)]
    apply_threads(threads)


def stop_with_parent(main_pid: int) -> None:
    """SIGTERM to this worker when the sweep's main process is gone (see the module docstring)."""
    parent = os.getppid()
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    except (OSError, AttributeError):   # not Linux: the watchdog below is enough
        pass
    threading.Thread(target=_watch_parent, args=(main_pid, parent), name="parent watchdog", daemon=True).start()


def _watch_parent(main_pid: int, parent: int) -> None:
    # The parent may have died before prctl took effect; the pid check also covers the main process under
    # forkserver, where the kernel would only tell us about the forkserver.
    while process_alive(main_pid) and os.getppid() == parent:
        time.sleep(WATCH_PARENT_S)
    os.kill(os.getpid(), signal.SIGTERM)   # unwinds a run in the main thread (lock and scratch removed)
    time.sleep(STOP_GRACE_S)
    os._exit(128 + signal.SIGTERM)          # the main thread is stuck in native code: leave anyway


_stopping = False   # a SIGTERM is already unwinding the run


def _on_terminate(signum, frame) -> None:
    global _stopping
    if _stopping:
        return                    # a second SIGTERM (the main process and the watchdog both) must not cut the cleanup
    if _in_run:
        _stopping = True
        raise KeyboardInterrupt   # unwinds the run: lock, temporary files and scratch folder are removed
    os._exit(128 + signum)        # idle: nothing to clean up


def _run_in_worker(spec: RunSpec, settings: WorkerSettings) -> str:
    global _in_run
    _in_run = True
    try:
        return execute_run(spec, settings)
    except KeyboardInterrupt:
        # Leave now rather than return: the pool would hand this worker the next queued run.
        os._exit(128 + signal.SIGTERM)
    finally:
        _in_run = False
