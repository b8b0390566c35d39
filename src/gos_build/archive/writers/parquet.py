"""Parquet, the form ML hubs read: ``dataset/parquet/`` and the dataset card ``dataset/README.md``.

* ``parquet/<split>-NNNNN-of-MMMMM.parquet`` (split as in ``labels.txt``: train, val, test): one row per
  chip, in the order of ``labels.txt``, shards of at most :data:`SHARD_BYTES`, row groups of
  :data:`ROW_GROUP_CHIPS` chips (a random read decodes one small group, not a shard). Columns:
  ``chip_id``; ``label`` and ``class_id`` as in every form (:data:`gos_build.layout.LABEL`: the class's
  index 0..K-1, the ``ClassLabel``; :data:`gos_build.layout.CLASS_ID`: ``classes.txt``'s id), ``class_name``; ``split``; ``fold`` (with ``split.folds``); ``x``,
  ``y`` (south-west corner, grid CRS, m); ``crs``; ``lon``, ``lat`` (centre, WGS84); ``purity`` and
  ``boundary_m`` (distance to the nearest class boundary, m) as in ``labels.txt``; ``thumbnail`` (a PNG of the chip's RGB under the dataset's one stretch,
  :func:`gos_build.layout.rgb_stretch`, as the Hugging Face ``Image`` struct); and one binary column per
  layer holding that chip's GeoTIFF, the tree file's bytes exactly (same sha256).
* ``parquet/chips.parquet``: a GeoParquet 1.1 index, one row per chip with its footprint (WKB polygon,
  lon/lat, OGC:CRS84), ``label``, ``class_id``, ``class_name``, ``split`` and ``parquet_file``/``parquet_row`` (where its bytes are).
* ``README.md``: the Hugging Face dataset card: a YAML header (``configs`` with the data files of each
  split, ``dataset_info.features`` with the ``ClassLabel`` names, licence, tags) above the datacard, so
  that ``datasets.load_dataset(<dataset folder>)`` and the Hub's viewer read the shards.

The shards and the index go into ``dist/<aoi>_parquet.zip`` stored, not deflated (their GeoTIFFs and PNGs
are compressed already), so that the downloads unzipped together are the dataset; the Hub takes the shards as
they are. pyarrow writes everything (deterministic: no timestamps; same rows, same bytes).
"""

from __future__ import annotations

import io
import json
import logging
import os
from pathlib import Path

import numpy as np

from ...grid import chip_footprints_lonlat
from ...gtiff import read_array
from ...layout import SPLITS, chip_path, label_of, rgb_stretch
from ...parallel import ordered
from ...readers import PARQUET as NAME
from ...readers import PARQUET_INDEX as INDEX_FILE

log = logging.getLogger(__name__)

CARD_FILE = "README.md"
SHARD_BYTES = 500 << 20  # at most this much chip data (GeoTIFFs + thumbnails) in one shard
ROW_GROUP_CHIPS = 4  # chips per row group: 88 % of one chip a group's random-read speed, 1/4 of its footer (RESULTS.md)
HF_SPLITS = {"train": "train", "val": "validation", "test": "test"}  # the Hub's split names
LICENSE = "cc-by-4.0"


def shard_name(split: str, k: int, n: int) -> str:
    """``parquet/<split>-NNNNN-of-MMMMM.parquet``: shard ``k`` (0-based) of ``n``."""
    return f"{NAME}/{split}-{k:05d}-of-{n:05d}.parquet"


