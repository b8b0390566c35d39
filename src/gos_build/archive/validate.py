"""``gos-build validate``: is a dataset folder consistent with its manifest, index files and chip geometry?

Every file is read once: its bytes give the sha256 the manifest must list and, for a chip GeoTIFF, the
directory that says its size, bounds and CRS (:func:`gos_build.gtiff.read_header`; GDAL opens only a
file that is not of the kind gos-build writes, and once per CRS to name it). One thread: with ~100 000
small files, threads only contend for Python's lock (measured: 9 s alone, 15 s with two).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections import defaultdict
from pathlib import Path

from ..errors import GosBuildError
from ..gtiff import NotAChip, band_metadata, read_header
from ..io import files_under, leads_out, links_out
from ..layout import (CLASS_ID, FOLDS_FILE, GOS10M, LABEL, SPLITS, band_descriptions, chip_path, dataset_layers,
                      has_tree, label_of, read_folds, read_index, split_file)
from .gather import MANIFEST_FILE
from ..splits import weak_data
from ..readers import PACKED, PARQUET, PARQUET_INDEX as INDEX_FILE, SHARD_RE, PackedReader, check_row_group
from .writers.parquet import shard_name
from .writers.stac import (LABEL_ASSET, LABEL_PROPERTY, PARQUET_COLUMN, PARQUET_ROW, SPLIT_NAMES, item_path,
                           label_path)

_WHOLE = 16 << 20  # files up to this size are read in one piece (chips are ~15 kB); larger ones in blocks
_SKIP = {MANIFEST_FILE, ".snakemake_timestamp"}  # Snakemake marks directory outputs: not part of the dataset
_HEX64 = re.compile(r"[0-9a-f]{64}")


class _Scope:
    """Whether a path (relative to the dataset) may be opened: inside the folder and not through a link that
    leads out -- path arithmetic only, since the walk gave every such link (``links``)."""

    def __init__(self, folder: Path, links: list[str]):
        self.folder, self.links = folder, links

    def __call__(self, rel: str) -> bool:
        return not leads_out(rel, self.links)


def _text(path: Path) -> tuple[str, str | None]:
    """(text, None) of a UTF-8 file, or (what could be decoded, the problem) when it is not UTF-8."""
    data = path.read_bytes()
    try:
        return data.decode("utf-8"), None
    except UnicodeDecodeError as exc:
        return data.decode("utf-8", errors="replace"), f"{path.name}: not UTF-8 text (byte {exc.start})"


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
    # links that lead out of the folder are findings and are never opened, nor anything through them
    out_links = links_out(d)
    problems += [f"{rel}: a symbolic link to outside the dataset folder (not opened)" for rel in out_links]

    reachable = _Scope(d, out_links)

    manifest = d / MANIFEST_FILE
    listed: dict[str, str] = {}
    have_manifest = manifest.is_file() and reachable(MANIFEST_FILE)
    if not have_manifest:
        problems.append("MANIFEST.sha256 is missing")
    else:
        text, problem = _text(manifest)
        if problem:
            problems.append(problem)
        for n, line in enumerate(text.splitlines(), start=1):
            digest, _, rel = line.partition("  ")
            if not _HEX64.fullmatch(digest) or not rel:
                problems.append(f"MANIFEST.sha256:{n}: not a '<sha256>  <path>' line")
            elif leads_out(rel, out_links):
                problems.append(f"MANIFEST.sha256:{n}: '{rel[:200]}' is outside the dataset folder (not opened)")
            else:
                listed[os.path.normpath(rel)] = digest
    try:
        index, chips = read_index(d)
    except GosBuildError as exc:
        index, chips, index_problem = {}, [], str(exc)
    else:
        index_problem = None
    classes = {cid: c["name"] for cid, c in index.items()}
    try:
        layers = dataset_layers(d)
    except GosBuildError as exc:
        problems.append(str(exc))
        layers = GOS10M
    # a dataset published without the tree (publish.forms) has no layer folder at all: its chips are in the
    # packed store or the Parquet shards, checked there
    tree = has_tree(d, layers)
    if not tree and not any((d / form).exists() for form in (PACKED, PARQUET)):
        problems.append("the chips are in no form: no layer folder of the tree, no packed/, no parquet/")
    expected = {chip_path(m, classes[c["class_id"]], c["id"]) for c in chips if c["class_id"] in classes
                for m in layers} if tree else set()

    # one read of every listed file and every expected chip: sha256 and, for chips, the header
    todo = sorted(set(listed) | expected)
    read = {rel: _read(d / rel, rel in expected) if reachable(rel) else (None, None) for rel in todo}
    for rel, digest in sorted(listed.items()):
        got = read[rel][0]
        if got is None and reachable(rel):
            problems.append(f"{rel}: listed in MANIFEST.sha256 but missing")
        elif got is not None and got != digest:
            problems.append(f"{rel}: sha256 differs from MANIFEST.sha256")
    present = set(files_under(d)) - _SKIP - set(out_links)
    if have_manifest:
        for rel in sorted(present - set(listed)):
            problems.append(f"{rel}: not listed in MANIFEST.sha256")
    if index_problem:
        return problems + [index_problem]

    in_split = defaultdict(list)
    for s in SPLITS:
        f = d / split_file(s)
        if not f.is_file() or not reachable(split_file(s)):
            problems.append(f"{split_file(s)} is missing")
            continue
        text, problem = _text(f)
        problems += [problem] if problem else []
        for cid in text.split():
            in_split[cid].append(s)
    geometry = _Geometry()
    declarations: dict = {}
    for chip in chips:
        cid, label, split = chip["id"], chip["class_id"], chip["split"]
        if label not in classes:
            problems.append(f"{cid}: label {label} is not in classes.txt")
            continue
        if in_split.get(cid, []) != [split]:
            problems.append(f"{cid}: in splits {in_split.get(cid, [])}, labels.txt says {split}")
        ref = None
        for m in layers if tree else ():
            rel = chip_path(m, classes[label], cid)
            digest, header = read[rel]
            if digest is None:
                problems.append(f"{rel}: missing")
                continue
            geo = geometry.of(d / rel, header)
            if isinstance(geo, str):
                problems.append(f"{rel}: {geo}")
                continue
            declared = _declared(layers[m], header, declarations)
            if declared:
                problems.append(f"{rel}: {declared}")
            if (geo[0], geo[1]) != (chip_size, chip_size):
                problems.append(f"{rel}: {geo[0]} x {geo[1]} px, expected {chip_size} x {chip_size}")
            if ref is None:
                ref = geo
            elif geo != ref:
                problems.append(f"{rel}: bounds or CRS differ from the chip's rgb layer")
    problems += _publication_problems(d, chips, classes, listed, reachable, layers)
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
    for rel in sorted(present, key=lambda r: r.split("/")):
        parts = rel.split("/")
        if len(parts) == 3 and parts[0] in layers and parts[2].endswith(".tif") and rel not in expected:
            problems.append(f"{rel}: no matching line in labels.txt (or in the wrong class folder)")
    return problems


def dataset_warnings(dataset: str | Path) -> list[str]:
    """What :func:`gos_build.splits.weak_data` says of a consistent dataset from its own files: a class without
    chips, one class only, a split or fold without chips or without one of the classes. (The block counts need
    the build's ``split.block_chips``: the build's log and datacard state them.)"""
    d = Path(dataset)
    index, chips = read_index(d)
    return weak_data({cid: c["name"] for cid, c in index.items()}, chips, fold_of=read_folds(d))


def _declared(layer, header, seen: dict) -> str | None:
    """What a chip GeoTIFF's directory declares against its layer's registry entry -- dtype, band count, and per
    band GDAL's description, unit type, scale and offset -- or None when it agrees (or the header is GDAL's to
    read). A file that declares no unit, scale or offset at all (a dataset written before gos-build declared
    them) is compared by its descriptions alone: it says nothing wrong. One answer per kind of header."""
    if header is None or isinstance(header, Exception):
        return None
    key = (layer.name, header.dtype, header.count, header.metadata)
    if key not in seen:
        want = [{"description": d, "unit": layer.units, "scale": layer.scale, "offset": layer.offset}
                for d in band_descriptions(layer)]
        try:
            got = band_metadata(header.metadata, header.count)
        except ValueError as exc:
            seen[key] = f"band metadata cannot be read ({exc})"
        else:
            if (header.dtype, header.count) != (layer.dtype, len(layer.bands)):
                seen[key] = (f"{header.count} band(s) of {header.dtype}, the layer has {len(layer.bands)} of "
                             f"{layer.dtype}")
            elif got != want and not _undeclared_units(got, want):
                bad = next(k for k in ("description", "unit", "scale", "offset") if any(
                    g[k] != w[k] for g, w in zip(got, want)))
                seen[key] = (f"band {bad} {[g[bad] for g in got]} in the GeoTIFF, the layer's is "
                             f"{[w[bad] for w in want]} (value x scale + offset in unit)")
            else:
                seen[key] = None
    return seen[key]


def _undeclared_units(got: list[dict], want: list[dict]) -> bool:
    """The descriptions as the layer's, and no unit, scale or offset declared in any band."""
    return all(g["description"] == w["description"] and (g["unit"], g["scale"], g["offset"]) == ("", 1.0, 0.0)
               for g, w in zip(got, want))


