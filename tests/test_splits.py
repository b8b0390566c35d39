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


def _landscape_chips(n=40, span=640.0):
    """An n x n chip lattice with spatially clustered classes: a large class 1 (west), a class 2 band of
    plateaus (east), and a narrow class 3 valley running north-south -- as real landforms cluster.
    The origin lies on the 4 x 4 block lattice (2560 m), so blocks are i // 4, j // 4."""
    chips = []
    for i in range(n):
        for j in range(n):
            label = 3 if abs(i - n // 3 - (j % 7) // 3) <= 1 else 2 if i > 2 * n // 3 else 1
            chips.append({"id": f"c{i:03d}_{j:03d}", "x": 399360 + i * span, "y": 4797440 + j * span, "class_id": label})
    return chips


def _shares(chips, split):
    """(share of each class among all chips, share of each class within each split), counted here directly."""
    total = len(chips)
    overall = {k: sum(c["class_id"] == k for c in chips) / total for k in (1, 2, 3)}
    within = {}
    for s in SPLITS:
        mine = [c for c in chips if split.get(c["id"]) == s]
        within[s] = {k: sum(c["class_id"] == k for c in mine) / len(mine) for k in (1, 2, 3)}
    return overall, within


def test_stratified_blocks_keep_every_class_share_in_every_split():
    chips = _landscape_chips()
    ratios = {"train": 0.7, "val": 0.1, "test": 0.2}
    new = assign_splits(chips, 640.0, "block", block_chips=4, seed=42, ratios=ratios)
    old = assign_splits(chips, 640.0, "block_unstratified", block_chips=4, seed=42, ratios=ratios)
    overall, within = _shares(chips, new)
    worst = max(abs(within[s][k] - overall[k]) for s in SPLITS for k in overall)
    overall_old, within_old = _shares(chips, old)
    worst_old = max(abs(within_old[s][k] - overall_old[k]) for s in SPLITS for k in overall_old)
    assert worst < 0.03 < worst_old  # the class-blind rule drifts; the stratified one stays within 3 points
    sizes = {s: sum(v == s for v in new.values()) / len(new) for s in SPLITS}
    assert all(abs(sizes[s] - ratios[s]) < 0.02 for s in SPLITS)
    for c in chips:  # whole 4 x 4 blocks
        i, j = (int(v) for v in c["id"][1:].split("_"))
        assert new[c["id"]] == new[f"c{i // 4 * 4:03d}_{j // 4 * 4:03d}"]
    assert new == assign_splits(chips, 640.0, "block", block_chips=4, seed=42, ratios=ratios)
    assert new != assign_splits(chips, 640.0, "block", block_chips=4, seed=7, ratios=ratios)


def test_class_with_too_few_blocks_is_reported_absent():
    from gos_build.splits import class_balance

    chips = _landscape_chips(20)
    for c in chips:  # class 2 only in two 4 x 4 blocks
        i, j = (int(v) for v in c["id"][1:].split("_"))
        c["class_id"] = 2 if (i // 4, j // 4) in ((4, 0), (4, 4)) else 1
    split = assign_splits(chips, 640.0, "block", block_chips=4, seed=42,
                          ratios={"train": 0.7, "val": 0.1, "test": 0.2})
    bal = class_balance(chips, split, 640.0, 4)
    assert bal[2]["blocks"] == 2 and bal[2]["chips"] == 32
    assert len(bal[2]["absent_from"]) == 1  # two blocks reach two splits at most
    present = {split[c["id"]] for c in chips if c["class_id"] == 2}
    assert set(bal[2]["absent_from"]) == set(SPLITS) - present
    assert bal[2]["share_in"]["train"] == pytest.approx(sum(split[c["id"]] == "train" and c["class_id"] == 2
                                                            for c in chips) / sum(v == "train" for v in split.values()))


def test_spatial_folds_are_whole_blocks_with_every_class():
    from gos_build.splits import block_folds

    chips = _landscape_chips()
    folds = block_folds(chips, 640.0, 5, block_chips=4, seed=42)
    assert set(folds) == {c["id"] for c in chips} and set(folds.values()) == {1, 2, 3, 4, 5}
    for f in range(1, 6):
        mine = [c for c in chips if folds[c["id"]] == f]
        assert {c["class_id"] for c in mine} == {1, 2, 3}
        assert len(mine) / len(chips) == pytest.approx(0.2, abs=0.02)
    for c in chips:
        i, j = (int(v) for v in c["id"][1:].split("_"))
        assert folds[c["id"]] == folds[f"c{i // 4 * 4:03d}_{j // 4 * 4:03d}"]
    assert folds == block_folds(chips, 640.0, 5, block_chips=4, seed=42)


def test_weak_data_names_what_is_missing_and_counts_blocks_by_hand():
    """Chips laid out by hand on a 640 m lattice, blocks of 2 x 2 chips: the train chips fill 12 blocks, the test
    chips 2 (both counted here from the coordinates), val none; class 2 has no chip, class 3 none in test."""
    from gos_build.splits import MIN_BLOCKS, weak_data

    span = 640.0
    chips = []
    for i in range(24):  # train: chips two apart in x -> one chip per 2 x 2 block, 24 / 2 = 12 blocks
        chips.append({"id": f"t{i}", "class_id": 1 if i % 2 else 3, "split": "train", "x": i * 2 * span, "y": 0.0})
    for i in range(4):  # test: four chips side by side -> blocks (100, 0) and (101, 0)
        chips.append({"id": f"s{i}", "class_id": 1, "split": "test", "x": (200 + i) * span, "y": 0.0})
    names = {1: "tectonic", 2: "volcanic", 3: "fluvial"}
    got = weak_data(names, chips, span, 2)
    assert MIN_BLOCKS == 10
    assert got == ["class 2 volcanic: no chip in this AOI", "split val: no chip", "split test: no chip of fluvial",
                   "split test: its 4 chips lie in 2 spatial blocks of 2 x 2 chips, fewer than 10: an accuracy "
                   "measured on it has a wide interval and the baseline compares no variant"]
    one = [dict(c, class_id=1) for c in chips]
    assert "one class only (tectonic): a classifier learns nothing from this dataset and no accuracy of it means " \
           "anything" in weak_data(names, one)
    assert not any("block" in w for w in weak_data(names, chips))  # no block size given: no block counts
    folds = {c["id"]: 1 + (i % 2) for i, c in enumerate(chips)}  # fold 2: the odd train chips (tectonic), s1, s3
    assert [w for w in weak_data(names, chips, span, 2, folds) if w.startswith("fold")] == ["fold 2: no chip of fluvial"]
