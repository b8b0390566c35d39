"""Benchmark: the scale AOI with ten Sentinel-2 bands and two periods against rgb alone (never a test).

    python benchmarks/bands.py

Builds configs/gos10m_scale.yaml three times from scratch on 2 cores, back to back: as it is (rgb); with
``sentinel2.bands: [B02, B03, B04, B05, B06, B07, B08, B8A, B11, B12]``; and with those bands and two periods
(``sentinel2.periods``) -- each another AOI name over the same inputs. The scale inputs are one date (two
granules): both periods hold the same two products, so the third build measures what two periods cost, not
what seasons show. Regenerates the inputs first where they come from a generator that wrote no 20 m bands.
Prints wall time, the tile jobs' CPU seconds and peak memory, every rule's table; writes
benchmarks/runs/bands.json.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from scale import ROOT, RUNS, build, print_table, snakemake  # noqa: E402

TEN = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]
PERIODS = {"october": "2020-10-01/2020-10-31", "autumn": "2020-09-01/2020-11-30"}  # both hold the one date


def main() -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    cfg = yaml.safe_load((ROOT / "configs" / "gos10m_scale.yaml").read_text(encoding="utf-8"))
    demo = ROOT / cfg["demo"]["out"]
    if demo.exists() and not list(demo.glob("sentinel2/*.SAFE/GRANULE/*/IMG_DATA/R20m/*_B05_20m.jp2")):
        shutil.rmtree(demo)  # inputs of an older generator: no 20 m bands
    rgb = RUNS / "gos10m_scale.yaml"
    rgb.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    bands_cfg = {**cfg, "aoi": {**cfg["aoi"], "name": "gos10m_scale_bands"}, "sentinel2": {"bands": TEN}}
    bands = RUNS / "gos10m_scale_bands.yaml"
    bands.write_text(yaml.safe_dump(bands_cfg, allow_unicode=True), encoding="utf-8")
    periods_cfg = {**cfg, "aoi": {**cfg["aoi"], "name": "gos10m_scale_periods"},
                   "sentinel2": {"bands": TEN, "periods": PERIODS}}
    periods = RUNS / "gos10m_scale_periods.yaml"
    periods.write_text(yaml.safe_dump(periods_cfg, allow_unicode=True), encoding="utf-8")
    out = {}
    if not (demo / "demo-inputs.json").exists():
        out["inputs_s"] = snakemake(str((demo / "demo-inputs.json").relative_to(ROOT)), "--cores", "2",
                                    "--configfile", str(rgb), "--quiet", "rules")
        print(f"inputs generated in {out['inputs_s']:.0f} s")
    out["rgb"] = build(rgb, "gos10m_scale", 2)
    print_table("rgb alone", out["rgb"])
    out["bands"] = build(bands, "gos10m_scale_bands", 2)
    print_table("ten bands", out["bands"])
    shutil.rmtree(ROOT / "results" / "gos10m_scale_bands", ignore_errors=True)  # disk: 10 GB a build
    out["periods"] = build(periods, "gos10m_scale_periods", 2)
    print_table("ten bands and two periods", out["periods"])
    shutil.rmtree(ROOT / "results" / "gos10m_scale_periods", ignore_errors=True)
    for key in ("rgb", "bands", "periods"):
        tile = out[key]["rules"]["tile"]
        print(f"{key}: wall {out[key]['wall_s']:.1f} s, {out[key]['chips']} chips; tile jobs {tile['jobs']}: "
              f"CPU {tile['cpu']:.1f} s, wall max {tile['wall_max']:.1f} s, peak RSS {tile['rss_max']:.0f} MB; "
              f"largest job {out[key]['peak_rss_mb']:.0f} MB; dataset + dist {out[key]['disk']['product_gb']:.2f} GB")
    (RUNS / "bands.json").write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
