"""Fixtures: demo inputs made once per session, whole-workflow runs shared by the slow tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from helpers import AOI_A, AOI_B, AUVERGNE_BBOX, DEMO_BBOX, run_workflow, workflow_config


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


@pytest.fixture(scope="session")
def inputs(tmp_path_factory) -> Path:
    from gos_build.demo import demo_inputs

    out = tmp_path_factory.mktemp("inputs")
    demo_inputs(DEMO_BBOX, out, seed=0, cloud_fraction=0.05)
    return out


@pytest.fixture(scope="session")
def runs(inputs, tmp_path_factory):
    base = tmp_path_factory.mktemp("runs")
    out = {}
    for key, cores, bbox in (("a2", "2", AOI_A), ("a1", "1", AOI_A), ("b2", "2", AOI_B)):
        res = run_workflow(base / key, workflow_config(inputs, "aoi", bbox), "--cores", cores)
        assert res.returncode == 0, res.stderr[-3000:]
        out[key] = base / key / "results" / "aoi"
    return out
