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
from .evaluation import wilson
from .layout import (ELEVATION_LAYERS, GOS10M, LABEL, RGB, S2, SPLITS, chip_path, dataset_layers, has_tree,
                     is_period, label_of, period_names)
from .layout import read_index as dataset_index
from .splits import MIN_BLOCKS, random_split

log = logging.getLogger(__name__)

TERRAIN = ELEVATION_LAYERS  # GOS10m's: dem hillshade slope mean std northness eastness dev (a dataset may add more)

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
    normalised), ``terrain`` float32 (E, 64, 64) in the order of :attr:`terrain`
    (the dataset's elevation layers: :data:`TERRAIN`, then its extra terrain
    layers, ``layers.json``), ``label`` the class index 0..K-1 (classes sorted by id),
    ``chip_id``; in a dataset with ``sentinel2.bands`` also ``s2`` float32 (B, 64, 64), its bands in the
    dataset's order (``layers.json``), and with ``sentinel2.periods`` each ``s2_<period>`` likewise.
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
        # auto: the store, else the tree, else (a dataset published without either) the Parquet shards
        self.source = source if source != "auto" else "packed" if has_store else "tree" if has_tree(self.root) or \
            not (self.root / "parquet").is_dir() else "parquet"
        self.layers = dataset_layers(self.root)
        self.terrain = self.layers.elevation
        self._store = None
        self.classes, chips = read_index(self.root)
        self.class_ids = sorted(self.classes)
        self.label_of = label_of(self.classes)  # class id -> label, the class index 0..K-1
        if ids is None:
            if split not in (*SPLITS, "all"):
                raise GosBuildError(f"split: expected one of {', '.join((*SPLITS, 'all'))}, got '{split}'")
            chips = [c for c in chips if split == "all" or c["split"] == split]
        else:
            wanted = set(ids)
            chips = [c for c in chips if c["id"] in wanted]
        unknown = sorted({c["class_id"] for c in chips} - set(self.classes))
        if unknown:
            raise GosBuildError(f"{self.root}/labels.txt: class id(s) {unknown} are not in classes.txt")
        self.chips = chips
        self.norm = _normalisation(self.root, self.layers) if normalize else None

    def __len__(self) -> int:
        return len(self.chips)

    def _packed(self, modality: str, chip: dict) -> np.ndarray:
        """One chip's layer from the store (:class:`gos_build.archive.writers.packed.PackedReader`: nothing in
        it is trusted before it is checked); the index of every chip id is read once per split."""
        from .readers import PackedReader

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

        nodata = self.layers[modality].nodata
        if self.source == "packed":
            a = np.asarray(self._packed(modality, chip)).astype(np.float32)
        elif self.source == "parquet":
            from .readers import ParquetReader

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
            rel = chip_path(modality, self.classes[chip["class_id"]], chip["id"])
            path = inside(self.root, rel, self._links_out())
            if path is None:
                raise GosBuildError(f"{self.root}/{rel}: leads outside the dataset folder (not opened)")
            try:
                a = read_files([path])[0].astype(np.float32)
            except (OSError, NotAChip) as exc:
                raise GosBuildError(f"{self.root}/{rel}: not a chip GeoTIFF ({exc})") from None
        want = (len(self.layers[modality].bands), 64, 64)
        if a.shape != want:
            raise GosBuildError(f"{self.root}: chip {chip['id']} {modality}: shape {a.shape}, expected {want}")
        bad = a == nodata if nodata is not None else np.zeros(a.shape, bool)
        if self.norm:
            mean, std = self.norm[modality]
            a = (a - mean) / np.where(std > 0, std, 1.0)
            a[bad] = 0.0
        return a

    def layer(self, name: str, chip: dict) -> np.ndarray:
        """One layer of one chip (a dict of :attr:`chips`): float32 (bands, 64, 64), normalised when the
        dataset is."""
        return self._layer(name, chip)

    def __getitem__(self, i: int) -> dict:
        chip = self.chips[i]
        rgb = self._layer(RGB.name, chip)
        terrain = np.concatenate([self._layer(m, chip) for m in self.terrain])
        item = {"rgb": torch.from_numpy(rgb), "terrain": torch.from_numpy(terrain),
                LABEL: self.label_of[chip["class_id"]], "chip_id": chip["id"]}
        for m in (S2, *period_names(self.layers)):  # the other imagery layers, where the dataset has them
            if m in self.layers:
                item[m] = torch.from_numpy(self._layer(m, chip))
        return item


