"""Benchmark: the GOS10m-size AOI end to end (never part of the tests).

    python benchmarks/scale.py [--skip-cores-1] [--skip-small]

1. generates the inputs of configs/gos10m_scale.yaml once (timed apart:
   inputs are "already generated" for the targets);
2. times the GDAL pair that bounds one pass over the AOI: ``gdalwarp -r cubic``
   of the SRTM tiles onto the 10 m grid (Float32) and ``gdaldem slope`` of the
   result (Debian's gdal-bin), in the same run as the workflow: three times
   before it and twice after, the median counts;
3. builds the dataset with --cores 2 (the ratio: workflow wall / GDAL pair),
   validates it (``gos-build validate``, timed), then builds again from
   scratch with --cores 1;
4. builds a ~500 km2 AOI inside it over the same inputs (peak memory must
   not grow with the AOI);
5. dry-runs configs/province.yaml.

Prints, from Snakemake's `benchmark:` files, per rule: jobs, wall seconds
(sum and max over jobs), CPU seconds, peak RSS (max over jobs); and end-to-end
wall times, the ratio, the speed-up and chips per second. Results go to
benchmarks/runs/scale.json as well.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import yaml
from pyproj import Transformer

from gos_build.config import with_defaults
from gos_build.grid import grid_from_config

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"


def snakemake(*args, check=True) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if check and res.returncode != 0:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return wall


def rule_table(bench_dir: Path) -> dict[str, dict]:
    rows: dict[str, dict] = defaultdict(lambda: {"jobs": 0, "wall_sum": 0.0, "wall_max": 0.0, "cpu": 0.0, "rss_max": 0.0})
    for tsv in sorted(bench_dir.rglob("*.tsv")):
        rule = tsv.relative_to(bench_dir).parts[0].removesuffix(".tsv")
        with open(tsv) as f:
            rec = next(csv.DictReader(f, delimiter="\t"))
        r = rows[rule]
        r["jobs"] += 1
        r["wall_sum"] += float(rec["s"])
        r["wall_max"] = max(r["wall_max"], float(rec["s"]))
        r["cpu"] += float(rec["cpu_time"]) if rec.get("cpu_time") not in (None, "", "NA", "-") else 0.0
        rss = rec.get("max_rss")
        r["rss_max"] = max(r["rss_max"], float(rss) if rss not in (None, "", "NA", "-") else 0.0)
    return dict(rows)


# a command's last log line (gos_build.cli): "<date> <time>,<ms> INFO gos_build: <command>: done in <s> s; peak
# memory <MB> MB[ (its largest worker ...)]"
_DONE = re.compile(r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}) .*: done in ([\d.]+) s; peak memory (\d+) MB")


def job_done(path: Path) -> tuple[float, float, float] | None:
    """(end in seconds of the epoch, the command's seconds, its peak memory in MB) from a job's log's last
    ``done in`` line (what C libraries said may follow it); None where the job did not finish."""
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    m = next((m for m in map(_DONE.match, reversed(lines)) if m), None)
    if m is None:
        return None
    from datetime import datetime

    return datetime.strptime(m[1], "%Y-%m-%d %H:%M:%S,%f").timestamp(), float(m[2]), float(m[3])


def log_peaks(log_dir: Path) -> dict[str, float]:
    """Per rule, the largest peak memory (MB) its jobs' logs end with (``<rule>.log``, ``<rule>/<job>.log``): the
    kernel's high-water mark of each job's process, exact where Snakemake's benchmark samples."""
    peaks: dict[str, float] = {}
    for path in sorted(log_dir.rglob("*.log")):
        rule = path.relative_to(log_dir).parts[0].removesuffix(".log")
        done = job_done(path)
        if done:
            peaks[rule] = max(peaks.get(rule, 0.0), done[2])
    return peaks


def disk_bytes(folder: Path) -> int:
    """Bytes allocated under ``folder`` (st_blocks), each inode once: hard links are not counted twice."""
    seen, total = set(), 0
    for dirpath, dirnames, filenames in os.walk(folder):
        for n in dirnames + filenames:
            st = os.lstat(os.path.join(dirpath, n))
            if (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                total += st.st_blocks * 512
    return total


class DiskSampler(threading.Thread):
    """Peak of the bytes used on the file system of ``folder`` above their level at the start, sampled every
    ``every`` seconds with statvfs (cheap: a walk of ~100 000 files every second would cost the run a core).
    It counts every writer of that file system: run nothing else beside a benchmark."""

    def __init__(self, folder: Path, every: float = 0.25, settle_s: float = 60.0):
        super().__init__(daemon=True)
        self.folder, self.every, self.peak = folder, every, 0
        self._stop_event = threading.Event()
        # the base once the file system has settled: blocks of files deleted just before (an earlier build's
        # results) are freed for a while after, and used bytes falling during the run hid its peak
        self.base, t0 = self._used(), time.perf_counter()
        while time.perf_counter() - t0 < settle_s:
            time.sleep(1.0)
            now = self._used()
            if now == self.base:
                break
            self.base = now

    def _used(self) -> int:
        st = os.statvfs(self.folder)
        return (st.f_blocks - st.f_bfree) * st.f_frsize

    def run(self) -> None:
        while not self._stop_event.wait(self.every):
            self.peak = max(self.peak, self._used() - self.base)

    def stop(self) -> int:
        self._stop_event.set()
        self.join()
        self.peak = max(self.peak, self._used() - self.base)
        return self.peak


def build(config: Path, name: str, cores: int) -> dict:
    """A build from scratch: wall, Snakemake's per-rule table, chips, peak RSS, peak and final disk."""
    out = ROOT / "results" / name
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(RUNS / name, ignore_errors=True)
    shutil.rmtree(ROOT / "logs" / name, ignore_errors=True)
    (ROOT / "results").mkdir(exist_ok=True)
    subprocess.run(["sync"], check=False)
    sampler = DiskSampler(ROOT / "results")
    sampler.start()
    try:
        wall = snakemake("--cores", str(cores), "--configfile", str(config), "--quiet", "rules")
    finally:
        subprocess.run(["sync"], check=False)
        peak = sampler.stop()
    table = rule_table(RUNS / name)
    for rule, mb in log_peaks(ROOT / "logs" / name).items():
        if rule in table:
            table[rule]["peak_log_mb"] = mb
    chips = len((out / "dataset" / "labels.txt").read_text().splitlines()) - 1
    product = disk_bytes(out / "dataset") + disk_bytes(out / "dist")
    return {"cores": cores, "wall_s": wall, "chips": chips, "rules": table,
            "peak_rss_mb": max(r["rss_max"] for r in table.values()),
            "disk": {"peak_gb": peak / 1e9, "final_gb": disk_bytes(out) / 1e9, "product_gb": product / 1e9,
                     "left": {p.name: round(disk_bytes(p) / 1e9, 3) for p in sorted(out.iterdir()) if p.is_dir()}}}


def print_table(title: str, run: dict) -> None:
    d = run["disk"]
    print(f"\n### {title}: --cores {run['cores']}, {run['wall_s']:.1f} s end to end, {run['chips']} chips "
          f"({run['chips'] / run['wall_s']:.1f} chips/s), peak RSS of any job {run['peak_rss_mb']:.0f} MB\n")
    print(f"disk under results/: peak {d['peak_gb']:.2f} GB during the run, {d['final_gb']:.2f} GB after it; "
          f"dataset/ + dist/ {d['product_gb']:.2f} GB (peak / product {d['peak_gb'] / d['product_gb']:.2f}); "
          f"left: {d['left']}\n")
    print("| rule | jobs | wall s (sum) | wall s (max job) | CPU s | peak RSS MB (sampled) | peak MB (its log) |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for rule, r in sorted(run["rules"].items(), key=lambda kv: -kv[1]["wall_sum"]):
        print(f"| {rule} | {r['jobs']} | {r['wall_sum']:.1f} | {r['wall_max']:.1f} | {r['cpu']:.1f} "
              f"| {r['rss_max']:.0f} | {r.get('peak_log_mb', float('nan')):.0f} |")


def gdal_pair(grid, hgts: list[Path], work: Path) -> dict:
    """Seconds of ``gdalwarp -r cubic`` (SRTM -> the grid, Float32) and ``gdaldem slope`` of its result."""
    if not shutil.which("gdalwarp") or not shutil.which("gdaldem"):
        sys.exit("the GDAL pair needs gdalwarp and gdaldem (Debian: apt-get install gdal-bin)")
    work.mkdir(parents=True, exist_ok=True)
    dem, slope = work / "pair_dem.tif", work / "pair_slope.tif"
    x0, y0, x1, y1 = grid.bounds
    out = {}
    for name, cmd in (("gdalwarp", ["gdalwarp", "-q", "-overwrite", "-r", "cubic", "-t_srs", grid.crs, "-te", str(x0),
                                    str(y0), str(x1), str(y1), "-tr", str(grid.resolution), str(grid.resolution),
                                    "-ot", "Float32", *map(str, hgts), str(dem)]),
                      ("gdaldem", ["gdaldem", "slope", "-q", str(dem), str(slope)])):
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        out[name] = time.perf_counter() - t0
    out["pair_s"] = out["gdalwarp"] + out["gdaldem"]
    for p in (dem, slope):
        p.unlink(missing_ok=True)
    return out


def write_small_config(cfg: dict) -> tuple[Path, list[float]]:
    """benchmarks/runs/gos10m_500.yaml: ~500 km2 inside the scale AOI, same inputs: one full processing tile plus
    ~1 km around it, so the largest job of both runs works on a full tile (memory is bounded by the tile, not
    the AOI). Returns its path and bbox."""
    grid = grid_from_config(with_defaults(cfg))
    full = [t for t in grid.tiles() if (t.width, t.height) == (grid.tile_chips * grid.chip_size,) * 2]
    t = full[len(full) // 2]
    x0 = grid.x_min + t.col_off * grid.resolution - 1000
    y1 = grid.y_max - t.row_off * grid.resolution + 1000
    x1, y0 = x0 + t.width * grid.resolution + 2000, y1 - t.height * grid.resolution - 2000
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform([x0, x1, x1, x0], [y0, y0, y1, y1])
    small_bbox = [round(min(lon), 4), round(min(lat), 4), round(max(lon), 4), round(max(lat), 4)]
    small = dict(cfg, aoi={"name": "gos10m_500", "bbox": small_bbox},
                 demo=dict(cfg["demo"], bbox=cfg["aoi"]["bbox"]))  # the scale AOI's inputs, not regenerated
    small_cfg = RUNS / "gos10m_500.yaml"
    RUNS.mkdir(parents=True, exist_ok=True)
    small_cfg.write_text(yaml.safe_dump(small, allow_unicode=True), encoding="utf-8")
    return small_cfg, small_bbox


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-cores-1", action="store_true", help="skip the --cores 1 run (saves several minutes)")
    ap.add_argument("--skip-small", action="store_true", help="skip the 500 km2 AOI")
    args = ap.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    scale = ROOT / "configs" / "gos10m_scale.yaml"
    cfg = yaml.safe_load(scale.read_text(encoding="utf-8"))
    cfg["demo"]["bbox"] = cfg["aoi"]["bbox"]  # explicit, so the small AOI below shares the very same inputs
    scale = RUNS / "gos10m_scale.yaml"
    scale.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    manifest = ROOT / cfg["demo"]["out"] / "demo-inputs.json"
    out = {"machine": f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"}
    if not manifest.exists():
        out["inputs_s"] = snakemake(str(manifest.relative_to(ROOT)), "--cores", "2", "--configfile", str(scale),
                                    "--quiet", "rules")
        print(f"inputs generated in {out['inputs_s']:.0f} s")
    small_cfg, small_bbox = write_small_config(cfg)

    grid_scale = grid_from_config(with_defaults(cfg))
    hgts = sorted((ROOT / cfg["demo"]["out"] / "srtm").glob("*.hgt"))
    # the pair three times before the workflow and twice after: this machine's speed drifts by tens of
    # per cent between minutes (disk write-back, neighbours), so the ratio takes the median of five
    pairs = []
    for _ in range(3):
        subprocess.run(["sync"], check=False)
        pairs.append(gdal_pair(grid_scale, hgts, RUNS / "pair"))
    subprocess.run(["sync"], check=False)
    out["scale_2"] = build(scale, "gos10m_scale", 2)
    print_table("~4800 km2", out["scale_2"])
    for _ in range(2):
        subprocess.run(["sync"], check=False)
        pairs.append(gdal_pair(grid_scale, hgts, RUNS / "pair"))
    pairs.sort(key=lambda p: p["pair_s"])
    out["gdal_pairs"], out["gdal_pair"] = pairs, pairs[len(pairs) // 2]
    each = ", ".join(f"{p['pair_s']:.1f}" for p in pairs)
    print(f"GDAL pair (median of {len(pairs)}, in s: {each}): "
          f"gdalwarp -r cubic {out['gdal_pair']['gdalwarp']:.1f} s + gdaldem slope "
          f"{out['gdal_pair']['gdaldem']:.1f} s = {out['gdal_pair']['pair_s']:.1f} s")
    out["ratio"] = out["scale_2"]["wall_s"] / out["gdal_pair"]["pair_s"]
    print(f"\nworkflow / GDAL pair: {out['scale_2']['wall_s']:.1f} s / {out['gdal_pair']['pair_s']:.1f} s = "
          f"{out['ratio']:.1f}x")
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "gos_build.cli", "validate",
                          str(ROOT / "results" / "gos10m_scale" / "dataset")], capture_output=True, text=True)
    out["validate_s"] = time.perf_counter() - t0
    print(f"gos-build validate of the scale dataset: {out['validate_s']:.1f} s ({res.stdout.strip() or res.stderr[-300:]})")
    if not args.skip_cores_1:
        out["scale_1"] = build(scale, "gos10m_scale", 1)
        print_table("~4800 km2", out["scale_1"])
        print(f"\nspeed-up --cores 2 vs 1: {out['scale_1']['wall_s'] / out['scale_2']['wall_s']:.2f}x")
    if not args.skip_small:
        out["small_2"] = build(small_cfg, "gos10m_500", 2)
        print_table("~500 km2", out["small_2"])
        print(f"\nsmall AOI bbox {small_bbox}: {out['small_2']['chips']} chips")
        print(f"peak RSS 4800 km2 / 500 km2: {out['scale_2']['peak_rss_mb'] / out['small_2']['peak_rss_mb']:.2f}")
    out["province_dry_run_s"] = snakemake("-n", "--configfile", str(ROOT / "configs" / "province.yaml"), "--quiet")
    print(f"province dry run: {out['province_dry_run_s']:.1f} s")
    (RUNS / "scale.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(f"\nmachine: {out['machine']}")


if __name__ == "__main__":
    main()
