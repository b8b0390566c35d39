"""Loader and a multimodal baseline: is the dataset learnable, and what does a random split hide?

Needs the optional extra ``gos-build[ml]`` (PyTorch). Everything here is
seeded and single-threaded by default, so the same dataset gives the same
metrics.

:class:`GOSDataset` is a ``torch.utils.data.Dataset`` over a gos-build dataset
folder, usable from any training code::

    ds = GOSDataset("results/demo/dataset", split="train")
    sample = ds[0]   # {"rgb": (3, 64, 64), "terrain": (8, 64, 64), "label": int, "chip_id": str}

:class:`TwoBranchNet` fuses an imagery branch (rgb) and a terrain branch (dem
and the seven parameters) late, after global pooling -- small enough to
train on a CPU in minutes on a few thousand chips.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import numpy as np

from .errors import GosBuildError
from .layout import ELEVATION_LAYERS, LAYERS, MODALITIES, RGB, SPLITS, chip_path
from .layout import read_index as dataset_index
from .splits import random_split

log = logging.getLogger(__name__)

TERRAIN = ELEVATION_LAYERS  # dem hillshade slope mean std northness eastness dev

try:
    import torch
    from torch import nn
except ImportError:  # pragma: no cover - the [ml] extra is optional
    torch = None
    nn = None


def _need_torch():
    if torch is None:
        raise GosBuildError("the baseline needs PyTorch: pip install 'gos-build[ml]'")


def read_index(root: str | Path) -> tuple[dict[int, str], list[dict]]:
    """(class id -> name, chips as dicts with id, label, split, x, y) of a dataset folder."""
    classes, chips = dataset_index(root)
    return {cid: c["name"] for cid, c in classes.items()}, chips


class GOSDataset(torch.utils.data.Dataset if torch is not None else object):
    """Chips of a gos-build dataset folder as tensors.

    Args:
        root: the dataset folder (``results/<aoi>/dataset``).
        split: ``train``, ``val``, ``test`` or ``all``; or give ``ids``.
        ids: explicit chip ids (overrides ``split``).
        normalize: standardise each band with the train mean/std of ``stats.json``;
            nodata pixels become 0 (the mean).
        source: ``tree`` (the chip GeoTIFFs), ``packed`` (the Zarr store ``packed/``: the same values,
            read in chunks of chips), ``parquet`` (the Parquet shards: the tree's GeoTIFF bytes, read a row
            group at a time) or ``auto`` (the store where the dataset has one, else the tree).

    Items are dicts: ``rgb`` float32 (3, 64, 64) reflectance (x 10000 unless
    normalised), ``terrain`` float32 (8, 64, 64) in the order of
    :data:`TERRAIN`, ``label`` the class index 0..K-1 (classes sorted by id),
    ``chip_id``.
    """

    def __init__(self, root: str | Path, split: str = "train", ids: list[str] | None = None, normalize: bool = True,
                 source: str = "auto"):
        _need_torch()
        self.root = Path(root)
        if source not in ("auto", "tree", "packed", "parquet"):
            raise GosBuildError(f"source: expected auto, tree, packed or parquet, got '{source}'")
        has_store = (self.root / "packed").is_dir()
        if source == "packed" and not has_store:
            raise GosBuildError(f"{self.root}: no packed store (packed/) in this dataset")
        if source == "parquet" and not (self.root / "parquet").is_dir():
            raise GosBuildError(f"{self.root}: no Parquet form (parquet/) in this dataset")
        self.source = source if source != "auto" else "packed" if has_store else "tree"
        self._store = None
        self.classes, chips = read_index(self.root)
        self.class_ids = sorted(self.classes)
        if ids is None:
            if split not in (*SPLITS, "all"):
                raise GosBuildError(f"split: expected one of {', '.join((*SPLITS, 'all'))}, got '{split}'")
            chips = [c for c in chips if split == "all" or c["split"] == split]
        else:
            wanted = set(ids)
            chips = [c for c in chips if c["id"] in wanted]
        unknown = sorted({c["label"] for c in chips} - set(self.classes))
        if unknown:
            raise GosBuildError(f"{self.root}/labels.txt: class id(s) {unknown} are not in classes.txt")
        self.chips = chips
        self.norm = _normalisation(self.root) if normalize else None

    def __len__(self) -> int:
        return len(self.chips)

    def _packed(self, modality: str, chip: dict) -> np.ndarray:
        """One chip's layer from the store (:class:`gos_build.archive.writers.packed.PackedReader`: nothing in
        it is trusted before it is checked); the index of every chip id is read once per split."""
        from .archive.writers.packed import PackedReader

        if self._store is None:
            self._store = PackedReader(self.root, links=self._links_out())
            self._where, self._n = {}, {}
            _, everything = read_index(self.root)
            for split in SPLITS:
                n = sum(1 for c in everything if c["split"] == split)
                self._n[split] = n
                for i, cid in enumerate(self._store.column(split, "chip_id", n)):
                    self._where[str(cid)] = (split, i)
            self._chunks = {}
        if chip["id"] not in self._where:
            raise GosBuildError(f"{self.root}/packed: chip {chip['id']} is not in the store")
        split, i = self._where[chip["id"]]
        n = self._store.meta(split, modality, self._n[split])["chunks"][0]
        key, k = (split, modality), i // n
        if self._chunks.get(key, (None,))[0] != k:  # the last decoded chunk of each layer: an epoch decodes each once
            self._chunks[key] = (k, self._store.chunk(split, modality, self._n[split], k))
        return self._chunks[key][1][i - k * n]

    def _links_out(self) -> list[str]:
        """The dataset's links that lead out of it (one walk, then every path check is arithmetic)."""
        from .io import links_out

        if getattr(self, "_links", None) is None:
            self._links = links_out(self.root)
        return self._links

    def _layer(self, modality: str, chip: dict) -> np.ndarray:
        from .gtiff import NotAChip, read_arrays, read_files
        from .io import inside

        nodata = LAYERS[modality].nodata
        if self.source == "packed":
            a = np.asarray(self._packed(modality, chip)).astype(np.float32)
        elif self.source == "parquet":
            from .archive.writers.parquet import ParquetReader

            if self._store is None:
                self._store, self._last = ParquetReader(self.root, self._links_out()), (None, None)
            if self._last[0] != chip["id"]:  # the chip's nine layers come in one read of its row
                self._last = (chip["id"], self._store.layers(chip["id"]))
            try:
                a = read_arrays([self._last[1][modality]])[0].astype(np.float32)
            except NotAChip as exc:
                raise GosBuildError(f"{self.root}/parquet: chip {chip['id']} {modality}: not a chip GeoTIFF "
                                    f"({exc})") from None
        else:
            rel = chip_path(modality, self.classes[chip["label"]], chip["id"])
            path = inside(self.root, rel, self._links_out())
            if path is None:
                raise GosBuildError(f"{self.root}/{rel}: leads outside the dataset folder (not opened)")
            try:
                a = read_files([path])[0].astype(np.float32)
            except (OSError, NotAChip) as exc:
                raise GosBuildError(f"{self.root}/{rel}: not a chip GeoTIFF ({exc})") from None
        want = (len(LAYERS[modality].bands), 64, 64)
        if a.shape != want:
            raise GosBuildError(f"{self.root}: chip {chip['id']} {modality}: shape {a.shape}, expected {want}")
        bad = a == nodata if nodata is not None else np.zeros(a.shape, bool)
        if self.norm:
            mean, std = self.norm[modality]
            a = (a - mean) / np.where(std > 0, std, 1.0)
            a[bad] = 0.0
        return a

    def __getitem__(self, i: int) -> dict:
        chip = self.chips[i]
        rgb = self._layer(RGB.name, chip)
        terrain = np.concatenate([self._layer(m, chip) for m in TERRAIN])
        return {"rgb": torch.from_numpy(rgb), "terrain": torch.from_numpy(terrain),
                "label": self.class_ids.index(chip["label"]), "chip_id": chip["id"]}


