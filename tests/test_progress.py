"""Progress where no terminal shows bars (Slurm logs, output to a file): timestamped lines, flushed as they come."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
import time

from mer_bench.cli.progress import PlainProgress
from mer_bench.runspec import RunSpec

STAMP = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d "


def test_run_with_output_to_a_file_writes_progress_lines_before_training_ends(tmp_path):
    log = tmp_path / "log.txt"
    env = {**os.environ, "MER_BENCH_PROGRESS_INTERVAL": "0"}   # a line per epoch, so the test need not wait 15 s
    command = [sys.executable, "-m", "mer_bench", "run", "lf-dnn", "--dataset", "synthetic", "--epochs", "3",
               "--seeds", "1111", "--no-probes", "--threads", "1", "--out", str(tmp_path / "results")]
    with open(log, "w") as stderr:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=stderr, env=env)
    try:
        deadline = time.monotonic() + 240
        while "epoch 1/3" not in log.read_text() and process.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        still_training = process.poll() is None
        text = log.read_text()
    finally:
        process.wait(timeout=240)
    assert still_training, text          # the first epoch's line was in the file while two epochs were still to go
    assert re.search(STAMP + r"lf-dnn on synthetic, seed 1 of 1 \(1111\): train: started", text)
    assert re.search(STAMP + r".*train: epoch 1/3  train_loss [\d.]+  valid_loss [\d.]+ .* elapsed \d+s", text)
    final = log.read_text()
    assert process.returncode == 0 and "train: finished after 3 epoch(s)" in final and "done in" in final


def test_plain_lines_come_at_stage_start_and_end_and_at_most_once_per_interval():
    stream = io.StringIO()
    spec = RunSpec("mean", "synthetic", 7)
    with PlainProgress([spec], stream, interval_s=3600) as progress:
        progress.start_run(spec)
        progress.start_stage("train", 50)
        for _ in range(50):
            progress.advance(train_loss=0.5)
    lines = stream.getvalue().splitlines()
    assert [line[20:] for line in lines] == ["mean on synthetic, seed 1 of 1 (7): train: started (50 epochs at most)",
                                             "mean on synthetic, seed 1 of 1 (7): train: finished after 50 epoch(s) "
                                             "in 0s"]
    assert all(re.match(STAMP, line) for line in lines)
