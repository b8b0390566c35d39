"""`snakemake --report` after a run: every figure is in the report, and Chromium renders it."""

from __future__ import annotations

import base64
import re
import subprocess

import pytest

from helpers import AOI_A, require_tool, run_workflow, workflow_config

pytestmark = pytest.mark.slow  # runs the workflow

FIGURES = ["overview.png", "counts.png", "histograms.png", "gallery_tectonic.png", "gallery_volcanic.png",
           "gallery_fluvial.png"]


def test_report_holds_every_figure_and_renders(inputs, runs, tmp_path):
    work = runs["a2"].parents[1]  # the run's working directory
    report = tmp_path / "report.html"
    res = run_workflow(work, workflow_config(inputs, "aoi", AOI_A), "--report", str(report))
    assert res.returncode == 0, res.stderr[-3000:]
    html = report.read_text(encoding="utf-8")
    figures = runs["a2"] / "figures"
    for name in FIGURES:
        png = (figures / name).read_bytes()
        assert png[:8] == b"\x89PNG\r\n\x1a\n"
        # embedded as the very bytes of the file (base64), under its own name
        assert base64.b64encode(png).decode() in html, name
        assert name in html
    for caption in ("The AOI at a glance", "Sample chips of one class", "Value distributions of every layer"):
        assert caption in html
    # the page renders in a real browser: Chromium runs the report's JavaScript and lays out the categories
    chromium = require_tool("chromium")
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={tmp_path / 'profile'}", "--virtual-time-budget=8000"]
    dom = subprocess.run([chromium, *flags, "--dump-dom", report.as_uri()], capture_output=True, text=True,
                         timeout=120).stdout
    for category in ("AOI overview", "Chips and rejections", "Layer histograms", "Chip galleries"):
        assert category in dom, category
    shot = tmp_path / "report.png"
    subprocess.run([chromium, *flags, f"--screenshot={shot}", "--window-size=1400,900", report.as_uri()],
                   capture_output=True, timeout=120)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000  # not a blank page
    assert re.search(r"gos-build built a GOS10m-style", dom)
