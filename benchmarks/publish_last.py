"""Benchmark: the publishing plan and the last publishing job on synthetic records of a province (never a test).

    python benchmarks/publish_last.py [--chips 350000]

No pixels: the tiles' records (``tiles/<id>/chips.json``, every field the tile jobs write, the statistics
of nine layers included) are made for ``--chips`` chips on the grid of ``configs/province.yaml`` (whole
tiles, west to east, random classes), then ``gos-build publish-plan`` runs on them; each group's folder is made
as its job would leave it for the last job -- its notes (the STAC extent) and its ``sums.txt`` (a line for
each of a chip's nine GeoTIFFs, its STAC Item and label GeoJSON: the manifest merge's real size) -- but
without the files themselves (``files/`` empty: their links are not timed); then ``gos-build dataset`` runs
with the default forms. Each step's wall time and peak RSS (its own process) are printed and written to
``benchmarks/runs/publish_last.json``.
"""

from __future__ import annotations

import argparse
import json
import random
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"
LAYERS = {"rgb": 3, "dem": 1, "hillshade": 1, "slope": 1, "mean": 1, "std": 1, "northness": 1, "eastness": 1,
          "dev": 1}
CLASSES = {1: "tectonic", 2: "volcanic", 3: "fluvial"}


def measured(cmd: list[str]) -> tuple[float, float]:
    """(wall seconds, peak RSS MB) of a command run in a process of its own."""
    probe = ("import resource, subprocess, sys, time; t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); "
             "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024); "
             "sys.exit(r.returncode)")
    res = subprocess.run([sys.executable, "-c", probe, *cmd], capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"{' '.join(cmd[:3])} failed:\n{res.stderr[-3000:]}")
    wall, rss = res.stdout.split()[-2:]
    return float(wall), float(rss)


def make_records(grid, n_chips: int, work: Path) -> list[Path]:
    """Tiles' records for ``n_chips`` chips: every lattice cell of whole tiles, west to east."""
    from gos_build.grid import lattice_id

    rng = random.Random(1)
    span = grid.chip_span
    paths = []
    made = 0
    for tile in sorted(grid.tiles(), key=lambda t: (t.col_off, t.row_off)):
        if made >= n_chips:
            break
        x0 = grid.x_min + tile.col_off * grid.resolution
        y1 = grid.y_max - tile.row_off * grid.resolution
        chips = []
        for i in range(tile.width // grid.chip_size):
            for j in range(tile.height // grid.chip_size):
                if made >= n_chips:
                    break
                x, y = x0 + i * span, y1 - (j + 1) * span
                cid = rng.choice(list(CLASSES))
                stats = {m: [{"n": 4096, "sum": rng.uniform(0, 4e6), "sumsq": rng.uniform(4e6, 4e9),
                              "min": rng.uniform(-5, 100), "max": rng.uniform(100, 2000)} for _ in range(b)]
                         for m, b in LAYERS.items()}
                chips.append({"id": lattice_id(x, y), "class": CLASSES[cid], "class_id": cid, "x": x, "y": y,
                              "purity": round(rng.uniform(0.5, 1), 4), "boundary_m": round(rng.uniform(0, 5000), 2),
                              "cloud": 0.0, "stats": stats, "bytes": 120_000})
                made += 1
        path = work / "tiles" / tile.id / "chips.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"tile": tile.id, "candidates": len(chips), "partial_aoi": 0, "kept": len(chips),
                                    "chips": chips, "rejected": {"purity": 0, "cloud": 0, "nodata": 0,
                                                                 "unlabelled": 0, "boundary": 0},
                                    "rejected_cells": []}, sort_keys=True) + "\n")
        paths.append(path)
    return paths


