#!/usr/bin/env python3
"""Fake data for the TorchGeo tests: a tiny gos-build dataset as TorchGeo asks contributed datasets to ship.

    python tests/data/gos_build/data.py OUT_DIR

Writes, with a fixed seed, 12 chips (6 train, 2 val, 4 test; 3 classes; two spatial folds) of GOS10m's nine
layers in the files the TorchGeo classes read: ``classes.txt``, ``labels.txt``, the split lists,
``folds.txt``, ``stats.json``, the packed Zarr store (``packed/<split>/<layer>``, Zstandard chunks of 16
chips, as gos-build writes it) and the Parquet form (one shard a split, row groups of 4 chips, each
layer's chip GeoTIFF bytes, and the ``parquet/chips.parquet`` index). Values are random but small, so the
files stay a few hundred kB; they are not geomorphology.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import numcodecs
import pyarrow as pa
import pyarrow.parquet as pq
import zarr
from affine import Affine

from gos_build.gtiff import encoder
from gos_build.layout import GOS10M, band_descriptions

SEED = 0
SIZE = 64
CRS = "EPSG:32652"
CLASSES = {1: ("tectonic", "构造地貌"), 2: ("volcanic", "火山熔岩地貌"), 3: ("fluvial", "流水地貌")}
SPLITS = {"train": 6, "val": 2, "test": 4}


def chips() -> list[dict]:
    out, k = [], 0
    for split, n in SPLITS.items():
        for _ in range(n):
            x, y = 430080 + 640 * (k % 4), 4830720 + 640 * (k // 4)
            out.append({"id": f"E{x:07d}N{y:07d}", "class_id": k % 3 + 1, "split": split, "x": x, "y": y,
                        "fold": 1 + (k % 4 >= 2)})
            k += 1
    return sorted(out, key=lambda c: c["id"])


def arrays(rng, chip) -> dict[str, np.ndarray]:
    """Each layer of one chip, in its dtype: rgb reflectance x 10000, the rest float32 around a class level."""
    out = {}
    for name, layer in GOS10M.items():
        if layer.dtype == "uint16":
            out[name] = rng.integers(200, 2000, (len(layer.bands), SIZE, SIZE)).astype("uint16")
        else:
            base = 100.0 * chip["class_id"]
            out[name] = (base + rng.normal(0, 5, (1, SIZE, SIZE))).astype("float32")
    return out


def main(out: Path) -> None:
    rng = np.random.default_rng(SEED)
    out.mkdir(parents=True, exist_ok=True)
    all_chips = chips()
    data = {c["id"]: arrays(rng, c) for c in all_chips}
    (out / "classes.txt").write_text("".join(f"{k}\t{n}\t{zh}\n" for k, (n, zh) in CLASSES.items()), encoding="utf-8")
    (out / "labels.txt").write_text("# chip_id class_id purity split x y boundary_m\n" + "".join(
        f"{c['id']} {c['class_id']} 1.0000 {c['split']} {c['x']} {c['y']} 500.00\n" for c in all_chips), encoding="utf-8")
    for split in SPLITS:
        (out / f"{split}.txt").write_text("".join(f"{c['id']}\n" for c in all_chips if c["split"] == split))
    (out / "folds.txt").write_text("# chip_id fold\n" + "".join(f"{c['id']} {c['fold']}\n" for c in all_chips))
    train = [data[c["id"]] for c in all_chips if c["split"] == "train"]
    stats = {}
    for name, layer in GOS10M.items():
        stack = np.stack([t[name] for t in train]).astype(np.float64)
        stats[name] = {"bands": list(layer.bands), "units": layer.units, "count": [stack[:, b].size for b in
                       range(len(layer.bands))], "mean": [float(stack[:, b].mean()) for b in range(len(layer.bands))],
                       "std": [float(stack[:, b].std()) for b in range(len(layer.bands))],
                       "min": [float(stack[:, b].min()) for b in range(len(layer.bands))],
                       "max": [float(stack[:, b].max()) for b in range(len(layer.bands))]}
    (out / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n")
    # the packed store, as gos-build's packed writer lays it out
    root = zarr.open_group(str(out / "packed"), mode="w", zarr_format=2)
    for split in SPLITS:
        mine = [c for c in all_chips if c["split"] == split]
        g = root.create_group(split)
        n = len(mine)
        g.create_array("chip_id", data=np.array([c["id"] for c in mine], dtype="<U16"), chunks=(n,),
                       compressors=numcodecs.Zstd(level=3))
        g.create_array("label", data=np.array([sorted(CLASSES).index(c["class_id"]) for c in mine], dtype="uint8"),
                       chunks=(n,), compressors=numcodecs.Zstd(level=3))
        g.create_array("class_id", data=np.array([c["class_id"] for c in mine], dtype="uint8"), chunks=(n,),
                       compressors=numcodecs.Zstd(level=3))
        for name, layer in GOS10M.items():
            g.create_array(name, data=np.stack([data[c["id"]][name] for c in mine]),
                           chunks=(16, len(layer.bands), SIZE, SIZE), compressors=numcodecs.Zstd(level=3),
                           fill_value=layer.nodata)
    # the Parquet form: one shard a split, the layers' chip GeoTIFFs, and the index
    (out / "parquet").mkdir(exist_ok=True)
    index = {"chip_id": [], "parquet_file": [], "parquet_row": []}
    class_ids = sorted(CLASSES)
    for split in SPLITS:
        mine = [c for c in all_chips if c["split"] == split]
        name = f"parquet/{split}-00000-of-00001.parquet"
        cols = {"chip_id": [c["id"] for c in mine], "label": [class_ids.index(c["class_id"]) for c in mine],
                "class_id": [c["class_id"] for c in mine], "split": [split] * len(mine)}
        for layer_name, layer in GOS10M.items():
            enc = encoder((len(layer.bands), SIZE, SIZE), layer.dtype, CRS, layer.nodata,
                          tuple(band_descriptions(layer)), 10.0, layer.gdal_units)
            cols[layer_name] = [enc.encode(data[c["id"]][layer_name], Affine(10, 0, c["x"], 0, -10, c["y"] + 640))
                                for c in mine]
        pq.write_table(pa.table(cols), out / name, row_group_size=4)
        index["chip_id"] += cols["chip_id"]
        index["parquet_file"] += [name] * len(mine)
        index["parquet_row"] += list(range(len(mine)))
    pq.write_table(pa.table(index), out / "parquet" / "chips.parquet")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else Path(__file__).parent / "dataset"))
