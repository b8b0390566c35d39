"""``gos-build validate``: is a dataset folder consistent with its manifest, index files and chip geometry?

Every file is read once: its bytes give the sha256 the manifest must list and, for a chip GeoTIFF, the
directory that says its size, bounds and CRS (:func:`gos_build.gtiff.read_header`; GDAL opens only a
file that is not of the kind gos-build writes, and once per CRS to name it). One thread: with ~100 000
small files, threads only contend for Python's lock (measured: 9 s alone, 15 s with two).
"""

from __future__ import annotations

import hashlib
import os
from collections import defaultdict
from pathlib import Path

from ..errors import GosBuildError
from ..gtiff import NotAChip, read_header
from ..io import files_under
from ..layout import FOLDS_FILE, MODALITIES, SPLITS, chip_path, read_folds, read_index, split_file
from .gather import MANIFEST_FILE
from .writers.parquet import INDEX_FILE, NAME as PARQUET, shard_name
from .writers.stac import LABEL_ASSET, LABEL_PROPERTY, SPLIT_NAMES, item_path, label_path

_WHOLE = 16 << 20  # files up to this size are read in one piece (chips are ~15 kB); larger ones in blocks
_SKIP = {MANIFEST_FILE, ".snakemake_timestamp"}  # Snakemake marks directory outputs: not part of the dataset


def _read(path: Path, want_header: bool) -> tuple[str | None, object]:
    """(sha256 or None if missing, header of a chip / an exception / None) of one file, read once."""
    h = hashlib.sha256()
    try:
        with open(path, "rb") as f:
            data = f.read(_WHOLE + 1)
            h.update(data)
            if len(data) > _WHOLE:  # a large file: the rest in blocks, and no header
                data = None
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        return None, None
    header = None
    if want_header:
        try:
            header = read_header(data) if data is not None else NotAChip("large file")
        except NotAChip as exc:
            header = exc
    return h.hexdigest(), header


class _Geometry:
    """(width, height, CRS, bounds) of chip files from their headers; GDAL names each CRS once and opens
    what the header reader does not know."""

    def __init__(self):
        self._crs: dict[bytes, str | None] = {}

    def of(self, path: Path, header) -> tuple | str:
        """The geometry tuple, or a problem (text) when the file is not a readable GeoTIFF."""
        if header is None or isinstance(header, Exception):
            return self._gdal(path)
        if header.crs_key not in self._crs:
            geo = self._gdal(path)
            if isinstance(geo, str):
                return geo
            self._crs[header.crs_key] = geo[2]
        return (header.width, header.height, self._crs[header.crs_key], tuple(round(v, 6) for v in header.bounds))

    @staticmethod
    def _gdal(path: Path) -> tuple | str:
        import rasterio
        from rasterio.errors import RasterioIOError

        try:
            # the folder lists ~10 000 files: do not let GDAL read it at every open
            with rasterio.Env(GDAL_DISABLE_READDIR_ON_OPEN="EMPTY_DIR"), rasterio.open(path) as ds:
                return (ds.width, ds.height, ds.crs.to_string() if ds.crs else None,
                        tuple(round(v, 6) for v in ds.bounds))
        except RasterioIOError as exc:
            return f"not a readable GeoTIFF ({exc})"


