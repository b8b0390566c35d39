"""Shared fixtures: repository paths, demo inputs made once per session, reference tools."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

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