def make_groups(plan_dir: Path, grid, work: Path) -> list[Path]:
    """Each group's folder as its job leaves it, less its files: notes and sums."""
    from gos_build.archive.gather import PARTS_FILE, SUMS_FILE
    from gos_build.archive.plan import FILES_DIR, group_of_chips, read_chips, read_plan
    from gos_build.archive.writers.stac import item_path, label_path
    from gos_build.grid import chip_footprints_lonlat
    from gos_build.layout import chip_path

    plan = read_plan(plan_dir)
    group_of = group_of_chips(plan["groups"])
    by_group: dict[int, list[dict]] = {}
    for c in read_chips(plan_dir):
        by_group.setdefault(group_of(c["x"]), []).append(c)
    folders = []
    for k in range(len(plan["groups"])):
        folder = work / "groups" / str(k)
        (folder / FILES_DIR).mkdir(parents=True, exist_ok=True)
        chips = by_group.get(k, [])
        rings, _ = chip_footprints_lonlat(grid.crs, [(c["x"], c["y"]) for c in chips], grid.chip_span)
        lon = [p[0] for r in rings for p in r]
        lat = [p[1] for r in rings for p in r]
        extent = [min(lon), min(lat), max(lon), max(lat)] if chips else None
        (folder / PARTS_FILE).write_text(json.dumps({"stac": {"extent": extent}, "tree": None,
                                                      "packed": None, "parquet": None}) + "\n")
        rels = [chip_path(m, c["class"], c["id"]) for c in chips for m in LAYERS]
        rels += [p for c in chips for p in (item_path(c["id"]), label_path(c["id"]))]
        rels.sort(key=lambda r: r.split("/"))
        with open(folder / SUMS_FILE, "w") as f:
            f.writelines(f"{'0' * 64}  {r}\n" for r in rels)
        folders.append(folder)
    return folders


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chips", type=int, default=350_000)
    args = ap.parse_args()
    from gos_build.config import with_defaults
    from gos_build.grid import grid_from_config

    cfg = with_defaults(yaml.safe_load((ROOT / "configs" / "province.yaml").read_text(encoding="utf-8")))
    grid = grid_from_config(cfg)
    work = RUNS / "publish_last"
    subprocess.run(["rm", "-rf", str(work)], check=True)
    (work / "logs").mkdir(parents=True)
    (work / "grid.json").write_text(grid.to_json())
    t0 = time.perf_counter()
    records = make_records(grid, args.chips, work)
    print(f"records of {args.chips} chips in {len(records)} tiles: {time.perf_counter() - t0:.0f} s (not timed)")
    conf = json.dumps(cfg, ensure_ascii=False)
    gb = ["gos-build", "--log", str(work / "logs" / "plan.log")]
    plan_s, plan_mb = measured([*gb, "publish-plan", "--config", conf, "--grid", str(work / "grid.json"), "--out",
                                str(work / "plan"), *map(str, records)])
    groups = make_groups(work / "plan", grid, work)
    gb[2] = str(work / "logs" / "dataset.log")
    last_s, last_mb = measured([*gb, "dataset", "--config", conf, "--grid", str(work / "grid.json"), "--plan",
                                str(work / "plan"), "--out", str(work / "dataset"), *map(str, groups)])
    files = sum(1 for p in (work / "dataset").rglob("*") if p.is_file())
    manifest = sum(1 for _ in open(work / "dataset" / "MANIFEST.sha256"))
    out = {"chips": args.chips, "tiles": len(records), "groups": len(groups), "plan_s": round(plan_s, 1),
           "plan_peak_mb": round(plan_mb), "last_s": round(last_s, 1), "last_peak_mb": round(last_mb),
           "last_files_written": files, "manifest_lines": manifest}
    (RUNS / "publish_last.json").write_text(json.dumps(out, indent=2) + "\n")
    print("| step | wall s | peak RSS MB |\n|---|---:|---:|")
    print(f"| publish-plan ({args.chips} chips, {len(records)} tiles) | {plan_s:.1f} | {plan_mb:.0f} |")
    print(f"| dataset ({len(groups)} groups; {manifest} manifest lines) | {last_s:.1f} | {last_mb:.0f} |")


if __name__ == "__main__":
    main()
