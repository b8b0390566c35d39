"""The gather: tile shards -> the dataset folder (splits, statistics, index files, writers, datacard, manifest).

Runs once per AOI, after every tile's shard. It reads the tiles' records
(``chips.json``), never the chips themselves, to choose splits and compute
the statistics, then lets each writer gather its files, and writes the folder
under a temporary name, renamed into place when complete.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections import Counter
from pathlib import Path

from .. import parallel
from ..errors import GosBuildError
from ..io import atomic_folder, files_under, sha256_file
from ..layout import (CLASSES_FILE, FOLDS_FILE, LABELS_FILE, LAYERS_FILE, SPLITS, Registry, classes_from_config,
                      classes_text, folds_text, labels_text, layers_from_config, layers_text, split_file)
from ..splits import block_folds, class_balance, splits_from_config, weak_data
from .writers import writers_of

log = logging.getLogger(__name__)

MANIFEST_FILE = "MANIFEST.sha256"
STATS_FILE = "stats.json"
DATACARD_FILE = "datacard.md"


class Digests(dict):
    """sha256 of the files of a dataset being written, by posix path in it: the writers add those of the
    files they write from the bytes in hand, any other is read once when first asked for; the STAC
    writer and the manifest share them."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, rel: str) -> str:
        self[rel] = sha256_file(self.folder / rel)
        return self[rel]


def layer_stats(chips: list[dict], split_of: dict[str, str], layers: Registry) -> dict:
    """Per layer of ``layers``, per band: count/mean/std/min/max over the train chips' valid pixels (from their
    sums)."""
    acc: dict = {}
    for c in chips:
        if split_of.get(c["id"]) != "train":
            continue
        for layer, bands in c["stats"].items():
            slots = acc.setdefault(layer, [{"n": 0, "sum": 0.0, "sumsq": 0.0, "min": math.inf, "max": -math.inf}
                                           for _ in bands])
            for a, b in zip(slots, bands):
                if b["n"]:
                    a["n"] += b["n"]
                    a["sum"] += b["sum"]
                    a["sumsq"] += b["sumsq"]
                    a["min"] = min(a["min"], b["min"])
                    a["max"] = max(a["max"], b["max"])
    out = {}
    for name, layer in layers.items():
        slots = acc.get(name, [])
        mean = [a["sum"] / a["n"] if a["n"] else None for a in slots]
        std = [math.sqrt(max(a["sumsq"] / a["n"] - (a["sum"] / a["n"]) ** 2, 0.0)) if a["n"] else None for a in slots]
        out[name] = {"bands": list(layer.bands), "units": layer.stored_units,
                     "count": [a["n"] for a in slots], "mean": [_r(v) for v in mean], "std": [_r(v) for v in std],
                     "min": [_r(a["min"]) if a["n"] else None for a in slots],
                     "max": [_r(a["max"]) if a["n"] else None for a in slots]}
    return out


def _r(v):
    return None if v is None else float(f"{v:.9g}")


