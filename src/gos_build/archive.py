"""The dataset archive: splits, gather of the tile shards, statistics, manifest, datacard, packages, validation.

Layout (``results/<aoi>/dataset/``)::

    <modality>/<class>/<chip_id>.tif   one GeoTIFF per chip and modality
    classes.txt                        id name name_zh (tab-separated)
    labels.txt                         chip_id label purity split x y
    train.txt val.txt test.txt         chip ids
    stats.json                         per-layer (per-band) mean/std/min/max over train chips
    datacard.md                        provenance: inputs, config, versions, counts
    MANIFEST.sha256                    sha256 of every file above

Splits (``split.method``):

* ``block`` (default): the global chip lattice is cut into blocks of
  ``block_chips`` x ``block_chips`` chips; blocks are visited in an order
  fixed by ``seed`` (SHA-256 of seed and block indices) and each goes to the
  split furthest below its target share of chips -- ratios met as closely as
  whole blocks allow, and neighbouring chips inside a block never straddle
  splits. ``buffer_chips`` = k drops every chip within k chips (8-neighbour
  distance) of a block of another split.
* ``random``: each chip by a seeded hash of its id (for comparison only:
  neighbouring chips leak between splits).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import zipfile
from collections import Counter, defaultdict
from pathlib import Path


from .chips import MODALITIES, ZIP_DATE
from .errors import GosBuildError

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")


def _unit_hash(*parts) -> float:
    """A uniform number in [0, 1) from the parts, the same on every platform and Python."""
    digest = hashlib.sha256(":".join(str(p) for p in parts).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def assign_splits(chips: list[dict], chip_span: float, method: str = "block", block_chips: int = 8,
                  buffer_chips: int = 0, seed: int = 42, ratios: dict | None = None) -> dict[str, str]:
    """chip id -> split for the chips kept (buffer-dropped chips are absent)."""
    ratios = ratios or {"train": 0.7, "val": 0.1, "test": 0.2}
    if method == "random":
        out = {}
        for c in chips:
            u = _unit_hash(seed, c["id"])
            out[c["id"]] = "train" if u < ratios["train"] else "val" if u < ratios["train"] + ratios["val"] else "test"
        return out
    if method != "block":
        raise GosBuildError(f"split.method: expected 'block' or 'random', got '{method}'")
    cell = {c["id"]: (math.floor(c["x"] / chip_span + 1e-9), math.floor(c["y"] / chip_span + 1e-9)) for c in chips}
    block_of = {cid: (ix // block_chips, iy // block_chips) for cid, (ix, iy) in cell.items()}
    size = Counter(block_of.values())
    total = sum(size.values())
    target = {s: ratios[s] * total for s in SPLITS}
    have = {s: 0 for s in SPLITS}
    assigned = {}
    for b in sorted(size, key=lambda b: (_unit_hash(seed, b[0], b[1]), b)):
        s = max(SPLITS, key=lambda s: (target[s] - have[s], -SPLITS.index(s)))
        assigned[b] = s
        have[s] += size[b]
    out = {}
    for cid, (ix, iy) in cell.items():
        own = assigned[block_of[cid]]
        if buffer_chips:
            near = {assigned.get(((ix + dx) // block_chips, (iy + dy) // block_chips))
                    for dx in range(-buffer_chips, buffer_chips + 1) for dy in range(-buffer_chips, buffer_chips + 1)}
            if near - {own, None}:
                continue
        out[cid] = own
    return out


def _stats(chips: list[dict], split_of: dict[str, str]) -> dict:
    """Per layer, per band: count/mean/std/min/max over the train chips' valid pixels."""
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
    units = {"rgb": "reflectance x 10000", "dem": "m", "hillshade": "grey level", "slope": "degree", "mean": "m",
             "std": "m", "northness": "1", "eastness": "1", "dev": "1"}
    for layer in MODALITIES:
        slots = acc.get(layer, [])
        mean = [a["sum"] / a["n"] if a["n"] else None for a in slots]
        std = [math.sqrt(max(a["sumsq"] / a["n"] - (a["sum"] / a["n"]) ** 2, 0.0)) if a["n"] else None for a in slots]
        out[layer] = {"bands": ["red", "green", "blue"] if layer == "rgb" else [layer], "units": units[layer],
                      "count": [a["n"] for a in slots], "mean": [_r(v) for v in mean], "std": [_r(v) for v in std],
                      "min": [_r(a["min"]) if a["n"] else None for a in slots],
                      "max": [_r(a["max"]) if a["n"] else None for a in slots]}
    return out


