"""The modality comparison and the boundary errors, measured: the baseline on the demo and the ~500 km2 AOI,
both with ``split.folds: 5`` (a measurement, not a test).

    python benchmarks/baseline.py [--skip-500]

Builds each dataset when it is missing (not timed), then times ``snakemake <aoi>/baseline/metrics.json
--cores 2`` (every variant of ``baseline.modalities`` over the five folds, in one process) and prints the
ablation and boundary tables of its ``report.md``. The ~500 km2 AOI is the one ``benchmarks/scale.py`` makes
inside the scale AOI's inputs (run that first, or its ``--skip-cores-1`` part, for the inputs).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
RUNS = ROOT / "benchmarks" / "runs"


def config(name: str, base: Path) -> Path:
    cfg = yaml.safe_load(base.read_text(encoding="utf-8"))
    cfg["aoi"]["name"] = name
    cfg.setdefault("split", {})["folds"] = 5
    out = RUNS / f"{name}.yaml"
    out.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    return out


def snakemake(*args) -> float:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    t0 = time.perf_counter()
    res = subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=ROOT, env=env, capture_output=True, text=True)
    if res.returncode:
        sys.exit(f"snakemake {' '.join(args)} failed:\n{res.stderr[-3000:]}")
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--skip-500", action="store_true")
    args = ap.parse_args()
    RUNS.mkdir(parents=True, exist_ok=True)
    todo = [("demo_folds", ROOT / "config.yaml")]
    if not args.skip_500:
        base = RUNS / "gos10m_500.yaml"
        if not base.exists():
            sys.exit(f"{base} is missing: run python benchmarks/scale.py --skip-cores-1 first (it writes it)")
        todo.append(("gos10m_500_folds", base))
    for name, base in todo:
        cfg = config(name, base)
        snakemake(f"results/{name}/dataset", "--cores", "2", "--configfile", str(cfg), "--quiet", "rules")
        chips = len((ROOT / "results" / name / "dataset" / "labels.txt").read_text().splitlines()) - 1
        wall = snakemake(f"results/{name}/baseline/metrics.json", "--cores", "2", "--configfile", str(cfg),
                         "--forcerun", "baseline", "--quiet", "rules")
        print(f"\n## {name}: {chips} chips, baseline {wall:.0f} s with --cores 2\n")
        print((ROOT / "results" / name / "baseline" / "report.md").read_text(encoding="utf-8"))


if __name__ == "__main__":
    main()
