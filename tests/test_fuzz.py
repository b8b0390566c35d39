"""The fuzz harness (tests/fuzz_dataset.py) on a small built dataset: a few hundred cases, bounded to about a
minute. ``python tests/fuzz_dataset.py DATASET --cases 100000`` runs it for longer."""

from __future__ import annotations

import pytest

from helpers import run_workflow, workflow_config

pytestmark = pytest.mark.slow  # builds a small dataset with the workflow


@pytest.fixture(scope="module")
def small_dataset(inputs, tmp_path_factory):
    """Four chips over the demo inputs, in every split: every form of the product, ~190 files."""
    cfg = workflow_config(inputs, "fuzz", [128.150, 43.620, 128.178, 43.641])
    cfg["split"]["block_chips"] = 1
    base = tmp_path_factory.mktemp("fuzz")
    res = run_workflow(base, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "results" / "fuzz" / "dataset"


def test_validate_and_the_loaders_end_every_mutated_case_with_findings(small_dataset):
    pytest.importorskip("torch")
    from fuzz_dataset import Harness

    h = Harness(small_dataset, seconds=10, memory_mb=256)
    try:
        h.run(cases=400, seed_value=20261203)
    finally:
        h.close()
    assert h.counts["cases"] == 400
    assert h.failures == [], "\n".join(h.failures[:5])
    assert h.counts["findings"] > 300  # nearly every mutation is seen (a changed listed file always is)