def _normalisation(root: Path, layers=GOS10M) -> dict:
    """Layer -> (mean, std) per band, float32 (bands, 1, 1), from ``stats.json``; GosBuildError if it is not one."""
    path = root / "stats.json"
    try:
        stats = json.loads(path.read_text(encoding="utf-8"))
        out = {}
        for m, layer in layers.items():
            n = len(layer.bands)
            mean = np.array([v if v is not None else 0.0 for v in stats[m]["mean"]], dtype=np.float32)
            std = np.array([v if v is not None else 1.0 for v in stats[m]["std"]], dtype=np.float32)
            if mean.shape != (n,) or std.shape != (n,):
                raise ValueError(f"{m}: {mean.shape[0]} bands, expected {n}")
            out[m] = (mean.reshape(-1, 1, 1), std.reshape(-1, 1, 1))
        return out
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise GosBuildError(f"{path}: not the statistics of this dataset's layers ({exc})") from None


def _branch(channels: int, width: int = 32):
    """Three 3 x 3 convolutions, globally pooled; the first at stride 2 (20 m features on a 10 m chip: a third
    of the training time, the same accuracy on the benchmark AOI's folds)."""
    return nn.Sequential(
        nn.Conv2d(channels, width, 3, padding=1, stride=2), nn.BatchNorm2d(width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(2 * width, 2 * width, 3, padding=1), nn.BatchNorm2d(2 * width), nn.ReLU(),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
    )


class BranchNet(nn.Module if nn is not None else object):
    """An imagery branch (``image`` bands: rgb's 3, or s2's) and/or a terrain branch (``terrain`` of the
    elevation layers), each convolutional and globally pooled, fused late by concatenation: the one
    architecture every variant of the modality comparison trains (only its inputs change)."""

    def __init__(self, n_classes: int, image: int = 3, terrain: int = len(TERRAIN), width: int = 16):
        _need_torch()
        super().__init__()
        if not image and not terrain:
            raise GosBuildError("a model needs imagery or at least one terrain layer")
        self.image = _branch(image, width) if image else None
        self.terrain = _branch(terrain, width) if terrain else None
        self.head = nn.Sequential(nn.Dropout(0.2), nn.Linear(2 * width * (bool(image) + bool(terrain)), n_classes))

    def forward(self, rgb, terrain):
        parts = ([self.image(rgb)] if self.image is not None else []) + \
            ([self.terrain(terrain)] if self.terrain is not None else [])
        return self.head(torch.cat(parts, dim=1))


class TwoBranchNet(BranchNet):
    """Imagery branch (3 bands) and terrain branch (8 layers), fused late by concatenation."""

    def __init__(self, n_classes: int, width: int = 16):
        super().__init__(n_classes, image=3, terrain=len(TERRAIN), width=width)


FULL = "rgb+terrain"
VARIANTS = (FULL, "rgb", "terrain", "drop-one")  # baseline.modalities' default
"""Variants of the modality comparison: ``rgb+terrain`` (the multimodal model), ``rgb``, ``terrain``,
``rgb+terrain-<layer>`` (the multimodal model without one terrain layer) and ``drop-one`` (each of those);
in a dataset with the imagery layers s2 (``sentinel2.bands``) or s2_<period> (``sentinel2.periods``) any of
them, or several joined by ``+`` (their bands stacked as one image), with or without ``+terrain``."""


GOS10M_VARIANT = "rgb+gos10m"  # rgb and GOS10m's eight elevation layers: what the extra terrain layers add


def expand_variants(names, terrain: tuple[str, ...] = TERRAIN, images: tuple[str, ...] = (RGB.name,)) -> list[str]:
    """The variants ``names`` asks for, ``drop-one`` expanded (one for each of ``terrain``, the dataset's elevation
    layers), the multimodal model first; with imagery layers beyond rgb among ``images`` (the dataset's: s2,
    s2_<period>) each of them with terrain and alone after it, and with two periods or more all of them with
    terrain (what the seasons add together); GosBuildError on a name that is none."""
    out = [FULL] + ([GOS10M_VARIANT] if len(terrain) > len(TERRAIN) else [])  # what the extra layers add
    others = [m for m in images if m != RGB.name]
    for m in others:  # what the other bands, each season add
        out += [f"{m}+terrain", m]
    periods = [m for m in others if is_period(m)]
    if len(periods) > 1:
        out.append("+".join(periods) + "+terrain")
    for name in names:
        more = [f"{FULL}-{layer}" for layer in terrain] if name == "drop-one" else [name]
        for v in more:
            variant_inputs(v, terrain, images)
            if v not in out:
                out.append(v)
    return out


def variant_inputs(name: str, terrain: tuple[str, ...] = TERRAIN,
                   images: tuple[str, ...] = (RGB.name,)) -> tuple[tuple[str, ...], list[int]]:
    """(the imagery layers used -- rgb, s2, s2_<period>, their bands stacked in this order -- empty for none,
    indices in ``terrain`` -- the dataset's elevation layers -- of those used) of a variant name; ``images``:
    the dataset's imagery layers."""
    if name == "terrain":
        return (), list(range(len(terrain)))
    if name == GOS10M_VARIANT and len(terrain) > len(TERRAIN):
        return (RGB.name,), [terrain.index(m) for m in TERRAIN]
    if name.startswith(FULL + "-") and name[len(FULL) + 1:] in terrain:
        drop = terrain.index(name[len(FULL) + 1:])
        return (RGB.name,), [i for i in range(len(terrain)) if i != drop]
    parts = name.split("+")
    with_terrain = parts[-1] == "terrain"
    parts = parts[:-1] if with_terrain else parts
    if parts and all(p in images for p in parts) and len(set(parts)) == len(parts):
        return tuple(parts), list(range(len(terrain))) if with_terrain else []
    extra = f", {GOS10M_VARIANT}" if len(terrain) > len(TERRAIN) else ""
    extra += "".join(f", {m}, {m}+terrain" for m in images if m != RGB.name)
    raise GosBuildError(f"baseline.modalities: unknown variant '{name}' (expected rgb, terrain, {FULL}{extra}, "
                        f"drop-one or {FULL}-<layer> with a layer of {', '.join(terrain)})")


def metrics(y_true: list[int], y_pred: list[int], n_classes: int) -> dict:
    """Overall accuracy, per-class accuracy (recall), Cohen's kappa, confusion matrix (rows = truth)."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    for t, p in zip(y_true, y_pred):
        cm[t, p] += 1
    n = cm.sum()
    oa = float(np.trace(cm) / n) if n else 0.0
    pe = float((cm.sum(0) * cm.sum(1)).sum() / n**2) if n else 0.0
    kappa = (oa - pe) / (1 - pe) if pe < 1 else None  # one class in truth and prediction: undefined
    per_class = [float(cm[i, i] / cm[i].sum()) if cm[i].sum() else None for i in range(n_classes)]
    return {"overall_accuracy": oa, "kappa": None if kappa is None else float(kappa), "per_class_accuracy": per_class,
            "confusion_matrix": cm.tolist(), "n": int(n)}  # kappa None: one class only (undefined)


def device() -> str:
    """``cuda`` when PyTorch sees a GPU, else ``cpu`` (where a seed fixes the result)."""
    return "cuda" if torch is not None and torch.cuda.is_available() else "cpu"


def load_chips(root: str | Path, source: str = "auto") -> dict:
    """Every chip of a dataset, normalised, in memory once (the packed store where there is one): ``rgb``
    (N, 3, 64, 64), ``terrain`` (N, 8, 64, 64) float32 tensors, ``label`` (N,) class indices, and per chip its
    ``ids``, ``xy`` (south-west corner, m) and ``boundary_m``."""
    _need_torch()
    ds = GOSDataset(root, split="all", source=source)
    data = _stack(ds)
    data.update(images=imagery_layers(ds.layers), ids=[c["id"] for c in ds.chips], xy=[(c["x"], c["y"]) for c in ds.chips],
                boundary_m=[c.get("boundary_m") for c in ds.chips], classes=[ds.classes[c] for c in ds.class_ids],
                terrain_names=ds.terrain)
    return data


def fit(data: dict, split_of: dict[str, str], variant: str = FULL, epochs: int = 15, batch_size: int = 32,
        lr: float = 2e-3, seed: int = 0, threads: int = 1) -> dict:
    """Train one variant on the chips ``split_of`` puts in train, keep the epoch with the best val accuracy,
    predict test: metrics, the test chips and their predictions. Seeded: the same inputs give the same result
    on the CPU."""
    _need_torch()
    torch.manual_seed(seed)
    torch.set_num_threads(threads)
    torch.use_deterministic_algorithms(True)
    where = {s: [i for i, cid in enumerate(data["ids"]) if split_of.get(cid) == s] for s in SPLITS}
    for s in ("train", "test"):
        if not where[s]:
            raise GosBuildError(f"the {s} split is empty; nothing to train or test on")
    images, layers = variant_inputs(variant, data.get("terrain_names", TERRAIN), data.get("images", (RGB.name,)))
    dev = device()
    pick = torch.tensor(layers, dtype=torch.long)
    image = torch.cat([data[m] for m in images], dim=1) if images else data[RGB.name][:, :0]  # bands stacked

    def part(s):
        idx = torch.tensor(where[s], dtype=torch.long)
        return {"image": image[idx].to(dev), "terrain": data["terrain"][idx][:, pick].to(dev),
                "label": data["label"][idx].to(dev)}

    cache = {s: part(s) for s in SPLITS if where[s]}
    n_classes = len(data["classes"])
    model = BranchNet(n_classes, image=image.shape[1], terrain=len(layers)).to(dev)
    opt = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=1e-4)
    loss_fn = nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(seed)
    best, best_state, history = -1.0, None, []
    train = cache["train"]
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(train["label"]), generator=gen).to(dev)
        total = 0.0
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            if len(idx) < 2:
                continue  # BatchNorm needs two samples
            # no flips or rotations: hillshade, northness/eastness and the sun-lit imagery carry directions
            opt.zero_grad()
            loss = loss_fn(model(train["image"][idx], train["terrain"][idx]), train["label"][idx])
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        val_set = cache.get("val") or cache["train"]
        val_acc = metrics(val_set["label"].tolist(), _predict(model, val_set), n_classes)["overall_accuracy"]
        history.append({"epoch": epoch + 1, "train_loss": total / len(order), "val_accuracy": val_acc})
        log.info("baseline %s: epoch %d loss %.4f val accuracy %.3f", variant, epoch + 1, total / len(order), val_acc)
        if val_acc > best:
            best, best_state = val_acc, {k: v.clone() for k, v in model.state_dict().items()}
    model.load_state_dict(best_state)
    test = cache["test"]
    truth, pred = test["label"].tolist(), _predict(model, test)
    result = metrics(truth, pred, n_classes)
    result.update({"variant": variant, "classes": data["classes"], "chips": {s: len(where[s]) for s in SPLITS},
                   "best_val_accuracy": best, "epochs": epochs, "history": history,
                   "chance": _majority(truth),  # the majority class's share of the test chips
                   "test_chips": [data["ids"][i] for i in where["test"]],
                   "test_truth": truth, "test_pred": pred})
    return result


def train_and_evaluate(root: str | Path, split_of: dict[str, str] | None = None, epochs: int = 15,
                       batch_size: int = 32, lr: float = 2e-3, seed: int = 0, threads: int = 1,
                       variant: str = FULL) -> dict:
    """Train on train, keep the epoch with the best val accuracy, report on test (``split_of``: chip id ->
    split, overriding the dataset's own; used for the random-split comparison and the folds)."""
    data = load_chips(root)
    if split_of is None:
        split_of = {c["id"]: c["split"] for c in read_index(root)[1]}
    return fit(data, split_of, variant, epochs, batch_size, lr, seed, threads)


def imagery_layers(layers) -> tuple[str, ...]:
    """The imagery layers of a dataset's registry, in its order: rgb, then s2 and s2_<period> where it has them."""
    return tuple(m for m in layers if m in (RGB.name, S2) or is_period(m))


def _stack(ds: "GOSDataset") -> dict:
    items = [ds[i] for i in range(len(ds))]
    images = imagery_layers(ds.layers)
    if not items:
        return {**{m: torch.zeros(0, len(ds.layers[m].bands), 64, 64) for m in images},
                "terrain": torch.zeros(0, len(ds.terrain), 64, 64), "label": torch.zeros(0, dtype=torch.long)}
    return {**{m: torch.stack([it[m] for it in items]) for m in images},
            "terrain": torch.stack([it["terrain"] for it in items]),
            "label": torch.tensor([it["label"] for it in items], dtype=torch.long)}


def _predict(model, data: dict) -> list[int]:
    model.eval()
    with torch.no_grad():
        return model(data["image"], data["terrain"]).argmax(1).tolist()


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


def pooled(results: list[dict], classes: list[str]) -> dict:
    """One variant's test predictions over every fold together (each chip is tested once): overall and
    per-class accuracy with their Wilson intervals, and chip id -> correct."""
    correct, per_class = {}, [[0, 0] for _ in classes]
    for r in results:
        for cid, t, p in zip(r["test_chips"], r["test_truth"], r["test_pred"]):
            correct[cid] = t == p
            per_class[t][0] += t == p
            per_class[t][1] += 1
    k, n = sum(correct.values()), len(correct)
    return {"chips": n, "correct": k, "overall_accuracy": k / n if n else None, "interval": list(wilson(k, n)),
            "per_class": [{"class": c, "chips": m, "accuracy": h / m if m else None, "interval": list(wilson(h, m))}
                          for c, (h, m) in zip(classes, per_class)],
            "_correct": correct}


def baseline(root: str | Path, out_dir: str | Path, seed: int = 42, ratios: dict | None = None, epochs: int = 15,
             threads: int = 1, variants=VARIANTS, block_chips: int = 8) -> dict:
    """The modality comparison and what the split hides, with intervals: metrics.json, report.md, figures.

    Every chip is loaded once (the packed store where the dataset has one). The multimodal model is trained on
    the dataset's block split and on a seeded random split of the same chips; each variant of
    :func:`expand_variants` over the spatial folds when the dataset has them (else the block split), same
    seed, same epochs. Intervals: Wilson for each accuracy (pooled over the folds, each chip tested once),
    Newcombe for the random-against-block difference, a paired bootstrap over spatial blocks of
    ``block_chips`` x ``block_chips`` chips for each variant against the multimodal model.
    """
    from .evaluation import block_ids, boundary_bins, newcombe, paired_block_bootstrap
    from .io import atomic_write_text
    from .layout import read_folds

    layers = dataset_layers(root)
    names = expand_variants(variants, layers.elevation, imagery_layers(layers))  # a typo is one line, before training
    data = load_chips(root)
    _, chips = read_index(root)
    classes = data["classes"]
    own = {c["id"]: c["split"] for c in chips}
    ratios = ratios or {"train": 0.7, "val": 0.1, "test": 0.2}
    block = fit(data, own, FULL, epochs, seed=seed, threads=threads)
    rand = fit(data, random_split(chips, seed=seed, ratios=ratios), FULL, epochs, seed=seed, threads=threads)
    d, lo, hi = newcombe(int(round(rand["overall_accuracy"] * rand["n"])), rand["n"],
                         int(round(block["overall_accuracy"] * block["n"])), block["n"])
    out = {"device": device(), "block": block, "random": rand, "random_split_difference": {
        "difference": d, "interval": [lo, hi], "test_chips": [rand["n"], block["n"]]}}
    fold_of = read_folds(root)
    schemes = fold_splits(fold_of) if fold_of else [own]
    out["evaluation"] = f"spatial {len(schemes)}-fold cross-validation" if fold_of else "the block split"
    per_variant = {}
    for v in names:
        runs = []
        for i, split_of in enumerate(schemes, start=1):
            log.info("baseline: variant %s, %s %d/%d", v, "fold" if fold_of else "split", i, len(schemes))
            runs.append(block if (v == FULL and not fold_of) else fit(data, split_of, v, epochs, seed=seed,
                                                                      threads=threads))
        per_variant[v] = {"runs": runs, "summary": summarize_folds(runs), "pooled": pooled(runs, classes)}
    if fold_of:
        out["folds"] = {"per_fold": per_variant[FULL]["runs"], "summary": per_variant[FULL]["summary"]}
    where = {cid: i for i, cid in enumerate(data["ids"])}
    full = per_variant[FULL]["pooled"]["_correct"]
    tested = sorted(full)
    blocks = block_ids([data["xy"][where[c]] for c in tested], block_chips * 64 * _resolution(root))
    out["test_blocks"] = {"blocks": int(len(np.unique(blocks))), "block_chips": block_chips,
                          "needed": MIN_BLOCKS}
    if out["test_blocks"]["blocks"] < MIN_BLOCKS:
        log.warning("baseline: the %d test chips lie in %d spatial block(s) of %d x %d chips: too few to compare "
                    "variants (a paired bootstrap over blocks needs %d); the comparison is not made", len(tested),
                    out["test_blocks"]["blocks"], block_chips, block_chips, MIN_BLOCKS)
    for v in names[1:]:
        mine = per_variant[v]["pooled"]["_correct"]
        dv, lo, hi = paired_block_bootstrap([mine[c] for c in tested], [full[c] for c in tested], blocks, seed=seed)
        per_variant[v]["against_full"] = {"difference": dv, "interval": [lo, hi]
                                          if out["test_blocks"]["blocks"] >= MIN_BLOCKS else None}
    out["ablation"] = {v: {"summary": r["summary"], "pooled": {k: x for k, x in r["pooled"].items() if k != "_correct"},
                           **({"against_full": r["against_full"]} if "against_full" in r else {}),
                           "per_run": [{"overall_accuracy": m["overall_accuracy"], "kappa": m["kappa"], "n": m["n"]}
                                       for m in r["runs"]]}
                       for v, r in per_variant.items()}
    out["boundary"] = boundary_bins([data["boundary_m"][where[c]] for c in tested], [full[c] for c in tested],
                                    64 * _resolution(root))
    for m in (block, rand):
        m.pop("test_chips"), m.pop("test_truth"), m.pop("test_pred")
    for r in per_variant.values():
        for m in r["runs"]:
            for k in ("test_chips", "test_truth", "test_pred"):
                m.pop(k, None)
    out_dir = Path(out_dir)
    atomic_write_text(out_dir / "metrics.json", json.dumps(out, indent=2, sort_keys=True) + "\n")
    atomic_write_text(out_dir / "report.md", _report(out))
    _confusion_figure(out, out_dir / "confusion.png")
    _ablation_figure(out, out_dir / "ablation.png")
    pf, rs = out["ablation"][FULL]["pooled"], out["random_split_difference"]
    log.info("baseline: %s: multimodal OA %.3f [%.3f, %.3f] on %d chips; random split %+.3f [%+.3f, %+.3f]",
             out["evaluation"], pf["overall_accuracy"], *pf["interval"], pf["chips"], rs["difference"],
             *rs["interval"])
    return out


def _resolution(root: str | Path) -> float:
    """Metres per pixel of a dataset's chips (from its packed store's or its first chip's georeferencing)."""
    classes, chips = dataset_index(root)
    if len(chips) >= 1:
        import rasterio

        c = chips[0]
        with rasterio.open(Path(root) / chip_path(RGB.name, classes[c["class_id"]]["name"], c["id"])) as ds:
            return float(ds.res[0])
    return 10.0


def _acc(v, interval) -> str:
    return "-" if v is None else f"{v:.3f} [{interval[0]:.3f}, {interval[1]:.3f}]"


def _report(out: dict) -> str:
    from .evaluation import bin_label, boundary_words, difference_words, random_split_words, wilson

    b, r = out["block"], out["random"]
    lines = ["# Baseline: late-fusion CNN (imagery and terrain branches)", "",
             f"Accuracies are followed by their 95 % interval [low, high] (Wilson); differences by theirs, and are "
             f"called significant when it excludes 0. Device: {out['device']}.", "",
             "## What the split hides", "",
             "| split | train/val/test chips | test OA | kappa | per-class accuracy | chance (majority class) |",
             "|---|---|---|---|---|---|"]
    for name, m in (("block (the dataset's)", b), ("random (same chips)", r)):
        cm = np.array(m["confusion_matrix"])
        pc = ", ".join(f"{c} {_acc(a, wilson(int(cm[i, i]), int(cm[i].sum())))}"
                       for i, (c, a) in enumerate(zip(m["classes"], m["per_class_accuracy"])))
        k = int(np.trace(cm))
        lines.append(f"| {name} | {m['chips']['train']}/{m['chips']['val']}/{m['chips']['test']} | "
                     f"{_acc(m['overall_accuracy'], wilson(k, m['n']))} | {_num(m['kappa'])} | {pc} | "
                     f"{_num(m['chance'])} |")
    rs = out["random_split_difference"]
    lines += ["", random_split_words(rs["difference"], *rs["interval"], *rs["test_chips"]), ""]
    ab = out["ablation"]
    lines += [f"## What each modality adds ({out['evaluation']})", "",
              "Same architecture, seed and epochs for every variant; only the input layers differ. OA pooled over "
              "the test chips of every fold (each chip tested once) with its interval; mean ± sd over the folds; "
              "the difference to the multimodal model by a paired bootstrap over spatial blocks.", "",
              "| variant | pooled OA | OA mean ± sd | kappa mean ± sd | per-class accuracy (pooled) | vs rgb+terrain |",
              "|---|---|---|---|---|---|"]
    for v, a in ab.items():
        sm, pl = a["summary"], a["pooled"]
        pc = ", ".join(f"{p['class']} {_acc(p['accuracy'], p['interval'])}" for p in pl["per_class"])
        against = a.get("against_full")
        vs = "-" if against is None else "not compared" if against["interval"] is None else (
            f"{_num(against['difference'], '+.3f')} [{_num(against['interval'][0], '+.3f')}, "
            f"{_num(against['interval'][1], '+.3f')}]")
        lines.append(f"| {v} | {_acc(pl['overall_accuracy'], pl['interval'])} | {_pm(sm['overall_accuracy'])} | "
                     f"{_pm(sm['kappa'])} | {pc} | {vs} |")
    n = ab[FULL]["pooled"]["chips"]
    tb = out.get("test_blocks")
    lines.append("")
    if tb:
        lines += [f"The {n} test chips lie in {tb['blocks']} spatial block{'s' if tb['blocks'] != 1 else ''} of "
                  f"{tb['block_chips']} x {tb['block_chips']} chips.", ""]
    compared = not (tb and tb["blocks"] < tb["needed"])
    if not compared:
        lines += [f"- The variants are not compared: {tb['blocks']} block{'s' if tb['blocks'] != 1 else ''} "
                  f"cannot show whether a difference on these chips would hold on others (a paired bootstrap "
                  f"over blocks needs at least {tb['needed']}); a larger AOI, more folds (split.folds) or smaller "
                  "blocks (split.block_chips) give more.", ""]
    for v, what in (("rgb", "Terrain, added to the image alone,"), ("terrain", "The image, added to terrain alone,"),
                    (GOS10M_VARIANT, "Adding the extra terrain layers to the image and GOS10m's terrain layers")):
        if v in ab and compared:  # the multimodal model against this variant: what the other modality adds
            d, (lo, hi) = ab[v]["against_full"]["difference"], ab[v]["against_full"]["interval"]
            lines.append("- " + difference_words(what, -d, -hi, -lo, n))
    for v in ab:  # imagery beyond rgb's, with terrain, against the multimodal model: what those bands add
        parts = v.split("+")
        if compared and parts[-1] == "terrain" and parts[0] != RGB.name and len(parts) > 1:
            d, (lo, hi) = ab[v]["against_full"]["difference"], ab[v]["against_full"]["interval"]
            what = f"The image as {' and '.join(parts[:-1])}'s bands instead of rgb's (with terrain)"
            lines.append("- " + difference_words(what, d, lo, hi, n))
    drops = [v for v in ab if v.startswith(FULL + "-") and compared]
    if drops:
        sig = [v for v in drops if not (ab[v]["against_full"]["interval"][0] <= 0 <= ab[v]["against_full"]["interval"][1])]
        if sig:
            for v in sig:
                d, (lo, hi) = ab[v]["against_full"]["difference"], ab[v]["against_full"]["interval"]
                lines.append("- " + difference_words(f"Removing {v[len(FULL) + 1:]}", d, lo, hi, n))
        else:
            lines.append(f"- Removing any one terrain layer changes accuracy by no more than what {n} test chips "
                         f"resolve (every drop-one interval includes 0): the terrain layers overlap in what they "
                         f"tell the model.")
    lines += ["", "## Errors by distance to a class boundary (rgb+terrain, pooled test chips)", "",
              "| distance (chip widths) | chips | errors | error rate |", "|---|---:|---:|---|"]
    for bn in out["boundary"]:
        lines.append(f"| {bin_label(bn)} | {bn['chips']} | {bn['errors']} | {_acc(bn['error_rate'], bn['interval'])} |")
    lines += ["", boundary_words(out["boundary"]), ""]
    if "folds" in out:
        lines += ["## Per fold (rgb+terrain)", "", "(test fold, chips train/val/test, OA [interval], kappa)", ""]
        for i, m in enumerate(out["folds"]["per_fold"], start=1):
            k = int(np.trace(np.array(m["confusion_matrix"])))
            lines.append(f"- fold {i}: {m['chips']['train']}/{m['chips']['val']}/{m['chips']['test']}, "
                         f"OA {_acc(m['overall_accuracy'], wilson(k, m['n']))}, kappa {_num(m['kappa'])}")
        lines.append("")
    return "\n".join(lines)


def _pm(v) -> str:
    """``mean ± sd`` over the folds; one run has no spread to give."""
    if v["mean"] is None:
        return "-"
    if v.get("n", 2) < 2:
        return f"{_num(v['mean'])} (one run)"
    return f"{_num(v['mean'])} ± {_num(v['sd'])}"


def _num(v, fmt: str = ".3f") -> str:
    """A number for the report: ``-`` when undefined (kappa of one class), never ``-0.000``."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    text = f"{v:{fmt}}"
    return f"{0.0:{fmt}}" if float(text) == 0 else text


def _ablation_figure(out: dict, path: Path) -> None:
    """Pooled OA with its interval per variant, and the error rate by distance to a class boundary."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .evaluation import bin_label

    ab = out["ablation"]
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(12, 4.2), gridspec_kw={"width_ratios": [2, 1]})
    names = list(ab)
    oa = [ab[v]["pooled"]["overall_accuracy"] or 0 for v in names]
    lo = [max(0.0, o - ab[v]["pooled"]["interval"][0]) for o, v in zip(oa, names)]  # >= 0: rounding at 0 and 1
    hi = [max(0.0, ab[v]["pooled"]["interval"][1] - o) for o, v in zip(oa, names)]
    a1.bar(range(len(names)), oa, color=["#2166ac"] + ["#bbbbbb"] * (len(names) - 1), edgecolor="k")
    a1.errorbar(range(len(names)), oa, yerr=[lo, hi], fmt="none", color="k", capsize=3)
    a1.set_xticks(range(len(names)), [v.replace(FULL + "-", "- ") for v in names], rotation=35, ha="right")
    a1.set_ylim(0, 1)
    a1.set_ylabel("overall accuracy (95 % interval)")
    a1.set_title(f"modalities: {out['evaluation']}")
    bins = out["boundary"]
    rate = [b["error_rate"] or 0 for b in bins]
    a2.bar(range(len(bins)), rate, color="#d95f02", edgecolor="k")
    full = [i for i, b in enumerate(bins) if b["chips"]]  # an empty bin has no rate and no interval: no bar
    a2.errorbar(full, [rate[i] for i in full], yerr=[[max(0.0, rate[i] - bins[i]["interval"][0]) for i in full],
                                                     [max(0.0, bins[i]["interval"][1] - rate[i]) for i in full]],
                fmt="none", color="k", capsize=3)
    for i, b in enumerate(bins):
        if not b["chips"]:
            a2.text(i, 0.02, "no chips", ha="center", va="bottom", fontsize=8, rotation=90)
    a2.set_xticks(range(len(bins)), [f"{bin_label(b)}\n({b['chips']})" for b in bins])
    a2.set_xlabel("distance to a class boundary, chip widths (chips)")
    a2.set_ylabel("test error rate (95 % interval)")
    a2.set_ylim(0, 1)
    a2.set_title("errors near boundaries")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100, metadata={"Software": None})
    plt.close(fig)


