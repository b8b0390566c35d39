"""One training epoch's reads: the chip GeoTIFF tree vs the packed Zarr store (``python benchmarks/loader.py DATASET``).

Reads every train chip once through ``gos_build.ml.GOSDataset`` (normalised, as training does), first
from the tree, then from the store, and checks both give the same tensors. Not a test: a measurement.
"""

from __future__ import annotations

import sys
import time

import numpy as np

from gos_build.ml import GOSDataset


def epoch(root: str, source: str) -> tuple[float, list]:
    ds = GOSDataset(root, split="train", source=source)
    t = time.perf_counter()
    items = [ds[i] for i in range(len(ds))]
    return time.perf_counter() - t, items


def main() -> None:
    root = sys.argv[1] if len(sys.argv) > 1 else "results/demo/dataset"
    t_tree, a = epoch(root, "tree")
    t_packed, b = epoch(root, "packed")
    same = all(np.array_equal(x["rgb"].numpy(), y["rgb"].numpy()) and
               np.array_equal(x["terrain"].numpy(), y["terrain"].numpy()) for x, y in zip(a, b))
    print(f"{root}: {len(a)} train chips; tree {t_tree:.2f} s ({len(a) / t_tree:.0f} chips/s), "
          f"packed {t_packed:.2f} s ({len(b) / t_packed:.0f} chips/s): {t_tree / t_packed:.1f}x; same tensors: {same}")


if __name__ == "__main__":
    main()