def build_dataset(shards: list[tuple[str, str]], config: dict, chip_span: float, out_dir: str | Path,
                  provenance: dict, workers: int = 1) -> dict:
    """Gather tile shards ``[(chips.json, shard folder), ...]`` into the archive at ``out_dir`` (atomically).

    ``config``: the validated config (``classes`` and ``split`` are used here; all of it goes to the datacard).
    ``workers``: processes for the writers' work (the job's threads); the files do not depend on it.
    """
    from .datacard import write_datacard

    classes = classes_from_config(config["classes"])
    out_dir = Path(out_dir)
    docs = [json.loads(Path(j).read_text(encoding="utf-8")) for j, _ in shards]
    chips = sorted((c for d in docs for c in d["chips"]), key=lambda c: c["id"])
    ids = [c["id"] for c in chips]
    if len(set(ids)) != len(ids):
        raise GosBuildError("chips: the same chip id came from two tiles")
    rejected = Counter()
    candidates = partial = 0
    for d in docs:
        rejected.update(d["rejected"])
        candidates += d["candidates"]
        partial += d["partial_aoi"]
    if not chips:
        raise GosBuildError(f"chips: no chip passed the filters ({candidates} candidates; rejected: "
                            f"{', '.join(f'{k} {v}' for k, v in sorted(rejected.items()))}); "
                            "check chips.min_purity / max_nodata / max_cloud")
    split_cfg = config["split"]
    split_of = splits_from_config(chips, chip_span, split_cfg)
    buffered = len(chips) - len(split_of)
    chips = [dict(c, split=split_of[c["id"]]) for c in chips if c["id"] in split_of]
    block = split_cfg.get("block_chips", 8)
    balance = {"splits": class_balance(chips, split_of, chip_span, block)}
    fold_of = {}
    if split_cfg.get("folds"):
        fold_of = block_folds(chips, chip_span, split_cfg["folds"], block, split_cfg["seed"])
        balance["folds"] = class_balance(chips, fold_of, chip_span, block)
    blocked = str(split_cfg.get("method", "block")).startswith("block") or bool(fold_of)
    warnings = weak_data({cid: c["name"] for cid, c in classes.items()}, chips, chip_span if blocked else None,
                         block, fold_of)

    with atomic_folder(out_dir) as tmp:  # a full disk is the user's to fix, not a bug: one line naming the folder
        grid_doc = provenance.get("grid", {})
        digests = Digests(tmp)
        layers = layers_from_config(config)
        stats = layer_stats(chips, split_of, layers)
        context = {"layers": layers, "classes": classes, "crs": grid_doc.get("crs"), "chip_size": grid_doc.get("chip_size", 64),
                   "resolution": grid_doc.get("resolution", chip_span / 64), "config": config,
                   "provenance": provenance, "digests": digests, "stats": stats, "folds": fold_of}
        with parallel.workers(workers) as pool:  # started before any writer starts a thread (zarr does)
            context["pool"] = pool
            for name, writer in writers_of(config).items():
                t0 = time.perf_counter()
                writer.gather([z for _, z in shards], chips, tmp, context)
                log.info("dataset: writer %s %.1f s", name, time.perf_counter() - t0)
        (tmp / CLASSES_FILE).write_text(classes_text(classes), encoding="utf-8")
        (tmp / LABELS_FILE).write_text(labels_text(chips), encoding="utf-8")
        for s in SPLITS:
            (tmp / split_file(s)).write_text("".join(f"{c['id']}\n" for c in chips if c["split"] == s),
                                             encoding="utf-8")
        if fold_of:
            (tmp / FOLDS_FILE).write_text(folds_text(fold_of), encoding="utf-8")
        text = layers_text(layers)
        if text:  # a dataset with layers beyond GOS10m's nine says which
            (tmp / LAYERS_FILE).write_text(text, encoding="utf-8")
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        counts = {cid: {s: 0 for s in SPLITS} for cid in classes}
        for c in chips:
            counts[c["class_id"]][c["split"]] += 1
        summary = {"candidates": candidates, "partial_aoi": partial, "rejected": dict(sorted(rejected.items())),
                   "kept": len(chips) + buffered, "dropped_by_buffer": buffered, "in_dataset": len(chips),
                   "counts": {str(k): v for k, v in counts.items()}, "balance": balance, "warnings": warnings}
        write_datacard(tmp / DATACARD_FILE, classes, summary, stats, {"config": config, **provenance}, layers)
        datacard = (tmp / DATACARD_FILE).read_text(encoding="utf-8")
        for writer in writers_of(config).values():
            if hasattr(writer, "after_datacard"):
                writer.after_datacard(tmp, context, datacard)
        files = files_under(tmp)
        (tmp / MANIFEST_FILE).write_text("".join(f"{digests[rel]}  {rel}\n" for rel in files), encoding="utf-8")
    for cid, c in sorted(classes.items()):
        log.info("dataset: class %d %s: %s", cid, c["name"], counts[cid])
    for w in warnings:
        log.warning("dataset: %s", w)
    log.info("dataset: %d chips (%d candidates; rejected %s; %d dropped by the split buffer) -> %s",
             len(chips), candidates, dict(rejected), buffered, out_dir)
    return summary