def _confusion_figure(out: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = [("block split", out["block"]), ("random split", out["random"])]
    fig, axes = plt.subplots(1, 3 if "folds" in out else 2, figsize=(13.5 if "folds" in out else 9, 4.2))
    for ax, (name, m) in zip(axes, panels):
        cm = np.array(m["confusion_matrix"])
        ax.imshow(cm, cmap="Blues", vmin=0)
        for i in range(cm.shape[0]):
            for j in range(cm.shape[1]):  # light digits on the dark half of the colour scale
                dark = cm.max() > 0 and cm[i, j] > cm.max() / 2
                ax.text(j, i, str(cm[i, j]), ha="center", va="center", color="white" if dark else "black")
        ax.set_xticks(range(len(m["classes"])), m["classes"])
        ax.set_yticks(range(len(m["classes"])), m["classes"])
        ax.set_xlabel("predicted")
        ax.set_ylabel("true")
        ax.set_title(f"{name}: OA {m['overall_accuracy']:.2f}, kappa {_num(m['kappa'], '.2f')}")
    if "folds" in out:  # the spread over the spatial folds: one dot per fold, bar = mean
        ax = axes[2]
        per_fold, sm = out["folds"]["per_fold"], out["folds"]["summary"]
        names = ["OA", "kappa"] + [f"acc {c}" for c in sm["classes"]]
        values = [[m["overall_accuracy"] for m in per_fold], [m["kappa"] for m in per_fold]]  # None: left out
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
