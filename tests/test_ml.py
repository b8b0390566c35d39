"""Loader and baseline: tensors match the files, normalisation matches stats.json, training is deterministic."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

torch = pytest.importorskip("torch")  # the [ml] extra; scripts/check.sh installs it

from helpers import run_cli  # noqa: E402
from gos_build.ml import TERRAIN, GOSDataset, TwoBranchNet, metrics, train_and_evaluate  # noqa: E402


@pytest.mark.slow
def test_loader_items_match_the_files(runs):
    root = runs["a2"] / "dataset"
    ds = GOSDataset(root, split="train", normalize=False)
    train_ids = (root / "train.txt").read_text().split()
    assert len(ds) == len(train_ids) > 0
    item = ds[0]
    assert item["rgb"].shape == (3, 64, 64) and item["terrain"].shape == (8, 64, 64)
    assert item["rgb"].dtype == torch.float32 and item["chip_id"] == ds.chips[0]["id"]
    cls = ds.classes[ds.chips[0]["label"]]
    with rasterio.open(root / "rgb" / cls / f"{item['chip_id']}.tif") as f:
        assert np.array_equal(item["rgb"].numpy(), f.read().astype(np.float32))
    with rasterio.open(root / "slope" / cls / f"{item['chip_id']}.tif") as f:
        assert np.array_equal(item["terrain"][TERRAIN.index("slope")].numpy(), f.read(1))
    assert item["label"] == sorted(ds.classes).index(ds.chips[0]["label"])


@pytest.mark.slow
def test_normalisation_uses_train_statistics(runs):
    root = runs["a2"] / "dataset"
    stats = json.loads((root / "stats.json").read_text())
    ds = GOSDataset(root, split="train")
    rgb = torch.stack([ds[i]["rgb"] for i in range(len(ds))]).numpy()
    dem = torch.stack([ds[i]["terrain"][0] for i in range(len(ds))]).numpy()
    # the train chips, normalised with their own statistics: mean 0, std 1 per band
    assert np.allclose(rgb.mean(axis=(0, 2, 3)), 0, atol=1e-3) and np.allclose(rgb.std(axis=(0, 2, 3)), 1, atol=1e-3)
    assert abs(dem.mean()) < 1e-3 and abs(dem.std() - 1) < 1e-3
    assert stats["dem"]["count"][0] == dem.size


def test_metrics_by_hand():
    # confusion [[20, 5], [10, 15]]: OA 0.7, expected agreement 0.5, kappa 0.4
    y_true = [0] * 25 + [1] * 25
    y_pred = [0] * 20 + [1] * 5 + [0] * 10 + [1] * 15
    m = metrics(y_true, y_pred, 2)
    assert m["confusion_matrix"] == [[20, 5], [10, 15]]
    assert m["overall_accuracy"] == pytest.approx(0.7) and m["kappa"] == pytest.approx(0.4)
    assert m["per_class_accuracy"] == [pytest.approx(0.8), pytest.approx(0.6)]


@pytest.mark.slow
def test_one_epoch_is_deterministic(runs):
    root = runs["a2"] / "dataset"
    a = train_and_evaluate(root, epochs=1, seed=3)
    b = train_and_evaluate(root, epochs=1, seed=3)
    assert a["confusion_matrix"] == b["confusion_matrix"] and a["history"] == b["history"]
    assert a["n"] == len((root / "test.txt").read_text().split())
    assert np.array(a["confusion_matrix"]).sum() == a["n"]
    net = TwoBranchNet(3)
    out = net(torch.zeros(2, 3, 64, 64), torch.zeros(2, 8, 64, 64))
    assert out.shape == (2, 3)


@pytest.mark.slow
def test_baseline_command_writes_metrics_report_and_figure(runs, tmp_path):
    res = run_cli("baseline", str(runs["a2"] / "dataset"), str(tmp_path), "--epochs", "2")
    assert res.returncode == 0, res.stderr
    m = json.loads((tmp_path / "metrics.json").read_text())
    assert set(m) == {"block", "random", "random_split_inflation"}
    assert m["random_split_inflation"] == pytest.approx(m["random"]["overall_accuracy"] - m["block"]["overall_accuracy"])
    assert "random split" in (tmp_path / "report.md").read_text()
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_fold_splits_test_every_chip_once():
    from gos_build.ml import fold_splits

    fold_of = {f"c{i}": i % 4 + 1 for i in range(40)}
    runs = fold_splits(fold_of)
    assert len(runs) == 4
    for cid, fold in fold_of.items():
        assert [r[cid] for r in runs].count("test") == 1 and runs[fold - 1][cid] == "test"
        assert runs[fold % 4][cid] == "train" or runs[fold % 4][cid] == "val"
    assert all(r[c] == "val" for i, r in enumerate(runs, start=1) for c, f in fold_of.items() if f == i % 4 + 1)


def test_fold_summary_by_hand():
    from gos_build.ml import summarize_folds

    results = [{"overall_accuracy": 0.8, "kappa": 0.6, "per_class_accuracy": [1.0, None], "classes": ["a", "b"]},
               {"overall_accuracy": 0.6, "kappa": 0.2, "per_class_accuracy": [0.5, 0.25], "classes": ["a", "b"]}]
    sm = summarize_folds(results)
    assert sm["overall_accuracy"]["mean"] == pytest.approx(0.7)
    assert sm["overall_accuracy"]["sd"] == pytest.approx(((0.1**2 + 0.1**2) / 1) ** 0.5)  # ddof = 1
    assert sm["kappa"] == {"mean": pytest.approx(0.4), "sd": pytest.approx(0.2 * 2**0.5), "n": 2}
    assert sm["per_class_accuracy"][1] == {"mean": 0.25, "sd": 0.0, "n": 1}  # a fold without class b
