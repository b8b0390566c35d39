"""Benchmark: the memory a command occupies, counted three ways over its process tree (never part of the tests).

    python benchmarks/pss.py COMMAND [ARG ...]

Runs COMMAND and samples every 0.1 s (psutil, which Snakemake installs) the sums over the command and all
its descendants of RSS (what Snakemake's ``benchmark:`` files add up: pages a forked worker shares with its
parent are counted in both), PSS (each shared page divided among the processes mapping it: the physical
memory the tree occupies) and USS (the pages no other process maps). Prints the three peaks; exits with the
command's status.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil


def main() -> int:
    if len(sys.argv) < 2:
        sys.exit(__doc__.splitlines()[2].strip())
    proc = subprocess.Popen(sys.argv[1:])
    root = psutil.Process(proc.pid)
    peak = {"rss": 0, "pss": 0, "uss": 0}
    while proc.poll() is None:
        try:
            tree = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        total = {"rss": 0, "pss": 0, "uss": 0}
        for p in tree:
            try:
                m = p.memory_full_info()
            except psutil.Error:  # ended between the listing and the reading
                continue
            for k in total:
                total[k] += getattr(m, k)
        for k in peak:
            peak[k] = max(peak[k], total[k])
        time.sleep(0.1)
    print(f"peak over the process tree: RSS {peak['rss'] / 1e6:.0f} MB, PSS {peak['pss'] / 1e6:.0f} MB, "
          f"USS {peak['uss'] / 1e6:.0f} MB", file=sys.stderr)
    return proc.wait()


if __name__ == "__main__":
    sys.exit(main())
