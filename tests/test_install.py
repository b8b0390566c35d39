"""From a fresh copy of the checkout, as a new user starts: ``bash scripts/demo.sh`` installs the package alone
(no test tools, no PyTorch), builds and validates the demo, says where the dataset, figures and next steps
are; the same environment draws the report."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

from helpers import ROOT

pytestmark = pytest.mark.slow  # a fresh virtual environment and a whole demo run


def _fresh_copy(dest):
    """The checkout's files as a clone would have them: tracked, and untracked but not ignored."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, capture_output=True,
                            check=True).stdout.decode().split("\0")
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)


def test_demo_script_from_a_fresh_copy_installs_no_pytorch_and_says_where_things_are(tmp_path):
    work = tmp_path / "gos-build"
    _fresh_copy(work)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "GOS_BUILD_EXTRAS")}
    res = subprocess.run(["bash", "scripts/demo.sh"], cwd=work, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    py = work / ".venv" / "bin" / "python"
    present = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('pytest', 'torch') "
                              "if u.find_spec(m)])"], capture_output=True, text=True)
    assert present.stdout.strip() == "[]"  # the package alone
    for where in ("results/demo/dataset", "results/demo/figures", "your own area", "gos-build init", "check-config"):
        assert where in res.stdout, res.stdout[-2000:]
    dataset = work / "results" / "demo" / "dataset"
    res = subprocess.run([str(work / ".venv" / "bin" / "gos-build"), "validate", str(dataset)], capture_output=True,
                         text=True, env=env)
    assert res.returncode == 0 and f"{dataset}: OK" in res.stdout, res.stderr
    assert (work / "results" / "demo" / "figures" / "overview.png").stat().st_size > 10000
    # the Chinese class names drawn with the font the package's dependencies bring (no system font needed)
    assert "Chinese glyphs" not in (work / "logs" / "demo" / "figures.log").read_text(encoding="utf-8")
    res = subprocess.run([str(work / ".venv" / "bin" / "snakemake"), "--report", "report.html"], cwd=work,
                         capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert (work / "report.html").stat().st_size > 100000
    again = subprocess.run(["bash", "scripts/demo.sh"], cwd=work, capture_output=True, text=True, env=env)
    assert again.returncode == 0 and "installing" not in again.stdout  # idempotent: nothing reinstalled
