"""Split strategies: whole blocks, ratios, buffers, seeds."""

from __future__ import annotations

import pytest

from gos_build.layout import SPLITS
from gos_build.splits import assign_splits


def _lattice_chips(n=30, span=640.0, x0=400000, y0=4800000):
    return [{"id": f"c{i}_{j}", "x": x0 + i * span, "y": y0 + j * span} for i in range(n) for j in range(n)]


def test_block_split_is_disjoint_meets_ratios_and_is_seeded():
    chips = _lattice_chips()
    split = assign_splits(chips, 640.0, "block", block_chips=5, seed=42, ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    assert set(split) == {c["id"] for c in chips}  # every chip in exactly one split (a dict: one value each)
    share = {s: sum(v == s for v in split.values()) / len(split) for s in SPLITS}
    assert share["train"] == pytest.approx(0.7, abs=0.03) and share["val"] == pytest.approx(0.1, abs=0.03)
    # blocks are whole: all chips of a 5 x 5 block share a split
    for c in chips:
        i, j = (int(v) for v in c["id"][1:].split("_"))
        assert split[c["id"]] == split[f"c{i // 5 * 5}_{j // 5 * 5}"]
    again = assign_splits(chips, 640.0, "block", block_chips=5, seed=42, ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    other = assign_splits(chips, 640.0, "block", block_chips=5, seed=7, ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    assert again == split and other != split


def test_buffer_keeps_splits_apart():
    chips = _lattice_chips()
    split = assign_splits(chips, 640.0, "block", block_chips=5, buffer_chips=1, seed=42,
                          ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    pos = {(int(c["id"][1:].split("_")[0]), int(c["id"].split("_")[1])): c["id"] for c in chips}
    dropped = len(chips) - len(split)
    assert dropped > 0
    for (i, j), cid in pos.items():
        if cid not in split:
            continue
        for di in (-1, 0, 1):
            for dj in (-1, 0, 1):
                other = pos.get((i + di, j + dj))
                if other in split:
                    assert split[other] == split[cid], (cid, other)


def test_random_split_is_seeded():
    chips = _lattice_chips(10)
    a = assign_splits(chips, 640.0, "random", seed=1, ratios={"train": 0.5, "val": 0.25, "test": 0.25})
    assert a == assign_splits(chips, 640.0, "random", seed=1, ratios={"train": 0.5, "val": 0.25, "test": 0.25})
    assert set(a.values()) == set(SPLITS)