def _normalisation(root: Path) -> dict:
    """Layer -> (mean, std) per band, float32 (bands, 1, 1), from ``stats.json``; GosBuildError if it is not one."""
    path = root / "stats.json"
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
        out = {}
        for m in MODALITIES:
            n = len(LAYERS[m].bands)
            mean = np.array([v if v is not None else 0.0 for v in stats[m]["mean"]], dtype=np.float32)
            std = np.array([v if v is not None else 1.0 for v in stats[m]["std"]], dtype=np.float32)
            if mean.shape != (n,) or std.shape != (n,):
                raise ValueError(f"{m}: {mean.shape[0]} bands, expected {n}")
            out[m] = (mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GosBuildError(f"{path}: not the statistics of this dataset's layers ({exc})") from None


def _branch(channels: int, width: int = 32):
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


class TwoBranchNet(nn.Module if nn is not None else object):
    """Imagery branch (3 bands) and terrain branch (8 layers), fused late by concatenation."""

    def __init__(self, n_classes: int, width: int = 16):
        _need_torch()
        super().__init__()
        self.image = _branch(3, width)
        self.terrain = _branch(len(TERRAIN), width)
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(4 * width, n_classes))

    def forward(self, rgb, terrain):
        return self.head(torch.cat([self.image(rgb), self.terrain(terrain)], dim=1))


