"""Shared fixtures: repository paths, demo inputs made once per session, reference tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
# a small AOI outside China, in another UTM zone (31N): Chaine des Puys, France
AUVERGNE_BBOX = (2.95, 45.72, 3.01, 45.765)


def require_tool(name: str) -> str:
    """Path of a reference command-line tool; missing is a failure under CI, a skip elsewhere."""
    path = shutil.which(name)
    if path:
        return path
    msg = f"{name} not found (Debian package gdal-bin; scripts/check.sh installs it)"
    if os.environ.get("CI"):
        pytest.fail(msg)
    pytest.skip(msg)


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Run `gos-build ARGS` in a subprocess, as a user would."""
    return subprocess.run([sys.executable, "-m", "gos_build.cli", *args], cwd=cwd, capture_output=True,
                          text=True)


@pytest.fixture(scope="session")
def make_demo(tmp_path_factory):
    """Demo inputs for the small Auvergne AOI (UTM 31N), made once per distinct set of arguments."""
    from gos_build.demo import demo_inputs

    made: dict = {}

    def make(**kwargs) -> Path:
        args = {"seed": 3, "baseline": "05.09", "cloud_fraction": 0.1, "granules": 1, **kwargs}
        key = tuple(sorted(args.items()))
        if key not in made:
            out = tmp_path_factory.mktemp("demo")
            demo_inputs(AUVERGNE_BBOX, out, **args)
            made[key] = out
        return made[key]

    return make


@pytest.fixture(scope="session")
def auvergne_demo(make_demo) -> Path:
    """Demo inputs for a small AOI in France (UTM 31N), baseline 05.09, 10 % cloud."""
    return make_demo()


# -- whole-workflow runs, shared by test_workflow and test_ml ---------------------------
DEMO_BBOX = (128.125, 43.60, 128.25, 43.69)
AOI_A = [128.14, 43.615, 128.18, 43.645]  # ~3.2 x 3.3 km
AOI_B = [128.15, 43.62, 128.19, 43.65]  # overlaps most of A


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    from gos_build.demo import demo_inputs

    out = tmp_path_factory.mktemp("inputs")
    demo_inputs(DEMO_BBOX, out, seed=0, cloud_fraction=0.05)
    return out


def workflow_config(inputs: Path, name: str, bbox, **extra) -> dict:
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    del cfg["demo"]
    cfg["aoi"] = {"name": name, "bbox": bbox}
    cfg["inputs"].update(sentinel2=[str(inputs / "sentinel2" / "*.SAFE")], dem=[str(inputs / "srtm" / "*.hgt")],
                         polygons=str(inputs / "polygons.gpkg"))
    cfg["grid"]["tile_chips"] = 4  # several tiles even for a small AOI
    cfg["split"]["block_chips"] = 2
    for key, value in extra.items():
        cfg[key].update(value)
    return cfg


def run_workflow(workdir: Path, cfg: dict, *args) -> subprocess.CompletedProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "aoi.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    # the rules call `gos-build`: the one installed beside this Python
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"}
    return subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "--directory",
                           str(workdir), "--configfile", str(path), *args], capture_output=True, text=True, env=env)


@pytest.fixture(scope="session")
def runs(inputs, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for key, cores, bbox in (("a2", "2", AOI_A), ("a1", "1", AOI_A), ("b2", "2", AOI_B)):
        res = run_workflow(base / key, workflow_config(inputs, "aoi", bbox), "--cores", cores)
        assert res.returncode == 0, res.stderr[-3000:]
        out[key] = base / key / "results" / "aoi"
    return out