_UNREADABLE = (OSError, ValueError, KeyError, TypeError, IndexError, AttributeError, RuntimeError, GosBuildError)


def _publication_problems(d: Path, chips: list[dict], classes: dict, listed: dict, reachable, layers) -> list[str]:
    """The STAC items, the Croissant index, the Parquet shards and the packed store agree with labels.txt (and
    the manifest). Each form is read as a stranger's file: what cannot be read is a finding, not a crash."""
    out = []
    for form, check in (("stac", _stac_problems), ("stac-geoparquet", _stac_table_problems),
                        ("chips.csv", _csv_problems), ("croissant.json", _croissant_problems),
                        (PARQUET, _parquet_problems), ("packed", _packed_problems)):
        if not (d / form).exists():
            continue
        if not reachable(form):
            continue  # a link out: already a finding, never opened
        try:
            out += check(d, chips, classes, listed, reachable, layers)
        except _UNREADABLE as exc:
            out.append(f"{form}: cannot be read ({type(exc).__name__}: {str(exc)[:200]})")
    return out


def _json(d: Path, rel: str, reachable) -> tuple[object, str | None]:
    """(document, None) of a JSON file of the dataset, or (None, the problem)."""
    import json

    if not reachable(rel) or not (d / rel).is_file():
        return None, f"{rel}: missing"
    text, problem = _text(d / rel)
    if problem:
        return None, problem
    try:
        return json.loads(text), None
    except ValueError as exc:
        return None, f"{rel}: not JSON ({exc})"


