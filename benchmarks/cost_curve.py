"""Benchmark: how time, memory and disk grow with the AOI (never part of the tests).

    python benchmarks/cost_curve.py [--only 500,4800] [--inputs-only]

One synthetic landscape (the demo generator, seed 1, like configs/gos10m_scale.yaml)
over a ~19 000 km2 bbox, generated once beforehand (not timed); three AOIs nested
inside it and centred on it, ~500, ~4 800 (the scale AOI's bbox) and ~19 000 km2, each
built from scratch with ``--cores 2``: wall time, CPU seconds per rule and peak RSS
of the largest job (Snakemake's ``benchmark:`` files), peak disk used under
``results/`` during the run (sampled) and what is left after it, chips per second
and seconds per km2. Then the province: the dry run's time and its jobs per rule
(each one SLURM submission with profiles/slurm, but the local ``all``).

Prints a Markdown table; everything also goes to benchmarks/runs/cost_curve.json.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, RUNS, build, print_table, snakemake  # noqa: E402

from gos_build.config import with_defaults  # noqa: E402
from gos_build.grid import grid_from_config  # noqa: E402

CENTRE = (128.0, 43.85)  # the scale AOI's centre (configs/gos10m_scale.yaml)
AOIS = {  # name -> (lon span, lat span) in degrees, ~km2 at 43.85 N
    "500": (0.29, 0.20),
    "4800": (0.90, 0.60),  # the scale AOI's bbox
    "19000": (1.80, 1.20),
}


def bbox(span) -> list[float]:
    (lon, lat), (w, h) = CENTRE, span
    return [round(lon - w / 2, 4), round(lat - h / 2, 4), round(lon + w / 2, 4), round(lat + h / 2, 4)]


def configs() -> dict[str, Path]:
    base = yaml.safe_load((ROOT / "configs" / "gos10m_scale.yaml").read_text(encoding="utf-8"))
    demo = dict(base["demo"], out="resources/cost_curve", bbox=bbox(AOIS["19000"]), granules=4)
    inputs = dict(base["inputs"], sentinel2=["resources/cost_curve/sentinel2/*.SAFE"],
                  dem=["resources/cost_curve/srtm/*.hgt"], polygons="resources/cost_curve/polygons.gpkg")
    out = {}
    for name, span in AOIS.items():
        cfg = dict(base, aoi={"name": f"cost_{name}", "bbox": bbox(span)}, demo=demo, inputs=inputs)
        path = RUNS / f"cost_{name}.yaml"
        path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
        out[name] = path
    return out


def area_km2(config: Path) -> float:
    grid = grid_from_config(with_defaults(yaml.safe_load(config.read_text(encoding="utf-8"))))
    return grid.aoi.area / 1e6


def jobs_per_rule(text: str) -> dict[str, int]:
    """The job-stats table of a dry run (`--quiet rules`): rule -> jobs (the first table; a checkpoint prints
    it twice)."""
    rules: dict[str, int] = {}
    for line in text.splitlines():
        m = re.fullmatch(r"(\w+)\s+(\d+)", line.strip())
        if m and m.group(1) not in ("job", "count"):
            if m.group(1) in rules and m.group(1) != "total":
                break
            rules[m.group(1)] = int(m.group(2))
    return rules


def province() -> dict:
    """The province's dry run: its time and jobs per rule; as SLURM submissions with profiles/slurm every job is
    one but ``all`` (local), and the ``s2_granule`` jobs come after the checkpoint (not in a dry run)."""
    import subprocess

    cfg = str(ROOT / "configs" / "province.yaml")
    t0 = time.perf_counter()
    local = subprocess.run([sys.executable, "-m", "snakemake", "-n", "--configfile", cfg, "--quiet", "rules"],
                           cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    rules = jobs_per_rule(local.stdout + local.stderr)
    return {"dry_run_s": wall, "jobs": rules, "slurm_submissions": rules.get("total", 0) - rules.get("all", 0)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="comma-separated AOIs to build (default: all of " + ", ".join(AOIS) + ")")
    ap.add_argument("--inputs-only", action="store_true", help="generate the inputs and stop")
    args = ap.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    paths = configs()
    manifest = ROOT / "resources" / "cost_curve" / "demo-inputs.json"
    out_path = RUNS / "cost_curve.json"
    out = json.loads(out_path.read_text()) if out_path.exists() else {}
    if not manifest.exists():
        out["inputs_s"] = snakemake(str(manifest.relative_to(ROOT)), "--cores", "2", "--configfile",
                                    str(paths["19000"]), "--quiet", "rules")
        print(f"inputs generated in {out['inputs_s']:.0f} s")
    if args.inputs_only:
        return
    names = args.only.split(",") if args.only else list(AOIS)
    for name in names:
        run = build(paths[name], f"cost_{name}", 2)
        run["area_km2"] = area_km2(paths[name])
        out[name] = run
        print_table(f"~{name} km2 ({run['area_km2']:.0f} km2)", run)
        out_path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    out["province"] = province()
    out_path.write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print("\n| AOI | km2 | chips | wall s | s / 1000 km2 | chips/s | CPU s (all jobs) | largest job MB "
          "| peak disk GB | after GB | dataset+dist GB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in AOIS:
        if name not in out:
            continue
        r = out[name]
        cpu = sum(x["cpu"] for x in r["rules"].values())
        print(f"| ~{name} | {r['area_km2']:.0f} | {r['chips']} | {r['wall_s']:.1f} | "
              f"{1000 * r['wall_s'] / r['area_km2']:.1f} | {r['chips'] / r['wall_s']:.1f} | {cpu:.0f} | "
              f"{r['peak_rss_mb']:.0f} | {r['disk']['peak_gb']:.2f} | {r['disk']['final_gb']:.2f} | "
              f"{r['disk']['product_gb']:.2f} |")
    p = out["province"]
    print(f"\nprovince dry run {p['dry_run_s']:.1f} s; jobs per rule {p['jobs']}; SLURM with profiles/slurm: "
          f"{p['slurm_submissions']} submissions before the granules")


if __name__ == "__main__":
    main()
