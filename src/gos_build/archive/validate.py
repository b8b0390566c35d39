"""``gos-build validate``: is a dataset folder consistent with its manifest, index files and chip geometry?"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from ..errors import GosBuildError
from ..layout import FOLDS_FILE, MODALITIES, SPLITS, chip_path, read_folds, read_index, split_file
from ..io import sha256_file
from .gather import MANIFEST_FILE


def validate_dataset(dataset: str | Path, chip_size: int = 64) -> list[str]:
    """Every problem found in a dataset folder (empty list: it is consistent)."""
    import rasterio

    d = Path(dataset)
    problems: list[str] = []
    if not d.is_dir():
        return [f"{d}: not a folder"]
    manifest = d / MANIFEST_FILE
    listed = {}
    if not manifest.exists():
        problems.append("MANIFEST.sha256 is missing")
    else:
        for line in manifest.read_text(encoding="utf-8").splitlines():
            digest, _, rel = line.partition("  ")
            listed[rel] = digest
        for rel, digest in sorted(listed.items()):
            p = d / rel
            if not p.is_file():
                problems.append(f"{rel}: listed in MANIFEST.sha256 but missing")
            elif sha256_file(p) != digest:
                problems.append(f"{rel}: sha256 differs from MANIFEST.sha256")
        # Snakemake marks directory outputs with .snakemake_timestamp: not part of the dataset
        present = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()} - {MANIFEST_FILE,
                                                                                         ".snakemake_timestamp"}
        for rel in sorted(present - set(listed)):
            problems.append(f"{rel}: not listed in MANIFEST.sha256")
    try:
        index, chips = read_index(d)
    except GosBuildError as exc:
        return problems + [str(exc)]
    classes = {cid: c["name"] for cid, c in index.items()}
    in_split = defaultdict(list)
    for s in SPLITS:
        f = d / split_file(s)
        if not f.exists():
            problems.append(f"{split_file(s)} is missing")
            continue
        for cid in f.read_text(encoding="utf-8").split():
            in_split[cid].append(s)
    expected_files = set()
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
            expected_files.add(rel)
            p = d / rel
            if not p.is_file():
                problems.append(f"{rel}: missing")
                continue
            with rasterio.open(p) as ds:
                geo = (ds.width, ds.height, ds.crs.to_string() if ds.crs else None, tuple(round(v, 6) for v in ds.bounds))
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
    for p in sorted(p for m in MODALITIES for p in (d / m).glob("*/*.tif")):
        rel = p.relative_to(d).as_posix()
        if rel not in expected_files:
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
            item_path = stac / cid / f"{cid}.json"
            if not item_path.is_file():
                out.append(f"stac/{cid}/{cid}.json: missing")
                continue
            item = json.loads(item_path.read_text(encoding="utf-8"))
            if item["properties"].get("ml-aoi:split") != chip["split"] or \
                    item["properties"].get("gos_build:class_id") != chip["label"]:
                out.append(f"stac/{cid}/{cid}.json: split or class differ from labels.txt")
            for key, asset in item["assets"].items():
                rel = (item_path.parent / asset["href"]).resolve().relative_to(d.resolve()).as_posix()
                if rel != chip_path(key, classes.get(chip["label"], "?"), cid):
                    out.append(f"stac/{cid}/{cid}.json: asset {key} points to {rel}")
                elif listed and asset.get("file:checksum") != "1220" + listed.get(rel, ""):
                    out.append(f"stac/{cid}/{cid}.json: asset {key}: file:checksum differs from MANIFEST.sha256")
    index = d / "chips.csv"
    if index.is_file():
        with open(index, encoding="utf-8", newline="") as f:
            rows = {r["chip_id"]: r for r in csv.DictReader(f)}
        if set(rows) != set(by_id) or any(int(rows[c]["label"]) != by_id[c]["label"] or rows[c]["split"] !=
                                          by_id[c]["split"] for c in by_id if c in rows):
            out.append("chips.csv: ids, labels or splits differ from labels.txt")
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
