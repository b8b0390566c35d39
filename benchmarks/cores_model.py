"""Benchmark model: a measured build replayed on more cores (never part of the tests).

    python benchmarks/cores_model.py [--config configs/gos10m_scale.yaml] [--cores 1,2,4,8] [--wall SECONDS]

Reads the DAG of the last build of that config (``snakemake --dag``, run after it: every job, the granules
too, which a DAG from scratch cannot list before the Sentinel-2 checkpoint) and each job's wall time from its
``benchmark:`` file (``benchmarks/runs/<aoi>/``), then schedules the jobs on N cores as
Snakemake would at best: one core a job (the default target has no rule of more threads), a job started as soon as a
core is free and its inputs are done, the job with the longest path to the end first. Prints the modelled
wall time per core count; with ``--wall`` (the build's measured wall on the cores it ran on, e.g. from
``scale.py``) also the gap between model and measurement there (Snakemake's start, its scheduling, the gaps
between jobs), added to each projection.

A projection, not a measurement: on more cores the jobs themselves may slow (memory bandwidth, one disk), so
read the figures for more cores than measured as a lower bound of the wall time.
"""

from __future__ import annotations

import argparse
import csv
import heapq
import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, RUNS  # noqa: E402

_NODE = re.compile(r'^\s*(\d+)\[label = "([^"\\]+)(?:\\n[^:]+: ([^"]+))?"')
_EDGE = re.compile(r"^\s*(\d+) -> (\d+)")


def dag(config: Path) -> tuple[dict[int, tuple[str, str | None]], list[tuple[int, int]]]:
    """The DAG's jobs (id -> (rule, wildcard value or None)) and edges (input job, job), of a finished build."""
    out = subprocess.run([sys.executable, "-m", "snakemake", "--dag", "--configfile", str(config)],
                         cwd=ROOT, capture_output=True, text=True, check=True).stdout
    jobs = {int(m[1]): (m[2], m[3]) for m in map(_NODE.match, out.splitlines()) if m}
    edges = [(int(m[1]), int(m[2])) for m in map(_EDGE.match, out.splitlines()) if m]
    return jobs, edges


def seconds(bench: Path, rule: str, wildcard: str | None) -> float:
    """A job's wall time (s) from its benchmark file; 0 for a job without one (``all``, inputs already there)."""
    path = bench / rule / f"{wildcard}.tsv" if wildcard else bench / f"{rule}.tsv"
    if not path.is_file():
        return 0.0
    with open(path, newline="") as f:
        return float(next(csv.DictReader(f, delimiter="\t"))["s"])


def schedule(duration: dict[int, float], edges: list[tuple[int, int]], cores: int) -> float:
    """The makespan (s) of list scheduling on ``cores``: the ready job with the longest path to the end first."""
    after = {j: [] for j in duration}
    waiting = {j: 0 for j in duration}
    for a, b in edges:
        after[a].append(b)
        waiting[b] += 1
    rank: dict[int, float] = {}  # the longest path from a job to the end, its own time included
    depth: dict[int, int] = {}
    for j in sorted(duration, key=lambda j: _depth(j, after, depth)):  # the last jobs first
        rank[j] = duration[j] + max((rank[k] for k in after[j]), default=0.0)
    ready = [(-rank[j], j) for j in duration if waiting[j] == 0]
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []
    now = 0.0
    while ready or running:
        while ready and len(running) < cores:
            _, j = heapq.heappop(ready)
            heapq.heappush(running, (now + duration[j], j))
        now, j = heapq.heappop(running)
        for k in after[j]:
            waiting[k] -= 1
            if waiting[k] == 0:
                heapq.heappush(ready, (-rank[k], k))
    return now


def _depth(j: int, after: dict, memo: dict) -> int:
    """The number of jobs on the longest path from ``j`` to the end (0 for the last)."""
    if j not in memo:
        memo[j] = 1 + max((_depth(k, after, memo) for k in after[j]), default=-1)
    return memo[j]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default="configs/gos10m_scale.yaml")
    ap.add_argument("--cores", default="1,2,4,8", help="core counts to model, comma-separated")
    ap.add_argument("--wall", type=float, help="the build's measured wall time, s")
    ap.add_argument("--measured-cores", type=int, default=2, help="the cores that build ran on")
    args = ap.parse_args()
    config = ROOT / args.config
    aoi = re.search(r"^\s*name:\s*(\S+)", config.read_text(encoding="utf-8"), re.M)[1]
    jobs, edges = dag(config)
    duration = {j: seconds(RUNS / aoi, rule, wc) for j, (rule, wc) in jobs.items()}
    total = sum(duration.values())
    gap = 0.0
    if args.wall:
        gap = args.wall - schedule(duration, edges, args.measured_cores)
        print(f"measured: {args.wall:.1f} s on {args.measured_cores} cores; model {args.wall - gap:.1f} s: "
              f"{gap:.1f} s outside the jobs (Snakemake's start, scheduling, gaps), added below")
    print(f"{len(jobs)} jobs, {total:.1f} job-s (benchmarks/runs/{aoi}); critical path "
          f"{schedule(duration, edges, len(jobs)):.1f} s")
    for n in map(int, args.cores.split(",")):
        print(f"{n} cores: {schedule(duration, edges, n) + gap:.1f} s")


if __name__ == "__main__":
    main()
