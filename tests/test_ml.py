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
    cls = ds.classes[ds.chips[0]["class_id"]]
    with rasterio.open(root / "rgb" / cls / f"{item['chip_id']}.tif") as f:
        assert np.array_equal(item["rgb"].numpy(), f.read().astype(np.float32))
    with rasterio.open(root / "slope" / cls / f"{item['chip_id']}.tif") as f:
        assert np.array_equal(item["terrain"][TERRAIN.index("slope")].numpy(), f.read(1))
    assert item["label"] == sorted(ds.classes).index(ds.chips[0]["class_id"])


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
    assert {"block", "random", "random_split_difference", "ablation", "boundary"} <= set(m)
    rs = m["random_split_difference"]
    assert rs["difference"] == pytest.approx(m["random"]["overall_accuracy"] - m["block"]["overall_accuracy"])
    assert rs["interval"][0] <= rs["difference"] <= rs["interval"][1]
    assert {"rgb+terrain", "rgb", "terrain", "rgb+terrain-slope"} <= set(m["ablation"]) and len(m["ablation"]) == 11
    report = (tmp_path / "report.md").read_text()
    assert "A random split of the same chips changes test accuracy by" in report
    significant = not (rs["interval"][0] <= 0 <= rs["interval"][1])
    assert ("not significant" in report.split("A random split")[1].split("\n")[0]) == (not significant)
    assert sum(b["chips"] for b in m["boundary"]) == m["ablation"]["rgb+terrain"]["pooled"]["chips"]
    for png in ("confusion.png", "ablation.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # weak data, as a small AOI gives it: the report states the test blocks, refuses comparisons it cannot make,
    # gives chance as the majority class's share, and prints no signed zero or one-run "± 0.000"
    tb = m["test_blocks"]
    assert tb["blocks"] < tb["needed"] == 10
    assert f"lie in {tb['blocks']} spatial block" in report and "The variants are not compared" in report
    assert all(a.get("against_full", {}).get("interval", None) is None for a in m["ablation"].values())
    section = report.split("## What each modality adds")[1].split("## Errors by distance")[0]
    assert "| not compared |" in report and "significant" not in section
    assert "-0.000" not in report and "± 0.000" not in report.replace("(one run)", "")
    truth = [line.split()[1] for line in (runs["a2"] / "dataset" / "labels.txt").read_text().splitlines()[1:]
             if line.split()[3] == "test"]
    assert m["block"]["chance"] == pytest.approx(max(truth.count(t) for t in set(truth)) / len(truth))


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


def test_intervals_against_published_values():
    from gos_build.evaluation import newcombe, wilson

    # Newcombe (1998), Stat. Med. 17:873, example (a): 56/70 against 48/80, method 10: 0.0524 to 0.3339
    d, lo, hi = newcombe(56, 70, 48, 80)
    assert d == pytest.approx(0.2) and lo == pytest.approx(0.0524, abs=5e-5) and hi == pytest.approx(0.3339, abs=5e-5)
    # Wilson: 0/10 -> [0, 0.2775]; 81/263 -> [0.2553, 0.3662] (Newcombe 1998b, Table I)
    assert wilson(0, 10) == (0.0, pytest.approx(0.2775, abs=5e-5))
    assert wilson(81, 263) == (pytest.approx(0.2553, abs=5e-5), pytest.approx(0.3662, abs=5e-5))


def test_the_words_follow_the_sign_and_the_significance():
    from gos_build.evaluation import boundary_words, difference_words, paired_block_bootstrap, random_split_words

    lower = random_split_words(-0.061, -0.196, 0.052, 33, 33)
    assert "not significant" in lower and "inflat" not in lower.split(":", 1)[1].replace("no inflation", "")
    assert "higher" in random_split_words(0.08, 0.02, 0.14, 900, 900)
    below = random_split_words(-0.08, -0.14, -0.02, 900, 900)
    assert "lower" in below and "significant" in below and "higher" not in below
    assert difference_words("Terrain", 0.05, 0.01, 0.09, 500).startswith("Terrain adds 0.050")
    assert "costs" in difference_words("Removing slope", -0.05, -0.09, -0.01, 500)
    assert "not significant" in difference_words("Terrain", 0.05, -0.01, 0.09, 500)
    # the same predictions: a difference of 0 and an interval that resolves nothing
    same = [True, False] * 20
    assert paired_block_bootstrap(same, same, np.arange(40) // 4)[0] == 0.0
    d, lo, hi = paired_block_bootstrap([True] * 40, [False, True, True, True] * 10, np.arange(40) // 4, seed=1)
    assert d == pytest.approx(0.25) and lo > 0  # one more right in every block: resolved
    d, lo, hi = paired_block_bootstrap([True] * 40, [False] * 10 + [True] * 30, np.arange(40) // 4, seed=1)
    assert d == pytest.approx(0.25) and lo <= 0  # the same count, all in three neighbouring blocks: not resolved
    from gos_build.evaluation import boundary_bins

    bins = boundary_bins([10.0] * 100 + [5000.0] * 100, [False] * 30 + [True] * 70 + [True] * 95 + [False] * 5, 640)
    assert [b["chips"] for b in bins] == [100, 0, 0, 100] and bins[0]["errors"] == 30
    assert "concentrate near the boundaries" in boundary_words(bins)
    bins = boundary_bins([10.0] * 100 + [5000.0] * 100, [False] * 6 + [True] * 94 + [True] * 95 + [False] * 5, 640)
    assert "no clear difference" in boundary_words(bins)


@pytest.mark.slow
def test_modality_variants_train_the_same_architecture_on_their_inputs(runs):
    from gos_build.ml import BranchNet, expand_variants, fit, load_chips, variant_inputs

    assert expand_variants(["rgb", "drop-one"])[:3] == ["rgb+terrain", "rgb", "rgb+terrain-dem"]
    assert variant_inputs("rgb+terrain-slope") == (("rgb",), [i for i in range(8) if i != TERRAIN.index("slope")])
    net = BranchNet(3, image=0, terrain=7)
    assert net(torch.zeros(2, 3, 64, 64), torch.zeros(2, 7, 64, 64)).shape == (2, 3) and net.image is None
    data = load_chips(runs["a2"] / "dataset")
    own = {c: s for c, s in zip(data["ids"], [line.split()[3] for line in
                                              (runs["a2"] / "dataset" / "labels.txt").read_text().splitlines()[1:]])}
    a = fit(data, own, "terrain", epochs=2, seed=5)
    b = fit(data, own, "terrain", epochs=2, seed=5)
    assert a["test_pred"] == b["test_pred"] and a["history"] == b["history"]  # the seed fixes it on the CPU


def test_an_unknown_variant_is_one_line():
    from gos_build.errors import GosBuildError
    from gos_build.ml import expand_variants

    with pytest.raises(GosBuildError, match=r"baseline.modalities: unknown variant 'rgb\+terain'"):
        expand_variants(["rgb", "rgb+terain"])
    res = run_cli("baseline", "/nonexistent", "/tmp/x", "--modalities", "rgb+terain")
    assert res.returncode == 2 and "unknown variant 'rgb+terain'" in res.stderr and "Traceback" not in res.stderr