def validate_dataset(dataset: str | Path, chip_size: int = 64) -> list[str]:
    """Every problem found in a dataset folder (empty list: it is consistent)."""
    d = Path(dataset)
    problems: list[str] = []
    if not d.is_dir():
        return [f"{d}: not a folder"]
    manifest = d / MANIFEST_FILE
    listed: dict[str, str] = {}
    have_manifest = manifest.exists()
    if not have_manifest:
        problems.append("MANIFEST.sha256 is missing")
    else:
        for line in manifest.read_text(encoding="utf-8").splitlines():
            digest, _, rel = line.partition("  ")
            listed[rel] = digest
    try:
        index, chips = read_index(d)
    except GosBuildError as exc:
        index, chips, index_problem = {}, [], str(exc)
    else:
        index_problem = None
    classes = {cid: c["name"] for cid, c in index.items()}
    expected = {chip_path(m, classes[c["label"]], c["id"]) for c in chips if c["label"] in classes for m in MODALITIES}

    # one read of every listed file and every expected chip: sha256 and, for chips, the header
    todo = sorted(set(listed) | expected)
    read = {rel: _read(d / rel, rel in expected) for rel in todo}
    for rel, digest in sorted(listed.items()):
        got = read[rel][0]
        if got is None:
            problems.append(f"{rel}: listed in MANIFEST.sha256 but missing")
        elif got != digest:
            problems.append(f"{rel}: sha256 differs from MANIFEST.sha256")
    present = set(files_under(d)) - _SKIP
    if have_manifest:
        for rel in sorted(present - set(listed)):
            problems.append(f"{rel}: not listed in MANIFEST.sha256")
    if index_problem:
        return problems + [index_problem]

    in_split = defaultdict(list)
    for s in SPLITS:
        f = d / split_file(s)
        if not f.exists():
            problems.append(f"{split_file(s)} is missing")
            continue
        for cid in f.read_text(encoding="utf-8").split():
            in_split[cid].append(s)
    geometry = _Geometry()
    for chip in chips:
        cid, label, split = chip["id"], chip["label"], chip["split"]
        if label not in classes:
            problems.append(f"{cid}: label {label} is not in classes.txt")
            continue
        if in_split.get(cid, []) != [split]:
            problems.append(f"{cid}: in splits {in_split.get(cid, [])}, labels.txt says {split}")
        ref = None
        for m in MODALITIES:
            rel = chip_path(m, classes[label], cid)
            digest, header = read[rel]
            if digest is None:
                problems.append(f"{rel}: missing")
                continue
            geo = geometry.of(d / rel, header)
            if isinstance(geo, str):
                problems.append(f"{rel}: {geo}")
                continue
            if (geo[0], geo[1]) != (chip_size, chip_size):
                problems.append(f"{rel}: {geo[0]} x {geo[1]} px, expected {chip_size} x {chip_size}")
            if ref is None:
                ref = geo
            elif geo != ref:
                problems.append(f"{rel}: bounds or CRS differ from the chip's rgb layer")
    problems += _publication_problems(d, chips, classes, listed)
    labelled = {c["id"] for c in chips}
    try:
        folds = read_folds(d)
    except GosBuildError as exc:
        problems.append(str(exc))
        folds = {}
    if folds and set(folds) != labelled:
        missing, extra = sorted(labelled - set(folds)), sorted(set(folds) - labelled)
        problems.append(f"{FOLDS_FILE}: {len(missing)} chip(s) of labels.txt without a fold, "
                        f"{len(extra)} fold line(s) for chips not in labels.txt")
    for cid in sorted(set(in_split) - labelled):
        problems.append(f"{cid}: in a split list but not in labels.txt")
    layers = set(MODALITIES)
    for rel in sorted(present, key=lambda r: r.split("/")):
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] in layers and parts[2].endswith(".tif") and rel not in expected:
            problems.append(f"{rel}: no matching line in labels.txt (or in the wrong class folder)")
    return problems


def _publication_problems(d: Path, chips: list[dict], classes: dict, listed: dict) -> list[str]:
    """The STAC items, the Croissant index and the packed store agree with labels.txt (and the manifest)."""
    import csv
    import json

    out = []
    by_id = {c["id"]: c for c in chips}
    stac = d / "stac"
    if stac.is_dir():
        for cid, chip in sorted(by_id.items()):
            where = item_path(cid)
            if not (d / where).is_file():
                out.append(f"{where}: missing")
                continue
            item = json.loads((d / where).read_text(encoding="utf-8"))
            if item["properties"].get("ml-aoi:split") != SPLIT_NAMES[chip["split"]] or \
                    item["properties"].get("gos_build:class_id") != chip["label"]:
                out.append(f"{where}: split or class differ from labels.txt")
            for key, asset in item["assets"].items():
                # relative to the item's folder, within the dataset (path arithmetic: no file system calls)
                rel = os.path.normpath(os.path.join("stac", cid, asset["href"])).replace(os.sep, "/")
                want = label_path(cid) if key == LABEL_ASSET else chip_path(key, classes.get(chip["label"], "?"), cid)
                if rel != want:
                    out.append(f"{where}: asset {key} points to {rel}")
                elif listed and asset.get("file:checksum") != "1220" + listed.get(rel, ""):
                    out.append(f"{where}: asset {key}: file:checksum differs from MANIFEST.sha256")
            label = d / label_path(cid)
            if label.is_file():
                features = json.loads(label.read_text(encoding="utf-8")).get("features") or [{}]
                if features[0].get("properties", {}).get(LABEL_PROPERTY) != classes.get(chip["label"]):
                    out.append(f"{label_path(cid)}: class differs from labels.txt")
    index = d / "chips.csv"
    if index.is_file():
        with open(index, encoding="utf-8", newline="") as f:
            rows = {r["chip_id"]: r for r in csv.DictReader(f)}
        if set(rows) != set(by_id) or any(int(rows[c]["label"]) != by_id[c]["label"] or rows[c]["split"] !=
                                          by_id[c]["split"] for c in by_id if c in rows):
            out.append("chips.csv: ids, labels or splits differ from labels.txt")
    if (d / PARQUET).is_dir():
        out += _parquet_problems(d, chips, classes, listed)
    if (d / "packed").is_dir():
        import zarr

        store = zarr.open_group(str(d / "packed"), mode="r")
        for s in SPLITS:
            ids = [str(v) for v in store[s]["chip_id"][:]]
            want = sorted(c for c, chip in by_id.items() if chip["split"] == s)
            if ids != want:
                out.append(f"packed/{s}: chip ids differ from {split_file(s)}")
            elif [int(v) for v in store[s]["label"][:]] != [by_id[c]["label"] for c in ids]:
                out.append(f"packed/{s}: labels differ from labels.txt")
            for m in MODALITIES:
                if store[s][m].shape[0] != len(ids):
                    out.append(f"packed/{s}/{m}: {store[s][m].shape[0]} chips, expected {len(ids)}")
    return out


