"""Benchmark: the extra terrain layers (``terrain.extra``) -- never part of the tests.

    python benchmarks/geomorphometry.py [--skip-workflow] [--tile E...N...]

1. **Cost per kind per tile**, on the DEM of one full processing tile of the scale AOI
   (configs/gos10m_scale.yaml, 2048 x 2048 px at 10 m, warped onto the grid with the halo the kind
   needs), in one process, against its reference tool on the same DEM written as a GeoTIFF: ``gdaldem``
   (TRI, roughness, TPI), GRASS ``r.slope.aspect`` (both curvatures in one run) and ``r.geomorphon -m``.
   GRASS is timed inside its session (the module alone, after ``r.in.gdal``); gdaldem as a command
   (its start-up, ~0.05 s, included). Per cell: seconds / cells of the tile.
2. **End to end**: the scale AOI with the eight extra layers of configs/geomorphometry.yaml beside the
   default config, ``--cores 2``, from the same inputs (generated once): wall time, the tile jobs'
   CPU seconds and peak RSS (Snakemake's ``benchmark:`` files), chips.

Results: printed, and benchmarks/runs/geomorphometry.json.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from scale import RUNS, rule_table, snakemake  # noqa: E402

from gos_build import geomorphometry as gm  # noqa: E402
from gos_build.config import with_defaults  # noqa: E402
from gos_build.grid import grid_from_config  # noqa: E402

SCALE = ROOT / "configs" / "gos10m_scale.yaml"
EXAMPLE = yaml.safe_load((ROOT / "configs" / "geomorphometry.yaml").read_text(encoding="utf-8"))["terrain"]["extra"]
REFERENCE = {  # kind -> (tool, command) on dem.tif; GRASS commands run in a location of the DEM's CRS
    "tri": ("gdaldem", ["TRI", "dem.tif", "out.tif", "-alg", "Riley", "-q"]),
    "roughness": ("gdaldem", ["roughness", "dem.tif", "out.tif", "-q"]),
    "tpi": ("gdaldem", ["TPI", "dem.tif", "out.tif", "-q"]),  # the 3 x 3 TPI only: discs against an FFT
    "profile_curvature": ("grass", "r.slope.aspect elevation=dem pcurvature=pc tcurvature=tc --quiet"),
    "geomorphons": ("grass", "r.geomorphon -m elevation=dem forms=f search={search_m:g} skip={skip:g} "
                             "flat={flat:g} --quiet"),
}


def tile_dem(tile_id: str | None, halo: int):
    """(grid, tile, the tile's DEM padded by ``halo`` px: float32 m, NaN nodata), from the scale AOI's mosaic."""
    from gos_build.dem import dem_for_window

    cfg = with_defaults(yaml.safe_load(SCALE.read_text(encoding="utf-8")))
    grid = grid_from_config(cfg)
    mosaic = ROOT / "results" / "gos10m_scale" / "dem" / "mosaic.vrt"
    if not mosaic.exists():
        snakemake("--cores", "2", "--configfile", str(SCALE), str(mosaic.relative_to(ROOT)))
    size = grid.tile_chips * grid.chip_size
    full = [t for t in grid.tiles() if t.width == t.height == size]
    tile = next(t for t in full if t.id == tile_id) if tile_id else full[len(full) // 2]
    z = dem_for_window(mosaic, grid, grid.halo_window(tile.window, halo), cfg["terrain"]["resampling"])
    return grid, tile, z


def write_dem(path: Path, grid, tile, z: np.ndarray, halo: int) -> None:
    import rasterio

    win = grid.halo_window(tile.window, halo)
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1, dtype="float32",
                       crs=grid.crs, transform=grid.window_transform(win), nodata=-9999.0) as ds:
        ds.write(np.where(np.isnan(z), -9999.0, z).astype(np.float32), 1)


def time_reference(tool: str, command, folder: Path) -> float:
    if tool == "gdaldem":
        t0 = time.perf_counter()
        subprocess.run(["gdaldem", *command], cwd=folder, check=True)
        return time.perf_counter() - t0
    script = folder / "bench.sh"
    script.write_text("r.in.gdal input=dem.tif output=dem --quiet\ng.region raster=dem\n"
                      f"s=$(date +%s.%N); {command}; e=$(date +%s.%N)\necho \"SECONDS $s $e\"\n")
    res = subprocess.run(["grass", "--tmp-location", "dem.tif", "--exec", "bash", "bench.sh"], cwd=folder,
                         capture_output=True, text=True, check=True)
    s, e = next(line.split()[1:] for line in res.stdout.splitlines() if line.startswith("SECONDS"))
    return float(e) - float(s)


def fft_disc_seconds(z: np.ndarray, spec: dict, res: float) -> float:
    """The usual way to a disc mean: a float FFT convolution with the disc (scipy.signal.fftconvolve), the mean
    (and for dev the mean of squares) over the padded DEM -- not tile-invariant, for comparison only."""
    from scipy.signal import fftconvolve

    rows = gm.disc_rows(spec["radius_m"], res)
    r = max(abs(dy) for dy, _ in rows)
    kernel = np.zeros((2 * r + 1, 2 * r + 1))
    for dy, half in rows:
        kernel[dy + r, r - half : r + half + 1] = 1.0
    zz = z.astype(np.float64)
    t0 = time.perf_counter()
    fftconvolve(zz, kernel, mode="valid")
    if spec["kind"] == "dev":
        fftconvolve(zz * zz, kernel, mode="valid")
    return time.perf_counter() - t0


def per_kind(tile_id: str | None) -> list[dict]:
    rows = []
    res = 10.0
    curvatures = {n: s for n, s in EXAMPLE.items() if s["kind"].endswith("_curvature")}
    runs = [(name, {name: spec}) for name, spec in EXAMPLE.items() if name not in curvatures]
    runs.insert(5, ("+".join(curvatures), curvatures))  # computed together in a tile job, as GRASS does
    runs += [("dev_2000", {"dev_2000": {"kind": "dev", "radius_m": 2000}}),  # the largest radius the issue names
             ("tpi_2000", {"tpi_2000": {"kind": "tpi", "radius_m": 2000}})]
    widest = max(gm.halo_px(next(iter(specs.values())), res) for _, specs in runs)
    grid, tile, z_all = tile_dem(tile_id, widest)  # warped once; each kind takes the halo it needs from it
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for label, specs in runs:
            spec = next(iter(specs.values()))
            halo = gm.halo_px(spec, res)
            cut = widest - halo
            z = z_all[cut : z_all.shape[0] - cut, cut : z_all.shape[1] - cut]
            cells = tile.width * tile.height
            t0, c0 = time.perf_counter(), time.process_time()
            out = gm.compute_many(specs, z, halo, res)
            wall, cpu = time.perf_counter() - t0, time.process_time() - c0
            assert all(a.shape == (tile.height, tile.width) for a in out.values())
            row = {"layer": label, "kind": "+".join(s["kind"] for s in specs.values()),
                   "params": {k: v for k, v in spec.items() if k != "kind"}, "halo_px": halo, "cells": cells,
                   "seconds": round(wall, 3), "cpu_seconds": round(cpu, 3), "ns_per_cell": round(1e9 * wall / cells, 1)}
            kind = spec["kind"]
            if kind in ("tpi", "dev") and "radius_m" in spec:
                ref = fft_disc_seconds(z, spec, res)
                row.update(reference="scipy.signal.fftconvolve with the disc (float; not tile-invariant)",
                           reference_seconds=round(ref, 3), reference_ns_per_cell=round(1e9 * ref / cells, 1))
            elif kind in REFERENCE and shutil.which(REFERENCE[kind][0]):
                tool, command = REFERENCE[kind]
                write_dem(folder / "dem.tif", grid, tile, z, halo)
                if isinstance(command, str):
                    command = command.format(search_m=spec.get("search_m", 0), skip=spec.get("skip_m", 0),
                                             flat=spec.get("flat_deg", 1.0))
                ref = time_reference(tool, command, folder)
                ref_cells = z.shape[0] * z.shape[1]  # the reference computes the whole padded DEM
                row.update(reference=f"{tool} {command if isinstance(command, str) else command[0]}",
                           reference_seconds=round(ref, 3), reference_ns_per_cell=round(1e9 * ref / ref_cells, 1))
            rows.append(row)
            print(f"  {label:<12} halo {halo:>3} px  {wall:6.2f} s  {row['ns_per_cell']:7.1f} ns/cell"
                  + (f"   {row['reference']}: {row['reference_seconds']:.2f} s, {row['reference_ns_per_cell']:.1f} "
                     "ns/cell" if "reference" in row else ""), flush=True)
    return rows


def end_to_end() -> dict:
    out = {}
    base = yaml.safe_load(SCALE.read_text(encoding="utf-8"))
    for label, extra in (("default", None), ("eight extra layers", EXAMPLE)):
        cfg = json.loads(json.dumps(base))
        name = "gos10m_scale" if extra is None else "gos10m_scale_extra"
        cfg["aoi"]["name"] = name
        if extra:
            cfg.setdefault("terrain", {})["extra"] = extra
        path = RUNS / f"{name}.yaml"
        RUNS.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        # inputs first (shared: same demo section, same folder), then the build from scratch
        snakemake("--cores", "2", "--configfile", str(path), "--until", "demo_inputs")
        for folder in (ROOT / "results" / name, ROOT / "benchmarks" / "runs" / name):
            shutil.rmtree(folder, ignore_errors=True)
        wall = snakemake("--cores", "2", "--configfile", str(path))
        table = rule_table(ROOT / "benchmarks" / "runs" / name)
        chips = sum(1 for line in (ROOT / "results" / name / "dataset" / "labels.txt").read_text().splitlines()
                    if not line.startswith("#"))
        size = sum(f.stat().st_size for f in (ROOT / "results" / name / "dataset").rglob("*") if f.is_file())
        out[label] = {"wall_s": round(wall, 1), "chips": chips, "dataset_gb": round(size / 1e9, 2),
                      "tile": table.get("tile"), "dataset": table.get("dataset"), "package": table.get("package")}
        t = table.get("tile", {})
        print(f"  {label}: {wall:.1f} s, {chips} chips, {size / 1e9:.2f} GB; tile jobs {t.get('jobs')} "
              f"(CPU {t.get('cpu', 0):.0f} s, max wall {t.get('wall_max', 0):.1f} s, peak RSS "
              f"{t.get('rss_max', 0):.0f} MB)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tile", help="the tile of the scale AOI to time (default: a full one in the middle)")
    ap.add_argument("--skip-workflow", action="store_true", help="only the cost per kind")
    args = ap.parse_args()
    os.environ.setdefault("GDAL_CACHEMAX", "64")
    print("cost per kind per tile (one process, one core):", flush=True)
    result = {"per_kind": per_kind(args.tile)}
    if not args.skip_workflow:
        print("end to end, --cores 2:", flush=True)
        result["end_to_end"] = end_to_end()
    (RUNS / "geomorphometry.json").write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
