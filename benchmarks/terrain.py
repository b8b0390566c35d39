"""Benchmark: `gos-build terrain` on a >= 50-megapixel projected DEM (never part of the tests).

    python benchmarks/terrain.py [--size 7200] [--workdir /tmp/gos-terrain-bench]

The DEM is matplotlib's real Jacksboro sample (3" SRTM-like terrain) mirrored
to SIZE x SIZE pixels of 10 m in UTM 16N. Prints wall seconds, CPU seconds,
peak RSS of the command, and megapixels per second, for SIZE and for a
DEM ten times smaller (memory must not grow with the DEM: it is processed
in 1024 x 1024 blocks with a halo).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine


GDAL_CACHE_MB = 64  # as a workflow job sets it; GDAL would take 5 % of RAM


def make_dem(path: Path, size: int) -> None:
    import matplotlib.cbook as cbook

    base = np.asarray(cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"], dtype=np.float32)
    reps = (size // base.shape[0] + 2, size // base.shape[1] + 2)
    tile = np.block([[base, base[:, ::-1]], [base[::-1, :], base[::-1, ::-1]]])
    z = np.tile(tile, (reps[0] // 2 + 1, reps[1] // 2 + 1))[:size, :size]
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="float32", crs="EPSG:32616",
                   transform=Affine(10, 0, 500000, 0, -10, 4100000), nodata=-9999, tiled=True,
                   blockxsize=256, blockysize=256, compress="deflate", predictor=3)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(z, 1)


def run(dem: Path, out: Path) -> dict:
    """Run the command once; wall time, and CPU time and peak RSS of that child from wait4()."""
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "gos_build.cli", "-q", "--gdal-cache-mb", str(GDAL_CACHE_MB),
                             "terrain", str(dem), str(out)])
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t0
    if status != 0:
        raise SystemExit(f"gos-build terrain failed on {dem} (status {status})")
    with rasterio.open(dem) as ds:
        mpx = ds.width * ds.height / 1e6
    return {"mpx": mpx, "wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "peak_rss_mb": usage.ru_maxrss / 1024}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=7200)
    ap.add_argument("--workdir", default="/tmp/gos-terrain-bench")
    args = ap.parse_args()
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for size in (args.size // 3, args.size):  # ~5.8 and ~52 Mpx by default
        dem = work / f"dem_{size}.tif"
        if not dem.exists():
            make_dem(dem, size)
        rows.append(run(dem, work / f"out_{size}"))
    print(f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
    print("| DEM (Mpx) | wall (s) | CPU (s) | peak RSS (MB) | Mpx/s |")
    print("|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['mpx']:.1f} | {r['wall_s']:.1f} | {r['cpu_s']:.1f} | {r['peak_rss_mb']:.0f} | {r['mpx'] / r['wall_s']:.2f} |")


if __name__ == "__main__":
    main()