def _r(v):
    return None if v is None else float(f"{v:.9g}")


def read_index(dataset: str | Path) -> tuple[dict[int, dict], list[dict]]:
    """(class id -> {"name", "name_zh"}, chips [{"id", "label", "purity", "split", "x", "y"}]) of a dataset folder.

    The one reader of ``classes.txt`` and ``labels.txt`` (the loader, the figures
    and ``validate`` use it); raises GosBuildError naming the file and line.
    """
    d = Path(dataset)
    classes: dict[int, dict] = {}
    chips: list[dict] = []
    for name in ("classes.txt", "labels.txt"):
        path = d / name
        try:
            lines = path.read_text(encoding="utf-8").splitlines()
        except OSError as exc:
            raise GosBuildError(f"{path}: cannot read ({exc.strerror})") from None
        for n, line in enumerate(lines, start=1):
            if not line.strip() or line.startswith("#"):
                continue
            try:
                if name == "classes.txt":
                    cid, cname, zh = (line.split("\t") + [""])[:3]
                    classes[int(cid)] = {"name": cname, "name_zh": zh}
                else:
                    cid, label, purity, split, x, y = line.split()
                    chips.append({"id": cid, "label": int(label), "purity": float(purity), "split": split,
                                  "x": float(x), "y": float(y)})
            except ValueError:
                raise GosBuildError(f"{path}:{n}: malformed line '{line}'") from None
    return classes, chips


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def build_dataset(shards: list[tuple[str, str]], classes: dict, split_cfg: dict, chip_span: float,
                  out_dir: str | Path, provenance: dict) -> dict:
    """Gather tile shards ``[(chips.json, chips.zip), ...]`` into the archive at ``out_dir`` (atomically)."""
    from .datacard import write_datacard

    classes = {int(k): v for k, v in classes.items()}
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
    split_of = assign_splits(chips, chip_span, split_cfg["method"], split_cfg["block_chips"],
                             split_cfg.get("buffer_chips", 0), split_cfg["seed"], split_cfg["ratios"])
    buffered = len(chips) - len(split_of)
    chips = [c for c in chips if c["id"] in split_of]

    tmp = out_dir.parent / f".{out_dir.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise GosBuildError(f"{out_dir.parent}: cannot write the dataset here ({exc.strerror})") from None
    try:
        keep = set(split_of)
        for n, (_, zpath) in enumerate(shards, start=1):
            log.info("dataset: shard %d/%d %s", n, len(shards), zpath)
            with zipfile.ZipFile(zpath) as zf:
                for name in zf.namelist():
                    parts = name.split("/")
                    if len(parts) != 3 or ".." in parts or name.startswith("/"):
                        raise GosBuildError(f"{zpath}: unexpected entry '{name}'")
                    if parts[2][:-4] not in keep:
                        continue
                    dest = tmp / name
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    dest.write_bytes(zf.read(name))
        (tmp / "classes.txt").write_text(
            "".join(f"{cid}\t{c['name']}\t{c.get('name_zh', '')}\n" for cid, c in sorted(classes.items())),
            encoding="utf-8")
        lines = ["# chip_id label purity split x y"]
        lines += [f"{c['id']} {c['label']} {c['purity']:.4f} {split_of[c['id']]} {c['x']:.0f} {c['y']:.0f}" for c in chips]
        (tmp / "labels.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
        for s in SPLITS:
            (tmp / f"{s}.txt").write_text("".join(f"{c['id']}\n" for c in chips if split_of[c["id"]] == s),
                                          encoding="utf-8")
        stats = _stats(chips, split_of)
        (tmp / "stats.json").write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        counts = {cid: {s: 0 for s in SPLITS} for cid in classes}
        for c in chips:
            counts[c["label"]][split_of[c["id"]]] += 1
        summary = {"candidates": candidates, "partial_aoi": partial, "rejected": dict(sorted(rejected.items())),
                   "kept": len(chips) + buffered, "dropped_by_buffer": buffered, "in_dataset": len(chips),
                   "counts": {str(k): v for k, v in counts.items()}}
        write_datacard(tmp / "datacard.md", classes, summary, stats, provenance)
        files = sorted(p for p in tmp.rglob("*") if p.is_file())
        (tmp / "MANIFEST.sha256").write_text(
            "".join(f"{_sha256(p)}  {p.relative_to(tmp).as_posix()}\n" for p in files), encoding="utf-8")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for cid, c in sorted(classes.items()):
        log.info("dataset: class %d %s: %s", cid, c["name"], counts[cid])
    log.info("dataset: %d chips (%d candidates; rejected %s; %d dropped by the split buffer) -> %s",
             len(chips), candidates, dict(rejected), buffered, out_dir)
    return summary


def package(dataset: str | Path, dist: str | Path, aoi: str) -> list[Path]:
    """One zip per modality plus one of labels, splits and metadata; fixed timestamps, sorted entries."""
    from .io import atomic_path

    dataset, dist = Path(dataset), Path(dist)
    dist.mkdir(parents=True, exist_ok=True)
    groups = {m: sorted((dataset / m).rglob("*.tif")) for m in MODALITIES}
    groups["labels"] = [dataset / n for n in ("classes.txt", "labels.txt", "train.txt", "val.txt", "test.txt",
                                               "stats.json", "datacard.md", "MANIFEST.sha256")]
    written = []
    for name, files in groups.items():
        out = dist / f"{aoi}_{name}.zip"
        with atomic_path(out) as tmp:
            with zipfile.ZipFile(tmp, "w") as zf:
                for f in files:
                    info = zipfile.ZipInfo(f.relative_to(dataset).as_posix(), date_time=ZIP_DATE)
                    info.external_attr = 0o644 << 16
                    info.compress_type = zipfile.ZIP_STORED if f.suffix == ".tif" else zipfile.ZIP_DEFLATED
                    zf.writestr(info, f.read_bytes())
        written.append(out)
    log.info("package: %d archives in %s", len(written), dist)
    return written


def validate_dataset(dataset: str | Path, chip_size: int = 64) -> list[str]:
    """Every problem found in a dataset folder (empty list: it is consistent)."""
    import rasterio

    d = Path(dataset)
    problems: list[str] = []
    if not d.is_dir():
        return [f"{d}: not a folder"]
    manifest = d / "MANIFEST.sha256"
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
            elif _sha256(p) != digest:
                problems.append(f"{rel}: sha256 differs from MANIFEST.sha256")
        # Snakemake marks directory outputs with .snakemake_timestamp: not part of the dataset
        present = {p.relative_to(d).as_posix() for p in d.rglob("*") if p.is_file()} - {"MANIFEST.sha256",
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
        f = d / f"{s}.txt"
        if not f.exists():
            problems.append(f"{s}.txt is missing")
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
            rel = f"{m}/{classes[label]}/{cid}.tif"
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
    labelled = {c["id"] for c in chips}
    for cid in sorted(set(in_split) - labelled):
        problems.append(f"{cid}: in a split list but not in labels.txt")
    for p in sorted(d.glob("*/*/*.tif")):
        rel = p.relative_to(d).as_posix()
        if rel not in expected_files:
            problems.append(f"{rel}: no matching line in labels.txt (or in the wrong class folder)")
    return problems