def _item_problems(item: dict, chip: dict, classes: dict, listed: dict, reachable, folder: str, label: str,
                   where: str, rows: dict | None = None) -> list[str]:
    """A STAC Item of a chip against labels.txt and the manifest: its split and class, each asset the chip's
    file (hrefs relative to ``folder``, within the dataset: path arithmetic, nothing opened; the label asset
    ``label``), its checksum the manifest's -- or, in a dataset without the tree, the Parquet shard and row of
    the chip as the Parquet index has them (``rows``: chip id -> (shard, row))."""
    out = []
    props, assets = item["properties"], item["assets"]
    if props.get("ml-aoi:split") != SPLIT_NAMES[chip["split"]] or props.get("gos_build:class_id") != chip["class_id"]:
        out.append(f"{where}: split or class differ from labels.txt")
    for key, asset in assets.items():
        href = asset["href"]
        rel = os.path.normpath(os.path.join(folder, href)).replace(os.sep, "/") \
            if isinstance(href, str) and reachable(os.path.join(folder, href)) else None
        in_shard = key != LABEL_ASSET and PARQUET_COLUMN in asset
        if in_shard:  # (shard, row) of the chip, the layer's column
            want = (rows or {}).get(chip["id"], ("the Parquet index's shard", None))[0]
            if asset.get(PARQUET_COLUMN) != key or asset.get(PARQUET_ROW) != (rows or {}).get(chip["id"], (0, -1))[1]:
                out.append(f"{where}: asset {key}: row or column differ from {INDEX_FILE}")
        else:
            want = label if key == LABEL_ASSET else chip_path(key, classes.get(chip["class_id"], "?"), chip["id"])
        if rel is None:
            out.append(f"{where}: asset {key} href {str(href)[:200]!r} leads outside the dataset (not opened)")
        elif rel != want:
            out.append(f"{where}: asset {key} points to {rel}")
        elif listed and not in_shard and asset.get("file:checksum") != "1220" + listed.get(rel, ""):
            out.append(f"{where}: asset {key}: file:checksum differs from MANIFEST.sha256")
    return out


