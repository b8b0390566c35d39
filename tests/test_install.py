"""A plain `pip install` of this checkout (no extras) builds the default target and the report."""

from __future__ import annotations

import os
import subprocess
import sys
import venv

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # a fresh virtual environment and a whole demo run


def test_plain_install_builds_the_demo_and_the_report(tmp_path):
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    py = env_dir / "bin" / "python"
    # the package registry (or pip's cache) provides the dependencies; no extra, no test or ml packages
    res = subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(ROOT)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-3000:]
    missing = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('pytest', 'torch') "
                              "if u.find_spec(m)])"], capture_output=True, text=True)
    assert missing.stdout.strip() == "[]"  # really the plain install
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env["PATH"] = f"{env_dir / 'bin'}{os.pathsep}{env['PATH']}"
    work = tmp_path / "work"
    work.mkdir()
    snakemake = [str(env_dir / "bin" / "snakemake"), "--snakefile", str(ROOT / "Snakefile"), "--directory", str(work)]
    res = subprocess.run([*snakemake, "--cores", "2"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    dataset = work / "results" / "demo" / "dataset"
    res = subprocess.run([str(env_dir / "bin" / "gos-build"), "validate", str(dataset)], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0 and res.stdout.strip().endswith("OK"), res.stderr
    assert (work / "results" / "demo" / "figures" / "overview.png").stat().st_size > 10000
    res = subprocess.run([*snakemake, "--report", str(work / "report.html")], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "report.html").stat().st_size > 100000
    assert sys.executable not in (env_dir / "bin" / "gos-build").read_text()  # the new venv's, not ours
