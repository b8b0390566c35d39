"""Benchmark: chips per second on one core, three ways of reading a split for training (never part of the tests).

    python benchmarks/streaming.py [DATASET] [--chips 2000]

DATASET defaults to the scale AOI's (results/gos10m_scale/dataset: build it with configs/gos10m_scale.yaml).
In the ``[torchgeo]`` environment (``.venv-torchgeo``), pinned to one core (``os.sched_setaffinity``, one
torch thread), every layer of every chip, as float32 ``image`` tensors:

- **stream**: :class:`gos_build.torchgeo.GOSBuildStream` over the train split's Parquet shards (one reader:
  all units; a shuffle buffer of 256), decoding each layer's GeoTIFF bytes;
- **packed, random**: :class:`gos_build.torchgeo.GOSBuild` (the packed store) in a random order: a chunk of
  16 chips decoded per layer, kept while the next chip is in it (random order mostly is not);
- **tree, random**: the same through the chip GeoTIFFs (one file per chip and layer).

The first ``--chips`` of each are timed after a warm-up of 50 (the page cache is warm for all three).
"""

from __future__ import annotations

import argparse
import itertools
import os
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("dataset", nargs="?", default=str(ROOT / "results" / "gos10m_scale" / "dataset"))
    ap.add_argument("--chips", type=int, default=2000)
    args = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
    import torch

    torch.set_num_threads(1)
    from gos_build.ml import GOSDataset
    from gos_build.torchgeo import GOSBuild, GOSBuildStream

    d = Path(args.dataset)
    n = args.chips
    ds = GOSBuild(d, split="train")
    tree = GOSDataset(d, split="train", normalize=False, source="tree")
    order = np.random.default_rng(0).permutation(len(ds))

    def tree_item(i):
        chip = tree.chips[i]
        return np.concatenate([tree.layer(m, chip) for m in ds.layers])

    ways = {
        "stream (Parquet shards)": lambda: (s["image"] for s in GOSBuildStream(d, "train", rank=0, world_size=1)),
        "packed store, random order": lambda: (ds[int(i)]["image"] for i in order),
        "GeoTIFF tree, random order": lambda: (tree_item(int(i)) for i in order),
    }
    print(f"{d}: {len(ds)} train chips, layers {', '.join(ds.layers)} ({len(ds.bands)} bands); one core")
    for name, make in ways.items():
        it = make()
        for _ in itertools.islice(it, 50):
            pass
        t0 = time.perf_counter()
        got = sum(1 for _ in itertools.islice(it, n))
        wall = time.perf_counter() - t0
        print(f"  {name:<28} {got / wall:7.1f} chips/s ({got} chips, {wall:.1f} s)", flush=True)


if __name__ == "__main__":
    main()