def shard_row(split: str, i: int, cut: dict) -> tuple[str, int]:
    """(shard, row) holding chip ``i`` (0-based, the dataset's order) of ``split``, under the plan's ``cut``
    (:func:`gos_build.archive.plan.parquet_cut`)."""
    per = cut[split]["per"]
    return shard_name(split, i // per, cut[split]["shards"]), i % per


def rows_of(chips, cut: dict, first: dict | None = None):
    """(shard, row) of each of ``chips`` (the dataset's order; ``first``: the index in its split of the first
    chip of each split, 0 by default), one shard name shared by its rows."""
    count = dict(first or {s: 0 for s in SPLITS})
    names: dict = {}
    for c in chips:
        s = c["split"]
        name, row = shard_row(s, count[s], cut)
        count[s] += 1
        yield names.setdefault(name, name), row


def _schema(with_folds: bool, class_names: list[str], layers: tuple[str, ...]):
    import pyarrow as pa

    fields = [("chip_id", pa.string()), ("label", pa.int64()), ("class_id", pa.int64()),
              ("class_name", pa.string()), ("split", pa.string())]
    fields += [("fold", pa.int64())] if with_folds else []
    fields += [("x", pa.float64()), ("y", pa.float64()), ("crs", pa.string()), ("lon", pa.float64()),
               ("lat", pa.float64()), ("purity", pa.float64()), ("boundary_m", pa.float64()),
               ("thumbnail", pa.struct([("bytes", pa.binary()), ("path", pa.string())]))]
    fields += [(m, pa.binary()) for m in layers]
    hf = {"info": {"features": {name: _hf_feature(name, class_names, layers) for name, _ in fields}}}
    return pa.schema(fields, metadata={"huggingface": json.dumps(hf, ensure_ascii=False)})


def _hf_feature(name: str, class_names: list[str], layers: tuple[str, ...]) -> dict:
    """A column as the ``datasets`` library's features JSON names it."""
    if name == "label":
        return {"names": class_names, "_type": "ClassLabel"}
    if name == "thumbnail":
        return {"_type": "Image"}
    dtype = {"chip_id": "string", "class_name": "string", "split": "string", "crs": "string", "class_id": "int64",
             "fold": "int64"}.get(name, "binary" if name in layers else "float64")
    return {"dtype": dtype, "_type": "Value"}


def stretch_table(lo, hi) -> np.ndarray:
    """The 8-bit value of every uint16 reflectance under the stretch ``lo``..``hi``, per band: (3, 65536) uint8,
    ``round(clip((v - lo) / (hi - lo), 0, 1) * 255)`` -- a thumbnail is then three table look-ups."""
    v = np.arange(65536, dtype=np.float64)
    lo = np.asarray(lo, dtype=np.float64).reshape(3, 1)
    hi = np.asarray(hi, dtype=np.float64).reshape(3, 1)
    return np.clip((v - lo) / np.maximum(hi - lo, 1) * 255 + 0.5, 0, 255).astype(np.uint8)


def thumbnail(rgb: np.ndarray, table: np.ndarray) -> bytes:
    """A PNG (8-bit RGB) of a chip's ``rgb`` (3, H, W) uint16 through :func:`stretch_table`'s ``table``."""
    from PIL import Image

    scaled = np.stack([table[b][rgb[b]] for b in range(3)], axis=-1)
    buf = io.BytesIO()
    # zlib level 1: a third of the default's time for a few per cent more bytes (64 x 64 px)
    Image.fromarray(scaled, "RGB").save(buf, format="PNG", compress_level=1)
    return buf.getvalue()


def place(chips: list[dict], dest: Path, context: dict) -> None:
    """Write the shards under ``dest/parquet`` the plan gives the group (it cuts each split into shards by the
    chips' bytes and gives each to a group holding some of its chips: :func:`gos_build.archive.plan.
    shard_writers`), reading the chips' GeoTIFFs from their tiles' shards."""
    part = context["part"]
    classes = context["classes"]
    crs = context["crs"]
    span = context["chip_size"] * context["resolution"]
    folds = context.get("folds") or {}
    with_folds = bool((context["config"].get("split") or {}).get("folds"))
    index_of = label_of(classes)
    class_names = [classes[c]["name"] for c in sorted(classes)]
    stretch = rgb_stretch(context["stats"])
    layers = context["layers"].names
    tasks = []
    for split in SPLITS:
        per, n_shards = part["parquet"][split]["per"], part["parquet"][split]["shards"]
        run, offset = part["runs"][split], part["offset"][split]  # the chips the group reads, from this one on
        owned = [k for k, writer in enumerate(part["parquet"][split]["writers"]) if writer == part["group"]]
        for k in owned:  # (an empty split's one shard: the schema alone)
            rows = [{"chip_id": c["id"], "label": index_of[c["class_id"]], "class_id": c["class_id"],
                     "class_name": classes[c["class_id"]]["name"], "split": split, "fold": folds.get(c["id"]),
                     "x": float(c["x"]), "y": float(c["y"]), "purity": round(c["purity"], 4),
                     "boundary_m": c.get("boundary_m"), "src": part["shard_of"][c["tile"]]}
                    for c in run[k * per - offset : (k + 1) * per - offset]]
            tasks.append((str(dest), shard_name(split, k, n_shards), rows, crs, span, with_folds, class_names,
                          stretch, layers))
    if tasks:
        (dest / NAME).mkdir(parents=True, exist_ok=True)
    for _ in ordered(context["pool"], _write_shard, tasks):
        pass
    log.info("parquet: %d shards -> %s", len(tasks), dest / NAME)


def finish(chips: list[dict], dest: Path, context: dict, notes: list) -> None:
    """Write the GeoParquet index ``dest/parquet/chips.parquet``: every chip's footprint (as the STAC items have
    it) and the shard and row that hold its bytes, from the plan's cut."""
    import pyarrow as pa

    classes = context["classes"]
    index_of = label_of(classes)
    cut = context["parquet"]
    (dest / NAME).mkdir(parents=True, exist_ok=True)
    files, rows = [], []
    for name, row in rows_of(chips, cut):
        files.append(name)
        rows.append(row)
    def columns(at, part):
        return {
            "chip_id": pa.array([c["id"] for c in part], pa.string()),
            "label": pa.array([index_of[c["class_id"]] for c in part], pa.int64()),
            "class_id": pa.array([c["class_id"] for c in part], pa.int64()),
            "class_name": pa.array([classes[c["class_id"]]["name"] for c in part], pa.string()),
            "split": pa.array([c["split"] for c in part], pa.string()),
            "parquet_file": pa.array(files[at : at + len(part)], pa.string()),
            "parquet_row": pa.array(rows[at : at + len(part)], pa.int64())}

    write_footprints(dest / INDEX_FILE, chips, context["crs"], context["chip_size"] * context["resolution"], columns)
    log.info("parquet: index of %d chips -> %s", len(chips), dest / INDEX_FILE)


def write_footprints(path: Path, chips: list[dict], crs: str, span: float, columns) -> None:
    """A GeoParquet 1.1 table of chips: ``columns(start, part)`` (pyarrow arrays, one value a chip of ``part``,
    the slice of ``chips`` from ``start``), then ``geometry``, each chip's footprint (``span`` m square in the grid CRS ``crs``) as WKB
    in lon/lat -- no crs: OGC:CRS84, the default -- with its bbox in the ``geo`` metadata; Zstandard; row groups
    of :data:`INDEX_ROW_GROUP` chips. Made :data:`FOOTPRINT_STEP` chips at a time: a province's index is never
    whole in memory as Python objects, only its WKB."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import shapely

    data, sizes, lo, hi = bytearray(), [], [np.inf, np.inf], [-np.inf, -np.inf]
    for start in range(0, len(chips), FOOTPRINT_STEP):
        part = chips[start : start + FOOTPRINT_STEP]
        rings, _ = chip_footprints_lonlat(crs, [(c["x"], c["y"]) for c in part], span)
        polygons = shapely.polygons(rings)
        wkb = shapely.to_wkb(polygons, byte_order=1)
        data += b"".join(wkb)  # the column's bytes, one buffer (a binary array's values, end to end)
        sizes.append(np.fromiter(map(len, wkb), dtype=np.int64, count=len(wkb)))
        x0, y0, x1, y1 = shapely.total_bounds(polygons)
        lo, hi = [min(lo[0], x0), min(lo[1], y0)], [max(hi[0], x1), max(hi[1], y1)]
    offsets = np.concatenate([[0], *sizes]).cumsum().astype(np.int32)
    geometry = pa.Array.from_buffers(pa.binary(), len(chips), [None, pa.py_buffer(offsets), pa.py_buffer(data)])
    bbox = [float(lo[0]), float(lo[1]), float(hi[0]), float(hi[1])] if chips else []
    geo = {"version": "1.1.0", "primary_column": "geometry",
           "columns": {"geometry": {"encoding": "WKB", "geometry_types": ["Polygon"], "bbox": bbox}}}
    writer = None
    for start in range(0, max(len(chips), 1), INDEX_ROW_GROUP):
        part = chips[start : start + INDEX_ROW_GROUP]
        table = pa.table({**columns(start, part), "geometry": geometry.slice(start, len(part))})
        if writer is None:
            writer = pq.ParquetWriter(path, table.schema.with_metadata({"geo": json.dumps(geo)}), compression="zstd")
        writer.write_table(table.replace_schema_metadata({"geo": json.dumps(geo)}), row_group_size=INDEX_ROW_GROUP)
    writer.close()


# chips a row group of a GeoParquet index: one group below it (the bytes pq.write_table wrote: the demo, the scale
# AOI); a province's last job holds one group at a time
INDEX_ROW_GROUP = 16_384
FOOTPRINT_STEP = 8192


def _write_shard(task) -> None:
    """Write one shard, a row group at a time (memory: one group of chips)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    dest, name, rows, crs, span, with_folds, class_names, stretch, layer_names = task
    schema = _schema(with_folds, class_names, layer_names)
    _, centres = chip_footprints_lonlat(crs, [(r["x"], r["y"]) for r in rows], span)
    table = stretch_table(*stretch)
    binary = ["thumbnail", *layer_names]
    codecs = {f.name: ("none" if f.name in binary else "zstd") for f in schema}  # GeoTIFFs, PNGs: compressed
    with pq.ParquetWriter(os.path.join(dest, name), schema, compression=codecs, write_statistics=False) as out:
        for start in range(0, len(rows), ROW_GROUP_CHIPS):  # an empty split: a file of the schema alone
            group = rows[start : start + ROW_GROUP_CHIPS]
            cols = {k: [r[k] for r in group] for k in ("chip_id", "label", "class_id", "class_name", "split",
                                                       "fold", "x", "y", "purity", "boundary_m")}
            cols["crs"] = [crs] * len(group)
            cols["lon"] = [c[0] for c in centres[start : start + len(group)]]
            cols["lat"] = [c[1] for c in centres[start : start + len(group)]]
            layers = {m: [] for m in layer_names}
            thumbs = []
            for r in group:
                for m in layer_names:  # from the tile's shard: the tree's file, the same bytes
                    with open(os.path.join(r["src"], chip_path(m, r["class_name"], r["chip_id"])), "rb") as f:
                        layers[m].append(f.read())
                thumbs.append({"bytes": thumbnail(read_array(layers["rgb"][-1]), table),
                               "path": f"{r['chip_id']}.png"})
            cols["thumbnail"] = thumbs
            cols.update(layers)
            out.write_table(pa.Table.from_pydict({f.name: cols[f.name] for f in schema}, schema=schema))


def card_header(context: dict) -> str:
    """The Hugging Face YAML header of ``README.md`` (between ``---`` lines)."""
    import yaml

    classes = context["classes"]
    names = [classes[c]["name"] for c in sorted(classes)]
    name = context.get("config", {}).get("aoi", {}).get("name", "dataset")
    layers = context["layers"].names
    features = [{"name": f.name, "dtype": _card_dtype(f.name, names, layers)} for f in
                _schema(bool(context.get("folds")), names, layers)]
    header = {
        "license": LICENSE,
        "pretty_name": f"gos-build {name}: geomorphology scene classification chips",
        "task_categories": ["image-classification"],
        "tags": ["geomorphology", "remote-sensing", "earth-observation", "sentinel-2", "dem", "geotiff",
                 "gos10m"],
        "configs": [{"config_name": "default", "data_files": [
            {"split": HF_SPLITS[s], "path": f"{NAME}/{s}-*.parquet"} for s in SPLITS]}],
        "dataset_info": {"features": features},
    }
    return "---\n" + yaml.safe_dump(header, sort_keys=False, allow_unicode=True) + "---\n\n"


def _card_dtype(name: str, class_names: list[str], layers: tuple[str, ...]):
    if name == "label":
        return {"class_label": {"names": {str(i): n for i, n in enumerate(class_names)}}}
    if name == "thumbnail":
        return "image"
    return _hf_feature(name, class_names, layers)["dtype"]


def after_datacard(dest: Path, context: dict, datacard: str) -> None:
    """Write ``README.md``: the Hub's YAML header, then the datacard."""
    (dest / CARD_FILE).write_text(card_header(context) + datacard, encoding="utf-8")