def _chip_bytes_problem(data, layer, chip_size: int = 64) -> str | None:
    """What is wrong with a chip GeoTIFF held as bytes (a Parquet cell): not a GeoTIFF, not chip_size square,
    not the layer's bands and data type; None when it is one."""
    from ..gtiff import read_array

    if not isinstance(data, bytes):
        return "no bytes"
    try:
        arr = read_array(data)
    except NotAChip as exc:
        return f"not a chip GeoTIFF ({exc})"
    if arr.shape != (len(layer.bands), chip_size, chip_size) or str(arr.dtype) != layer.dtype:
        return f"{arr.dtype} {arr.shape}, expected {layer.dtype} {(len(layer.bands), chip_size, chip_size)}"
    return None


def _index_rows(d: Path, reachable) -> dict:
    """Chip id -> (shard, row) of the Parquet index, where a dataset without the tree points its STAC assets
    (empty when there is no readable index: the items' assets are then findings)."""
    import pyarrow.parquet as pq

    if not (d / INDEX_FILE).is_file() or not reachable(INDEX_FILE):
        return {}
    try:
        table = pq.read_table(d / INDEX_FILE, columns=["chip_id", "parquet_file", "parquet_row"]).to_pylist()
    except _UNREADABLE:
        return {}
    return {r["chip_id"]: (r["parquet_file"], r["parquet_row"]) for r in table}


def _stac_table_problems(d: Path, chips, classes, listed, reachable, layers) -> list[str]:
    """The STAC Items of ``stac-geoparquet/items.parquet``: one a chip of labels.txt, with its split and class,
    its assets the chip's tree files (hrefs from the table's folder; checksums as the manifest's) and the
    shared label file; the labels file's rows as labels.txt."""
    import pyarrow.parquet as pq
    import stac_geoparquet.arrow

    from .writers.stac_table import ITEMS_FILE, LABELS_FILE, NAME

    out, by_id, seen = [], {c["id"]: c for c in chips}, set()
    where = f"{NAME}/{ITEMS_FILE}"
    labels = f"{NAME}/{LABELS_FILE}"
    for rel in (where, labels, f"{NAME}/collection.json"):
        if not (d / rel).is_file() or not reachable(rel):
            return out + [f"{rel}: missing (the stac-geoparquet form is there)"]
    table = pq.ParquetFile(d / labels).read(columns=["chip_id", LABEL_PROPERTY, CLASS_ID, "split"]).to_pylist()
    if {r["chip_id"]: (r[LABEL_PROPERTY], r[CLASS_ID], r["split"]) for r in table} != \
            {c["id"]: (classes.get(c["class_id"]), c["class_id"], c["split"]) for c in chips}:
        out.append(f"{labels}: chips, classes or splits differ from labels.txt")
    f = pq.ParquetFile(d / where)
    rows = _index_rows(d, reachable)
    for batch in f.iter_batches(batch_size=1024):
        for item in stac_geoparquet.arrow.stac_table_to_items(batch):
            cid = item["id"]
            chip = by_id.get(cid)
            if chip is None or cid in seen:
                out.append(f"{where}: item {str(cid)[:40]} is {'twice' if cid in seen else 'not in labels.txt'}")
                continue
            seen.add(cid)
            out += _item_problems(item, chip, classes, listed, reachable, NAME, labels, f"{where}: {cid}", rows)
    missing = sorted(set(by_id) - seen)
    if missing:
        out.append(f"{where}: no item for {len(missing)} chip(s) of labels.txt (first: {missing[0]})")
    return out