def _parquet_problems(d: Path, chips: list[dict], classes: dict, listed: dict) -> list[str]:
    """Every shard row is a chip of labels.txt with its split and class, each layer's bytes hash to the tree
    file's sha256 in the manifest, every chip is in one row, and the index points at the right rows."""
    import hashlib
    import re

    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    unreadable = (OSError, ValueError, KeyError, TypeError, ArrowException)  # what pyarrow raises on a bad file
    out = []
    by_id = {c["id"]: c for c in chips}
    seen: dict[str, str] = {}
    pattern = re.compile(r"^(?P<split>[a-z]+)-(?P<k>\d{5})-of-(?P<n>\d{5})\.parquet$")
    index_of = {cid: i for i, cid in enumerate(sorted(classes))}  # the ClassLabel index of a class id
    for name in sorted(os.listdir(d / PARQUET)):
        m = pattern.match(name)
        if not m:
            continue
        rel = f"{PARQUET}/{name}"
        if m["split"] not in SPLITS or rel != shard_name(m["split"], int(m["k"]), int(m["n"])):
            out.append(f"{rel}: not a shard name of this dataset")
            continue
        try:
            shard = pq.ParquetFile(d / rel)
            columns = ["chip_id", "class_id", "label", "split", *MODALITIES]
            for group in range(shard.num_row_groups):
                table = shard.read_row_group(group, columns=columns).to_pylist()
                for row in table:
                    cid = row["chip_id"]
                    chip = by_id.get(cid)
                    if chip is None:
                        out.append(f"{rel}: chip {cid} is not in labels.txt")
                        continue
                    if cid in seen:
                        out.append(f"{rel}: chip {cid} is in two rows")
                    seen[cid] = rel
                    if row["split"] != chip["split"] or m["split"] != chip["split"] or \
                            row["class_id"] != chip["label"] or index_of.get(chip["label"]) != row["label"]:
                        out.append(f"{rel}: chip {cid}: split or class differ from labels.txt")
                        continue
                    for layer in MODALITIES:
                        tree = chip_path(layer, classes[chip["label"]], cid)
                        data = row[layer]
                        if data is None or hashlib.sha256(data).hexdigest() != listed.get(tree):
                            out.append(f"{rel}: chip {cid}: {layer} bytes differ from {tree} in MANIFEST.sha256")
        except unreadable as exc:  # a damaged shard is a finding
            out.append(f"{rel}: not a readable Parquet shard ({type(exc).__name__}: {str(exc)[:200]})")
    missing = sorted(set(by_id) - set(seen))
    if missing:
        out.append(f"{PARQUET}/: {len(missing)} chip(s) of labels.txt in no shard (first: {missing[0]})")
    try:
        index = pq.read_table(d / INDEX_FILE, columns=["chip_id", "parquet_file", "parquet_row"]).to_pylist()
    except unreadable as exc:
        return out + [f"{INDEX_FILE}: not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]})"]
    rows: dict[str, list] = {}
    for r in index:
        rows.setdefault(r["parquet_file"], []).append(r)
    for rel, entries in sorted(rows.items(), key=lambda kv: str(kv[0])):
        if not isinstance(rel, str) or not re.fullmatch(rf"{PARQUET}/[a-z]+-\d{{5}}-of-\d{{5}}\.parquet", rel):
            out.append(f"{INDEX_FILE}: parquet_file {rel!r} is not a shard of this dataset")
            continue
        try:
            ids = pq.read_table(d / rel, columns=["chip_id"]).column("chip_id").to_pylist()
        except unreadable as exc:
            out.append(f"{INDEX_FILE}: parquet_file {rel} cannot be read ({type(exc).__name__})")
            continue
        for r in entries:
            row = r["parquet_row"]
            if not isinstance(row, int) or not 0 <= row < len(ids) or ids[row] != r["chip_id"]:
                out.append(f"{INDEX_FILE}: {r['chip_id']} points to row {row} of {rel}, which holds another chip")
    if sorted(r["chip_id"] for r in index if isinstance(r["chip_id"], str)) != sorted(by_id):
        out.append(f"{INDEX_FILE}: chip ids differ from labels.txt")
    return out
