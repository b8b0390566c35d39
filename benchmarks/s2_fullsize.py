"""Benchmark: the s2 stage on a Sentinel-2 granule of real dimensions (never part of the tests).

    python benchmarks/s2_fullsize.py

1. builds once, in benchmarks/runs/fullsize/, a demo L2A product with the dimensions of a real granule:
   10 980 x 10 980 px at 10 m (SCL 5 490 x 5 490 at 20 m), lossless JPEG 2000 in 1024 x 1024 tiles with
   4 resolutions, as the ground segment writes them, under the GOS10m-size AOI of
   configs/gos10m_scale.yaml (its pixels mirrored from the scale demo's first product, which must exist:
   run benchmarks/scale.py or the scale config once);
2. for every processing tile of that AOI, times the s2 stage as the workflow runs it (``gos-build s2-tile``,
   one process per tile) and ``gdal_translate -srcwin`` of the same JPEG 2000 windows (B04 B03 B02 at
   10 m, SCL at 20 m; the windows the stage reads, margins included) to uncompressed GeoTIFFs;
3. prints both throughputs (Mpx of the processing tiles per second) and their ratio; the tile log's
   ``read`` seconds give the stage's own decoding time. Results go to benchmarks/runs/fullsize.json.

The mirrored pixels are smoother than a real scene, so both sides decode faster than they would on a
real product; the ratio is what is compared.
"""

from __future__ import annotations

import json
import math
import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine

from gos_build.demo.safe import _write_jp2
from gos_build.grid import Grid

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"
WORK = RUNS / "fullsize"
SIZE = 10980  # px at 10 m: a real granule
ULX, ULY = 360000, 4909620  # covers the scale AOI (382 720-456 320 E, 4 821 760-4 889 600 N), on the 60 m lattice


def gos_build(*args, log=None) -> float:
    env = {**os.environ, "GDAL_CACHEMAX": "128", "GDAL_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "gos_build.cli", *(["--log", str(log)] if log else []), *args], check=True,
                   env=env, cwd=ROOT)
    return time.perf_counter() - t0


def build_product() -> Path:
    """The full-size SAFE (built once)."""
    done = WORK / "product.done"
    (src,) = sorted((ROOT / "resources" / "gos10m_scale" / "sentinel2").glob("*041700.SAFE"))[:1] or [None]
    if src is None:
        sys.exit("needs the scale demo's inputs: run benchmarks/scale.py (or the scale config) first")
    safe = WORK / src.name
    if done.exists():
        return safe
    shutil.rmtree(WORK, ignore_errors=True)
    shutil.copytree(src, safe, ignore=shutil.ignore_patterns("*.jp2"))
    for jp2 in sorted(src.rglob("*.jp2")):
        with rasterio.open(jp2) as ds:
            a, res, crs = ds.read(1), ds.transform.a, ds.crs
        n = SIZE * 10 // int(res)
        full = np.pad(a, ((0, n - a.shape[0]), (0, n - a.shape[1])), mode="symmetric")
        t0 = time.perf_counter()
        _write_jp2(safe / jp2.relative_to(src), full, Affine(res, 0, ULX, 0, -res, ULY), crs.to_string())
        print(f"  {jp2.name}: {n} x {n} px written in {time.perf_counter() - t0:.0f} s", flush=True)
    (mtd,) = safe.glob("GRANULE/*/MTD_TL.xml")
    text = mtd.read_text(encoding="utf-8")
    text = re.sub(r"<ULX>\d+</ULX>", f"<ULX>{ULX}</ULX>", text)
    text = re.sub(r"<ULY>\d+</ULY>", f"<ULY>{ULY}</ULY>", text)
    for r in (10, 20, 60):
        text = re.sub(rf'(<Size resolution="{r}">\s*<NROWS>)\d+(</NROWS>\s*<NCOLS>)\d+', rf"\g<1>{SIZE * 10 // r}\g<2>{SIZE * 10 // r}",
                      text)
    mtd.write_text(text, encoding="utf-8")
    done.write_text("ok\n")
    return safe