def _stac_problems(d: Path, chips, classes, listed, reachable, layers) -> list[str]:
    out = []
    rows = _index_rows(d, reachable)
    for chip in sorted(chips, key=lambda c: c["id"]):
        cid = chip["id"]
        where = item_path(cid)
        item, problem = _json(d, where, reachable)
        if problem:
            out.append(problem)
            continue
        try:
            out += _item_problems(item, chip, classes, listed, reachable, f"stac/{cid}", label_path(cid), where, rows)
            for link in item.get("links", []):
                href = link.get("href")
                if not isinstance(href, str) or not reachable(os.path.join("stac", cid, href)):
                    out.append(f"{where}: link {link.get('rel')} href {str(href)[:200]!r} leads outside the dataset")
        except (KeyError, TypeError, AttributeError) as exc:
            out.append(f"{where}: not a STAC item of this dataset ({type(exc).__name__}: {str(exc)[:100]})")
            continue
        doc, problem = _json(d, label_path(cid), reachable)
        try:
            if problem or doc["features"][0]["properties"][LABEL_PROPERTY] != classes.get(chip["class_id"]):
                out.append(problem or f"{label_path(cid)}: class differs from labels.txt")
        except (KeyError, TypeError, IndexError):
            out.append(f"{label_path(cid)}: not the label of one chip")
    collection, problem = _json(d, "stac/collection.json", reachable)
    if problem:
        return out + [problem]
    for link in collection.get("links", []) if isinstance(collection, dict) else []:
        href = link.get("href") if isinstance(link, dict) else None
        if not isinstance(href, str) or not reachable(os.path.join("stac", href)):
            out.append(f"stac/collection.json: link href {str(href)[:200]!r} leads outside the dataset (not followed)")
    return out


def _csv_problems(d: Path, chips, classes, listed, reachable, layers) -> list[str]:
    import csv

    text, problem = _text(d / "chips.csv")
    if problem:
        return [problem]
    rows = {r.get("chip_id"): r for r in csv.DictReader(text.splitlines())}
    by_id = {c["id"]: c for c in chips}
    out = []
    label = label_of(classes)

    def same(row: dict, chip: dict) -> bool:
        return row.get(LABEL) == str(label.get(chip["class_id"])) and row.get(CLASS_ID) == str(chip["class_id"]) \
            and row.get("split") == chip["split"]

    if set(rows) != set(by_id) or not all(same(rows[c], by_id[c]) for c in by_id if c in rows):
        out.append("chips.csv: ids, labels, class ids or splits differ from labels.txt")
    for cid, chip in sorted(by_id.items()):
        row = rows.get(cid) or {}
        bad = [m for m in layers if row and row.get(f"{m}_path") != chip_path(m, classes.get(chip["class_id"], "?"), cid)]
        if bad:
            out.append(f"chips.csv: {cid}: {', '.join(bad)} path(s) are not the chip's files in the tree")
    return out


def _croissant_problems(d: Path, chips, classes, listed, reachable, layers) -> list[str]:
    """Every ``contentUrl`` names a file inside the dataset, every FileSet pattern stays inside it."""
    doc, problem = _json(d, "croissant.json", reachable)
    if problem:
        return [problem]
    out = []
    for entry in doc.get("distribution", []) if isinstance(doc, dict) else []:
        if not isinstance(entry, dict):
            out.append("croissant.json: a distribution entry is not an object")
            continue
        url, pattern = entry.get("contentUrl"), entry.get("includes")
        if url is not None and (not isinstance(url, str) or not reachable(url)):
            out.append(f"croissant.json: contentUrl {str(url)[:200]!r} leads outside the dataset (not opened)")
        if pattern is not None and (not isinstance(pattern, str) or not reachable(pattern)):
            out.append(f"croissant.json: includes {str(pattern)[:200]!r} leads outside the dataset")
    return out


