"""Benchmark: where a finished build left cores idle (never part of the tests).

    python benchmarks/timeline.py [--aoi gos10m_scale] [--cores 2] [--tail]

Reads every job's log (``logs/<aoi>/``): a job ends at its last line's time and began its ``done in`` seconds
before (the command's work; the ~0.1 s of starting Python and the CLI fall between jobs). Prints the build's
span from the first job's start to the last job's end, the jobs' seconds, and the core-seconds no job used on
``--cores`` cores, before the tiles, while they run and after the last one (the tail); ``--tail`` lists the
jobs of the tail. Idle core-seconds are what a better schedule could win at most: the span on those cores
cannot fall below the jobs' seconds divided by the cores.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, job_done  # noqa: E402


def jobs(logs: Path) -> list[tuple[float, float, str]]:
    """(start, end, job) of every finished job under ``logs``, in seconds of the epoch, by start."""
    out = []
    for path in sorted(logs.rglob("*.log")):
        done = job_done(path)
        if done:
            end, seconds, _ = done
            out.append((end - seconds, end, str(path.relative_to(logs).with_suffix(""))))
    return sorted(out)


def idle(spans: list[tuple[float, float, str]], cores: int, since: float, until: float) -> float:
    """Core-seconds between ``since`` and ``until`` that no job in ``spans`` used, on ``cores`` cores."""
    events = sorted([(max(s, since), 1) for s, e, _ in spans if e > since and s < until]
                    + [(min(e, until), -1) for s, e, _ in spans if e > since and s < until])
    running, last, free = 0, since, 0.0
    for t, step in events:
        free += max(cores - running, 0) * (t - last)
        running, last = running + step, t
    return free + cores * (until - last)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--aoi", default="gos10m_scale", help="the config's aoi.name (logs/<aoi>/)")
    ap.add_argument("--cores", type=int, default=2)
    ap.add_argument("--tail", action="store_true", help="list the jobs after the last tile")
    args = ap.parse_args()
    spans = jobs(ROOT / "logs" / args.aoi)
    if not spans:
        raise SystemExit(f"no finished job's log under logs/{args.aoi}")
    first, last = spans[0][0], max(e for _, e, _ in spans)
    tiles = [(s, e) for s, e, name in spans if name.startswith("tile/")]
    t0, t1 = (min(s for s, _ in tiles), max(e for _, e in tiles)) if tiles else (first, first)
    work = sum(e - s for s, e, _ in spans)
    print(f"{len(spans)} jobs, span {last - first:.1f} s, jobs {work:.1f} s (on {args.cores} cores at best "
          f"{work / args.cores:.1f} s); idle core-s: {idle(spans, args.cores, first, last):.1f} = before the tiles "
          f"{idle(spans, args.cores, first, t0):.1f} + with them {idle(spans, args.cores, t0, t1):.1f} + the tail "
          f"{idle(spans, args.cores, t1, last):.1f} ({last - t1:.1f} s after the last tile)")
    if args.tail:
        for s, e, name in spans:
            if e > t1:
                print(f"{s - first:7.1f} {e - first:7.1f} {e - s:6.1f}  {name}")


if __name__ == "__main__":
    main()
