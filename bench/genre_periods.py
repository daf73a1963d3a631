"""Benchmark: what the genre and periods stages add to ``make repro``, against the eda stage.

Runs each stage's command as DVC would (``python -m stages.<name>``, a fresh process, so
TensorFlow's start-up counts), ``--repeat`` times, and prints the median wall time of ``genre``
and ``periods``, their sum (the budget: at most 45 s on a quiet 2-core machine; their
statistics come from the feature store's ``paintings``, which the ``features`` stage computes
whatever), each one's ratio to ``eda``, a data stage of similar weight measured in
the same run, and the CPU seconds (user + system), which a busy machine inflates far less
than wall time. The stages rewrite
their own outputs with the same content. Run after ``dvc repro periods genre eda``:

    .venv/bin/python bench/genre_periods.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

STAGES = ("genre", "periods")
BASELINE = "eda"


def run(stage: str) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, all threads) of one stage process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", f"stages.{stage}"],
        check=True,
        capture_output=True,
        env={**os.environ, "ARTIST_ID_LOG": "WARNING"},
    )
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    load = os.getloadavg()[0]
    walls: dict[str, list[float]] = {s: [] for s in (BASELINE, *STAGES)}
    cpus: dict[str, list[float]] = {s: [] for s in walls}
    for _ in range(args.repeat):
        for stage in walls:  # interleaved, so a load change hits every stage alike
            wall, cpu = run(stage)
            walls[stage].append(wall)
            cpus[stage].append(cpu)
    wall_median = {s: statistics.median(t) for s, t in walls.items()}
    cpu_median = {s: statistics.median(t) for s, t in cpus.items()}
    base = wall_median[BASELINE]
    print(f"load average at start: {load:.2f}, at end: {os.getloadavg()[0]:.2f}")
    print(f"median of {args.repeat} runs; CPU = user + system seconds (load-independent-ish)")
    print(f"{'stage':16s} {'wall s':>8s} {'x eda':>7s} {'CPU s':>8s}")
    for stage in walls:
        seconds = wall_median[stage]
        print(f"{stage:16s} {seconds:8.1f} {seconds / base:7.2f} {cpu_median[stage]:8.1f}")
    total = sum(wall_median[s] for s in STAGES)
    cpu_total = sum(cpu_median[s] for s in STAGES)
    print(
        f"{'added by genre':16s} {total:8.1f} {total / base:7.2f} {cpu_total:8.1f}"
        "   (budget: 45 s wall on a quiet 2-core machine)"
    )


if __name__ == "__main__":
    main()