def metrics(y_true: list[int], y_pred: list[int], n_classes: int) -> dict:
    """Overall accuracy, per-class accuracy (recall), Cohen's kappa, confusion matrix (rows = truth)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    n = cm.sum()
    oa = float(np.trace(cm) / n) if n else 0.0
    pe = float((cm.sum(0) * cm.sum(1)).sum() / n**2) if n else 0.0
    kappa = (oa - pe) / (1 - pe) if pe < 1 else 0.0
    per_class = [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(n_classes)]
    return {"overall_accuracy": oa, "kappa": float(kappa), "per_class_accuracy": per_class,
            "confusion_matrix": cm.tolist(), "n": int(n)}


def train_and_evaluate(root: str | Path, split_of: dict[str, str] | None = None, epochs: int = 15,
                       batch_size: int = 32, lr: float = 2e-3, seed: int = 0, threads: int = 1) -> dict:
    """Train on train, keep the epoch with the best val accuracy, report on test.

    ``split_of`` (chip id -> split) overrides the dataset's own split (used for
    the random-split comparison).
    """
    _need_torch()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    classes, chips = read_index(root)
    if split_of is None:
        split_of = {c["id"]: c["split"] for c in chips}
    sets = {s: GOSDataset(root, ids=[c["id"] for c in chips if split_of.get(c["id"]) == s]) for s in SPLITS}
    for s in ("train", "test"):
        if len(sets[s]) == 0:
            raise GosBuildError(f"{root}: the {s} split is empty; nothing to train or test on")
    # the whole (small) splits in memory once: a few thousand 64 x 64 chips fit easily
    cache = {s: _stack(ds) for s, ds in sets.items() if len(ds)}
    n_classes = len(classes)
    model = TwoBranchNet(n_classes)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = -1.0, None, []
    train = cache["train"]
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train["label"]), generator=gen)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            # no flips or rotations: hillshade, northness/eastness and the sun-lit imagery carry directions
            batch = {k: train[k][idx] for k in ("rgb", "terrain", "label")}
            opt.zero_grad()
            loss = loss_fn(model(batch["rgb"], batch["terrain"]), batch["label"])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        val_set = cache.get("val") or cache["train"]
        val_acc = metrics(val_set["label"].tolist(), _predict(model, val_set), n_classes)["overall_accuracy"]
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "val_accuracy": val_acc})
        log.info("baseline: epoch %d loss %.4f val accuracy %.3f", epoch + 1, total / len(order), val_acc)
        if val_acc > best:
            best, best_state = val_acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = cache["test"]
    result = metrics(test["label"].tolist(), _predict(model, test), n_classes)
    result.update({"classes": [classes[c] for c in sorted(classes)], "chips": {s: len(sets[s]) for s in SPLITS},
                   "best_val_accuracy": best, "epochs": epochs, "history": history,
                   "chance": 1.0 / n_classes, "majority_class_share": _majority(test["label"].tolist())})
    return result


def _stack(ds: "GOSDataset") -> dict:
    items = [ds[i] for i in range(len(ds))]
    return {"rgb": torch.stack([it["rgb"] for it in items]), "terrain": torch.stack([it["terrain"] for it in items]),
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long)}


def _predict(model, data: dict) -> list[int]:
    model.eval()
    with torch.no_grad():
        return model(data["rgb"], data["terrain"]).argmax(1).tolist()


def _majority(labels: list[int]) -> float:
    return max(labels.count(v) for v in set(labels)) / len(labels) if labels else math.nan


def fold_splits(fold_of: dict[str, int]) -> list[dict[str, str]]:
    """Spatial k-fold cross-validation: for fold i, test on fold i, validate on fold i + 1 (cyclically),
    train on the rest. One chip id -> split mapping per fold."""
    k = max(fold_of.values())
    return [{cid: "test" if f == i else "val" if f == i % k + 1 else "train" for cid, f in fold_of.items()}
            for i in range(1, k + 1)]


def summarize_folds(results: list[dict]) -> dict:
    """Mean and standard deviation (over folds, ddof = 1) of overall accuracy, kappa and per-class accuracy."""
    def ms(values):
        v = np.array([x for x in values if x is not None], dtype=np.float64)
        if not len(v):
            return {"mean": None, "sd": None, "n": 0}
        return {"mean": float(v.mean()), "sd": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "n": int(len(v))}

    n_classes = len(results[0]["per_class_accuracy"])
    return {"folds": len(results), "overall_accuracy": ms(r["overall_accuracy"] for r in results),
            "kappa": ms(r["kappa"] for r in results),
            "per_class_accuracy": [ms(r["per_class_accuracy"][i] for r in results) for i in range(n_classes)],
            "classes": results[0]["classes"]}


def baseline(root: str | Path, out_dir: str | Path, seed: int = 42, ratios: dict | None = None, epochs: int = 15,
             threads: int = 1) -> dict:
    """Block split (the dataset's own), a seeded random split of the same chips and, when the dataset has
    spatial folds, k-fold cross-validation over them: metrics.json, report.md, figure."""
    from .io import atomic_write_text
    from .layout import read_folds

    _, chips = read_index(root)
    ratios = ratios or {"train": 0.7, "val": 0.1, "test": 0.2}
    random_split_of = random_split(chips, seed=seed, ratios=ratios)
    block = train_and_evaluate(root, epochs=epochs, seed=seed, threads=threads)
    rand = train_and_evaluate(root, split_of=random_split_of, epochs=epochs, seed=seed, threads=threads)
    out = {"block": block, "random": rand,
           "random_split_inflation": rand["overall_accuracy"] - block["overall_accuracy"]}
    fold_of = read_folds(root)
    if fold_of:
        per_fold = []
        for i, split_of in enumerate(fold_splits(fold_of), start=1):
            log.info("baseline: spatial fold %d/%d as test", i, max(fold_of.values()))
            per_fold.append(train_and_evaluate(root, split_of=split_of, epochs=epochs, seed=seed, threads=threads))
        out["folds"] = {"per_fold": per_fold, "summary": summarize_folds(per_fold)}
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "metrics.json", json.dumps(out, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out_dir / "report.md", _report(out))
    _confusion_figure(out, out_dir / "confusion.png")
    log.info("baseline: test accuracy block %.3f (kappa %.3f), random %.3f: a random split inflates accuracy by %+.3f",
             block["overall_accuracy"], block["kappa"], rand["overall_accuracy"], out["random_split_inflation"])
    if fold_of:
        sm = out["folds"]["summary"]
        log.info("baseline: %d spatial folds: accuracy %.3f +- %.3f, kappa %.3f +- %.3f", sm["folds"],
                 sm["overall_accuracy"]["mean"], sm["overall_accuracy"]["sd"], sm["kappa"]["mean"], sm["kappa"]["sd"])
    return out


def _report(out: dict) -> str:
    b, r = out["block"], out["random"]
    lines = ["# Baseline: two-branch CNN (imagery + terrain, late fusion)", "",
             "| split | train/val/test chips | test OA | kappa | per-class accuracy | chance |", "|---|---|---|---|---|---|"]
    for name, m in (("block (the dataset's)", b), ("random (same chips)", r)):
        pc = ", ".join(f"{c} {a:.2f}" if a is not None else f"{c} -" for c, a in zip(m["classes"], m["per_class_accuracy"]))
        lines.append(f"| {name} | {m['chips']['train']}/{m['chips']['val']}/{m['chips']['test']} | "
                     f"{m['overall_accuracy']:.3f} | {m['kappa']:.3f} | {pc} | {m['chance']:.3f} |")
    if "folds" in out:
        sm = out["folds"]["summary"]

        def pm(v):
            return "-" if v["mean"] is None else f"{v['mean']:.3f} ± {v['sd']:.3f}"

        pc = ", ".join(f"{c} {pm(v)}" for c, v in zip(sm["classes"], sm["per_class_accuracy"]))
        lines.append(f"| spatial {sm['folds']}-fold CV (mean ± sd) | each fold as test once | "
                     f"{pm(sm['overall_accuracy'])} | {pm(sm['kappa'])} | {pc} | {b['chance']:.3f} |")
    lines += ["", f"A random split of the same chips changes test accuracy by {out['random_split_inflation']:+.3f}: "
              "neighbouring chips share terrain and imagery, so a random split tests on near-copies of training "
              "chips; the block split keeps them apart.", ""]
    if "folds" in out:
        lines += ["Per fold (test fold, chips train/val/test, OA, kappa):", ""]
        for i, m in enumerate(out["folds"]["per_fold"], start=1):
            lines.append(f"- fold {i}: {m['chips']['train']}/{m['chips']['val']}/{m['chips']['test']}, "
                         f"OA {m['overall_accuracy']:.3f}, kappa {m['kappa']:.3f}")
        lines.append("")
    return "\n".join(lines)


def _confusion_figure(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("block split", out["block"]), ("random split", out["random"])]
    fig, axes = plt.subplots(1, 3 if "folds" in out else 2, figsize=(13.5 if "folds" in out else 9, 4.2))
    for ax, (name, m) in zip(axes, panels):
        cm = np.array(m["confusion_matrix"])
        ax.imshow(cm, cmap="Blues")
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="black")
        ax.set_xticks(range(len(m["classes"])), m["classes"])
        ax.set_yticks(range(len(m["classes"])), m["classes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: OA {m['overall_accuracy']:.2f}, kappa {m['kappa']:.2f}")
    if "folds" in out:  # the spread over the spatial folds: one dot per fold, bar = mean
        ax = axes[2]
        per_fold, sm = out["folds"]["per_fold"], out["folds"]["summary"]
        names = ["OA", "kappa"] + [f"acc {c}" for c in sm["classes"]]
        values = [[m["overall_accuracy"] for m in per_fold], [m["kappa"] for m in per_fold]]
        values += [[m["per_class_accuracy"][i] for m in per_fold] for i in range(len(sm["classes"]))]
        for x, vals in enumerate(values):
            vals = [v for v in vals if v is not None]
            if vals:
                ax.bar(x, np.mean(vals), color="#cccccc", edgecolor="k")
                ax.errorbar(x, np.mean(vals), yerr=np.std(vals, ddof=1) if len(vals) > 1 else 0, color="k", capsize=4)
                ax.scatter([x] * len(vals), vals, color="#d95f02", zorder=3, s=14)
        ax.set_xticks(range(len(names)), names, rotation=30, ha="right")
        ax.set_ylim(min(0.0, min(min((v for v in vals if v is not None), default=0) for vals in values)), 1.0)
        ax.set_title(f"spatial {sm['folds']}-fold CV: mean ± sd, dots = folds")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)