def main() -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    print("building the full-size product (once; JPEG 2000 encoding takes minutes)", flush=True)
    safe = build_product()
    grid_json, manifest = WORK / "grid.json", WORK / "sentinel2.json"
    gos_build("grid", str(grid_json), "--config", str(ROOT / "configs" / "gos10m_scale.yaml"))
    gos_build("inputs", "sentinel2", "--config", json.dumps({"inputs": {"sentinel2": [str(safe)]}}), "--grid",
              str(grid_json), "--out", str(manifest))
    grid = Grid.read(grid_json)
    doc = json.loads(manifest.read_text(encoding="utf-8"))
    (granule,) = doc["products"][0]["granules"]
    with rasterio.open(granule["bands"]["B04"]) as ds:
        t, shape = ds.transform, ds.shape
    rows, s2_s, gdal_s, read_s, mpx = [], 0.0, 0.0, 0.0, 0.0
    out = WORK / "out"
    out.mkdir(exist_ok=True)
    for tile in grid.tiles():
        log = out / f"{tile.id}.log"
        ts = gos_build("s2-tile", "--grid", str(grid_json), "--tile", tile.id, "--manifest", str(manifest),
                       "--out-rgb", str(out / "rgb.tif"), "--out-valid", str(out / "valid.tif"), log=log)
        m = re.search(r"read ([\d.]+) s", log.read_text(encoding="utf-8"))
        tr = float(m.group(1)) if m else float("nan")
        # the windows the stage reads: the tile on the granule's lattice, 2 px before and 3 px after
        c0 = round((grid.x_min + tile.col_off * grid.resolution - t.c) / t.a) - 2
        r0 = round((t.f - (grid.y_max - tile.row_off * grid.resolution)) / -t.e) - 2
        w, h = tile.width + 4, tile.height + 4
        c0, r0 = max(c0, 0), max(r0, 0)
        w, h = min(w, shape[1] - c0), min(h, shape[0] - r0)
        tg = 0.0
        for band in ("B04", "B03", "B02", "SCL"):
            path = granule["scl"] if band == "SCL" else granule["bands"][band]
            f = 2 if band == "SCL" else 1
            win = [str(c0 // f - (1 if f == 2 else 0)), str(r0 // f - (1 if f == 2 else 0)),
                   str(math.ceil(w / f) + 3 if f == 2 else w), str(math.ceil(h / f) + 3 if f == 2 else h)]
            t0 = time.perf_counter()
            subprocess.run(["gdal_translate", "-q", "-srcwin", *win, path, str(out / f"{band}.tif")], check=True,
                           env={**os.environ, "GDAL_CACHEMAX": "128", "GDAL_NUM_THREADS": "1"})
            tg += time.perf_counter() - t0
        px = tile.width * tile.height / 1e6
        rows.append({"tile": tile.id, "mpx": px, "s2_tile_s": ts, "s2_read_s": tr, "gdal_translate_s": tg})
        s2_s, gdal_s, read_s, mpx = s2_s + ts, gdal_s + tg, read_s + tr, mpx + px
        print(f"{tile.id} {tile.width:5d} x {tile.height:5d}: s2-tile {ts:5.2f} s (read {tr:5.2f} s), "
              f"gdal_translate {tg:5.2f} s", flush=True)
    result = {"granule_px": [SIZE, SIZE], "tiles": rows, "mpx": mpx, "s2_tile_s": s2_s, "s2_read_s": read_s,
              "gdal_translate_s": gdal_s, "ratio_job": s2_s / gdal_s, "ratio_read": read_s / gdal_s}
    print(f"\n{len(rows)} tiles, {mpx:.1f} Mpx: s2-tile {s2_s:.1f} s ({mpx / s2_s:.2f} Mpx/s; its reads {read_s:.1f} s), "
          f"gdal_translate of the same windows {gdal_s:.1f} s ({mpx / gdal_s:.2f} Mpx/s)")
    print(f"ratio s2 stage / gdal_translate: {result['ratio_job']:.2f} (whole jobs), {result['ratio_read']:.2f} (reads)")
    (RUNS / "fullsize.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
