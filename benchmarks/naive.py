"""Benchmark: the naive chain a user would script instead of gos-build (never part of the tests).

    python benchmarks/naive.py [--sample 120]

On the ~500 km2 AOI of benchmarks/scale.py (benchmarks/runs/gos10m_500.yaml, written by it; the scale
demo's inputs), with Debian's GDAL command-line tools, one process per step as a shell script would:

1. ``gdalwarp -r cubic`` of the SRTM tiles onto the 10 m grid (Float32);
2. ``gdaldem slope``, ``gdaldem aspect``, ``gdaldem hillshade`` of it;
3. ``gdal_rasterize`` of the interpretation polygons, one ``-where genesis = ...`` pass per class;
4. ``gdalwarp -r bilinear`` of B04, B03, B02 of each Sentinel-2 product onto the grid (no cloud mask, no
   offset: the naive chain does less than the s2 stage);
5. one ``gdal_translate -srcwin`` per chip and layer, 9 layers, timed on ``--sample`` chips and
   extrapolated to every chip-lattice cell of the AOI.

The local mean, standard deviation, deviation from mean, northness and eastness have no GDAL command:
the chain leaves them out (its per-chip step still cuts 9 files), so its time is a lower bound. The
rasters' time is scaled by area to the ~4 800 km2 AOI, the chips' by chip count, for the peer figure next
to the workflow's. Results go to benchmarks/runs/naive.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import yaml

from gos_build.config import with_defaults
from gos_build.grid import grid_from_config

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"
WORK = RUNS / "naive"
LAYERS = 9


def run(cmd: list[str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, env={**os.environ, "GDAL_NUM_THREADS": "1"})
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sample", type=int, default=120, help="chips cut (x 9 layers) to time the per-chip step")
    args = ap.parse_args()
    for tool in ("gdalwarp", "gdaldem", "gdal_rasterize", "gdal_translate"):
        if not shutil.which(tool):
            sys.exit(f"needs {tool} (Debian: apt-get install gdal-bin)")
    small = RUNS / "gos10m_500.yaml"
    if not small.exists():
        sys.exit("needs benchmarks/runs/gos10m_500.yaml: run benchmarks/scale.py once")
    cfg = with_defaults(yaml.safe_load(small.read_text(encoding="utf-8")))
    grid = grid_from_config(cfg)
    scale_grid = grid_from_config(with_defaults(yaml.safe_load((RUNS / "gos10m_scale.yaml").read_text(encoding="utf-8"))))
    inputs = ROOT / cfg["demo"]["out"]
    shutil.rmtree(WORK, ignore_errors=True)
    WORK.mkdir(parents=True)
    x0, y0, x1, y1 = grid.bounds
    te = ["-te", str(x0), str(y0), str(x1), str(y1), "-tr", "10", "10"]
    steps = {}
    dem = WORK / "dem.tif"
    steps["gdalwarp DEM (cubic)"] = run(["gdalwarp", "-q", "-r", "cubic", "-t_srs", grid.crs, *te, "-ot", "Float32",
                                         *map(str, sorted((inputs / "srtm").glob("*.hgt"))), str(dem)])
    for what in ("slope", "aspect", "hillshade"):
        steps[f"gdaldem {what}"] = run(["gdaldem", what, "-q", str(dem), str(WORK / f"{what}.tif")])
    labels = WORK / "labels.tif"
    t = 0.0
    for i, (cid, c) in enumerate(sorted(cfg["classes"].items(), key=lambda kv: int(kv[0]))):
        where = " OR ".join(f"{cfg['inputs']['class_field']} = '{v}'" for v in c["values"])
        extra = ["-init", "0", "-a_nodata", "0", "-ot", "Byte", *te] if i == 0 else []
        t += run(["gdal_rasterize", "-q", "-burn", str(cid), "-where", where, *extra,
                  str(inputs / "polygons.gpkg"), str(labels)])
    steps["gdal_rasterize (one pass per class)"] = t
    t = 0.0
    for band in ("B04", "B03", "B02"):
        jp2s = sorted(map(str, (inputs / "sentinel2").glob(f"*.SAFE/GRANULE/*/IMG_DATA/R10m/*_{band}_10m.jp2")))
        t += run(["gdalwarp", "-q", "-r", "bilinear", "-t_srs", grid.crs, *te, *jp2s, str(WORK / f"{band}.tif")])
    steps["gdalwarp Sentinel-2 B04 B03 B02 (bilinear)"] = t
    rasters = [dem, WORK / "hillshade.tif", WORK / "slope.tif", WORK / "aspect.tif", labels,
               WORK / "B04.tif", WORK / "B03.tif", WORK / "B02.tif", dem]  # 9 files a chip
    cells = [(r, c) for r in range(0, grid.height - 63, 64) for c in range(0, grid.width - 63, 64)]
    sample = cells[:: max(1, len(cells) // args.sample)][: args.sample]
    chips = WORK / "chips"
    chips.mkdir()
    t = 0.0
    for r, c in sample:
        for i, src in enumerate(rasters):
            t += run(["gdal_translate", "-q", "-srcwin", str(c), str(r), "64", "64", str(src),
                      str(chips / f"{i}_{r}_{c}.tif")])
    per_chip = t / len(sample)
    raster_s = sum(steps.values())
    area = (scale_grid.width * scale_grid.height) / (grid.width * grid.height)
    scale_cells = (scale_grid.width // 64) * (scale_grid.height // 64)
    out = {"aoi_mpx": grid.width * grid.height / 1e6, "steps_s": steps, "rasters_s": raster_s,
           "chip_cells": len(cells), "sampled_chips": len(sample), "per_chip_s": per_chip,
           "aoi_500_s": raster_s + per_chip * len(cells),
           "scale_extrapolated_s": raster_s * area + per_chip * scale_cells, "scale_cells": scale_cells}
    for k, v in steps.items():
        print(f"{k}: {v:.1f} s")
    print(f"per chip: {LAYERS} x gdal_translate -srcwin = {per_chip:.2f} s (on {len(sample)} chips)")
    print(f"~500 km2 ({out['aoi_mpx']:.1f} Mpx, {len(cells)} chip cells): {out['aoi_500_s']:.0f} s")
    print(f"extrapolated to ~4 800 km2 ({scale_cells} chip cells, x{area:.1f} area): {out['scale_extrapolated_s']:.0f} s")
    (RUNS / "naive.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
