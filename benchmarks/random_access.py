"""Random access to chips: the Parquet form vs the packed Zarr store vs the GeoTIFF tree (a measurement, not a test).

    python benchmarks/random_access.py [DATASET] [--chips 1000] [--row-groups 1,16,64,256]

Reads ``--chips`` chips drawn at random (seed 0) from ``labels.txt``, every layer of each, decoded to arrays:
from the tree (one GeoTIFF per layer), from the packed store (the chip's row of each layer's array: zarr
decodes the chunk of 16 chips that holds it) and from the Parquet shards (the index gives the shard and row;
the row group holding it is read, the row's GeoTIFF bytes decoded: ``gos_build``'s ParquetReader). Then rewrites the shards with other row
group sizes (in a temporary folder) and times the same reads, with the files' and footers' sizes. Checks that
all three forms give the same arrays. Page cache warm: each form is read once before it is timed.
"""

from __future__ import annotations

import argparse
import random
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import zarr

from gos_build.readers import ParquetReader
from gos_build.gtiff import read_array, read_files
from gos_build.layout import MODALITIES, chip_path, read_index


def time_reads(fn, ids) -> tuple[float, list]:
    t0 = time.perf_counter()
    out = [fn(c) for c in ids]
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("dataset", nargs="?", default="results/demo/dataset")
    ap.add_argument("--chips", type=int, default=1000)
    ap.add_argument("--row-groups", default="1,16,64,256")
    args = ap.parse_args()
    d = Path(args.dataset)
    classes, chips = read_index(d)
    by_id = {c["id"]: c for c in chips}
    rng = random.Random(0)
    ids = [rng.choice(chips)["id"] for _ in range(args.chips)]

    def tree(cid):
        c = by_id[cid]
        return {m: read_files([d / chip_path(m, classes[c["class_id"]]["name"], cid)])[0] for m in MODALITIES}

    store = zarr.open_group(str(d / "packed"), mode="r")
    rows = {}
    for s in ("train", "val", "test"):
        rows.update((str(v), (s, i)) for i, v in enumerate(store[s]["chip_id"][:]))
    arrays = {(s, m): store[s][m] for s in ("train", "val", "test") for m in MODALITIES}

    def packed(cid):
        s, i = rows[cid]
        return {m: arrays[(s, m)][i] for m in MODALITIES}

    parquet = ParquetReader(d)

    def from_parquet(cid, reader=parquet):
        return {m: read_array(data) for m, data in reader.layers(cid).items()}

    results = {}
    for name, fn in (("tree", tree), ("packed", packed), ("parquet", from_parquet)):
        time_reads(fn, ids[:50])  # warm the page cache and the readers
        results[name] = time_reads(fn, ids)
    same = all(np.array_equal(a[m], b[m]) and np.array_equal(a[m], c[m])
               for a, b, c in zip(results["tree"][1], results["packed"][1], results["parquet"][1]) for m in MODALITIES)
    print(f"{d}: {len(chips)} chips; {len(ids)} random reads, all {len(MODALITIES)} layers decoded; same arrays: {same}\n")
    print("| form | s | chips/s |\n|---|---:|---:|")
    for name, (t, _) in results.items():
        print(f"| {name} | {t:.2f} | {len(ids) / t:.0f} |")

    shards = sorted((d / "parquet").glob("*-of-*.parquet"))
    print("\n| Parquet row group (chips) | shard bytes | footer bytes | s | chips/s |\n|---:|---:|---:|---:|---:|")
    for rg in (int(v) for v in args.row_groups.split(",")):
        with tempfile.TemporaryDirectory() as tmp:  # a dataset of the Parquet form alone, its shards rewritten
            (Path(tmp) / "parquet").mkdir()
            shutil.copy(d / "parquet" / "chips.parquet", Path(tmp) / "parquet")
            size = footer = 0
            for s in shards:
                table = pq.read_table(s)
                out = Path(tmp) / "parquet" / s.name
                pq.write_table(table, out, row_group_size=rg, compression="none", write_statistics=False)
                size += out.stat().st_size
                footer += pq.ParquetFile(out).metadata.serialized_size
            reader = ParquetReader(tmp)
            time_reads(lambda c: from_parquet(c, reader), ids[:50])
            t, _ = time_reads(lambda c: from_parquet(c, reader), ids)
            print(f"| {rg} | {size} | {footer} | {t:.2f} | {len(ids) / t:.0f} |")


if __name__ == "__main__":
    main()