def _packed_problems(d: Path, chips, classes, listed, reachable, layers) -> list[str]:
    store, out = PackedReader(d, links=reachable.links), []
    class_of = {c["id"]: c["class_id"] for c in chips}
    label = label_of(classes)
    for s in SPLITS:
        want = sorted(c["id"] for c in chips if c["split"] == s)
        try:
            ids = [str(v) for v in store.column(s, "chip_id", len(want))]
            if ids != want:
                out.append(f"packed/{s}: chip ids differ from {split_file(s)}")
            elif [int(v) for v in store.column(s, CLASS_ID, len(want))] != [class_of[c] for c in ids]:
                out.append(f"packed/{s}: class ids differ from labels.txt")
            elif [int(v) for v in store.column(s, LABEL, len(want))] != [label.get(class_of[c]) for c in ids]:
                out.append(f"packed/{s}: labels differ from labels.txt's class ids (label: the class index 0..K-1)")
            for m in layers:
                store.meta(s, m, len(want))
        except GosBuildError as exc:
            out.append(str(exc))
    return out


def _parquet_problems(d: Path, chips: list[dict], classes: dict, listed: dict, reachable, layers) -> list[str]:
    """Every shard row is a chip of labels.txt with its split and class, each layer's bytes hash to the tree
    file's sha256 in the manifest, every chip is in one row, and the index points at the right rows."""
    import hashlib

    import pyarrow.parquet as pq
    from pyarrow import ArrowException

    unreadable = (OSError, ValueError, KeyError, TypeError, ArrowException, GosBuildError)  # a bad file's errors
    out = []
    by_id = {c["id"]: c for c in chips}
    with_tree = has_tree(d, layers)
    seen: dict[str, str] = {}
    index_of = label_of(classes)  # the ClassLabel index of a class id
    for name in sorted(os.listdir(d / PARQUET)):
        rel = f"{PARQUET}/{name}"
        if rel == INDEX_FILE or not name.endswith(".parquet") or not reachable(rel):
            continue
        m = SHARD_RE.fullmatch(rel)
        if not m or rel != shard_name(m["split"], int(m["k"]), int(m["n"])):
            out.append(f"{rel}: not a shard name of this dataset")
            continue
        try:
            shard = pq.ParquetFile(d / rel)
            columns = ["chip_id", CLASS_ID, LABEL, "split", *layers]
            for group in range(shard.num_row_groups):
                check_row_group(shard, group, rel)
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
                            row[CLASS_ID] != chip["class_id"] or index_of.get(chip["class_id"]) != row[LABEL]:
                        out.append(f"{rel}: chip {cid}: split or class differ from labels.txt")
                        continue
                    for layer in layers:
                        tree = chip_path(layer, classes[chip["class_id"]], cid)
                        data = row[layer]
                        if with_tree:  # the tree's file: the same bytes
                            if data is None or hashlib.sha256(data).hexdigest() != listed.get(tree):
                                out.append(f"{rel}: chip {cid}: {layer} bytes differ from {tree} in MANIFEST.sha256")
                        else:  # no tree: a chip GeoTIFF of the layer, by its own header
                            problem = _chip_bytes_problem(data, layers[layer])
                            if problem:
                                out.append(f"{rel}: chip {cid}: {layer}: {problem}")
        except unreadable as exc:  # a damaged shard is a finding
            out.append(f"{rel}: not a readable Parquet shard ({type(exc).__name__}: {str(exc)[:200]})")
    missing = sorted(set(by_id) - set(seen))
    if missing:
        out.append(f"{PARQUET}/: {len(missing)} chip(s) of labels.txt in no shard (first: {missing[0]})")
    if not reachable(INDEX_FILE) or not (d / INDEX_FILE).is_file():
        return out + [f"{INDEX_FILE}: missing"]
    try:
        index = pq.read_table(d / INDEX_FILE, columns=["chip_id", "parquet_file", "parquet_row"]).to_pylist()
    except unreadable as exc:
        return out + [f"{INDEX_FILE}: not a readable Parquet file ({type(exc).__name__}: {str(exc)[:200]})"]
    rows: dict[str, list] = {}
    for r in index:
        rows.setdefault(r["parquet_file"], []).append(r)
    for rel, entries in sorted(rows.items(), key=lambda kv: str(kv[0])):
        if not isinstance(rel, str) or not SHARD_RE.fullmatch(rel):
            out.append(f"{INDEX_FILE}: parquet_file {rel!r} is not a shard of this dataset")
            continue
        if not reachable(rel):
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
