"""Chips: co-registered 64 x 64 cells of the chip lattice, labelled and filtered, one shard per tile.

A *candidate* is a chip-lattice cell -- origins every ``stride`` pixels from
the global lattice origin -- whose top-left pixel lies in the tile and whose
64 x 64 footprint lies fully inside the AOI (cells that only partly overlap
the AOI are counted as ``partial_aoi`` and are not candidates).

Each candidate is kept or rejected by the first failing test, in this order:

1. ``unlabelled``: no labelled pixel;
2. ``purity``: share of the majority class < ``chips.min_purity`` (unlabelled
   pixels count against purity); the majority class is the scene label;
3. ``nodata``: in some layer, the nodata share > ``chips.max_nodata``;
4. ``cloud``: the share of pixels the Sentinel-2 stage marked invalid
   (cloud, shadow, cirrus) > ``chips.max_cloud``.

Chip ids are the south-west corner of the chip in the grid CRS, metres
(``E0500480N4880000``), so overlapping AOIs give the same ids and bytes.

The shard (``chips.zip``) holds ``<modality>/<class>/<chip_id>.tif`` for the
kept chips, GeoTIFFs with fixed bytes, stored in sorted order with a fixed
timestamp; ``chips.json`` holds one record per kept chip (label, purity,
corner, per-layer sums for the dataset statistics), the rejection counts and
the south-west corner and reason of every rejected candidate.
"""

from __future__ import annotations

import json
import logging
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import rasterio
import shapely
from rasterio.windows import Window

from .errors import GosBuildError
from .grid import Grid, lattice_id
from .io import atomic_path, atomic_write_text, geotiff_bytes
from .terrain import NODATA, TILE_BANDS

log = logging.getLogger(__name__)

MODALITIES = ("rgb",) + TILE_BANDS  # rgb dem hillshade slope mean std northness eastness dev
REJECTIONS = ("unlabelled", "purity", "nodata", "cloud")
ZIP_DATE = (1980, 1, 1, 0, 0, 0)
# tile layer files: name -> (file in tiles/<tile>/, bands)
TILE_FILES = {"labels": "labels.tif", "valid": "valid.tif", "rgb": "rgb.tif", "terrain": "terrain.tif"}


def read_grid_window(grid: Grid, tile_dirs: dict[str, Path], name: str, window: Window, fill) -> np.ndarray:
    """Read ``window`` of the grid from the per-tile files ``tiles/<tile>/<name>`` (crossing tiles if needed)."""
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    out = None
    for t in grid.tiles():
        rr0, cc0 = max(r0, t.row_off), max(c0, t.col_off)
        rr1, cc1 = min(r0 + h, t.row_off + t.height), min(c0 + w, t.col_off + t.width)
        if rr1 <= rr0 or cc1 <= cc0:
            continue
        if t.id not in tile_dirs:
            raise GosBuildError(f"chips: tile {t.id} is needed for this window but was not given")
        with rasterio.open(Path(tile_dirs[t.id]) / TILE_FILES[name]) as ds:
            part = ds.read(window=Window(cc0 - t.col_off, rr0 - t.row_off, cc1 - cc0, rr1 - rr0))
        if out is None:
            out = np.full((part.shape[0], h, w), fill, dtype=part.dtype)
        out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part
    if out is None:
        raise GosBuildError(f"chips: window {window} lies outside every tile")
    return out


def candidates(grid: Grid, tile_id: str, stride: int) -> tuple[list[tuple[int, int]], int]:
    """(row, col) grid pixel of each candidate chip's top-left corner, and the partial-AOI count."""
    tile = grid.tile(tile_id)
    size = grid.chip_size
    # lattice origins every `stride` px, counted from the global CRS origin
    x0_px = round(grid.x_min / grid.resolution)
    y1_px = round(grid.y_max / grid.resolution)
    first_col = tile.col_off + (-(x0_px + tile.col_off)) % stride
    first_row = tile.row_off + ((y1_px - tile.row_off) % stride)
    aoi = grid.aoi
    shapely.prepare(aoi)
    out, partial = [], 0
    for r in range(first_row, tile.row_off + tile.height, stride):
        for c in range(first_col, tile.col_off + tile.width, stride):
            if r + size > grid.height or c + size > grid.width:
                partial += 1
                continue
            x = grid.x_min + c * grid.resolution
            y = grid.y_max - r * grid.resolution
            cell = shapely.box(x, y - size * grid.resolution, x + size * grid.resolution, y)
            if aoi.contains(cell):
                out.append((r, c))
            elif aoi.intersects(cell):
                partial += 1
    return out, partial


def judge(labels: np.ndarray, valid: np.ndarray, rgb: np.ndarray, terrain: np.ndarray, min_purity: float,
          max_nodata: float, max_cloud: float) -> tuple[str | None, int, float, dict]:
    """(rejection reason or None, label, purity, shares) of one chip's arrays."""
    n = labels.size
    counts = np.bincount(labels.ravel(), minlength=256)
    counts[0] = 0
    if counts.sum() == 0:
        return "unlabelled", 0, 0.0, {}
    label = int(np.argmax(counts))  # ties: the smaller class id
    purity = counts[label] / n
    nodata = [float((rgb[0] == 0).mean())] + [float((terrain[i] == NODATA).mean()) for i in range(terrain.shape[0])]
    has_data = rgb[0] != 0
    cloud = float((has_data & (valid == 0)).sum() / n)
    shares = {"nodata": max(nodata), "cloud": cloud}
    if purity < min_purity:
        return "purity", label, purity, shares
    if max(nodata) > max_nodata:
        return "nodata", label, purity, shares
    if cloud > max_cloud:
        return "cloud", label, purity, shares
    return None, label, purity, shares


def _band_sums(band: np.ndarray, nodata) -> dict:
    """Count, sum, sum of squares, min and max of a band's valid pixels (for dataset statistics)."""
    a = band.astype(np.float64)
    ok = a != nodata
    if not ok.any():
        return {"n": 0, "sum": 0.0, "sumsq": 0.0, "min": None, "max": None}
    v = a[ok]
    return {"n": int(v.size), "sum": float(v.sum()), "sumsq": float((v * v).sum()), "min": float(v.min()),
            "max": float(v.max())}


def chips_tile(grid: Grid, tile_id: str, tile_dirs: dict[str, Path], classes: dict, stride: int,
               min_purity: float, max_nodata: float, max_cloud: float, out_zip: str | Path,
               out_json: str | Path) -> dict:
    """Judge every candidate of one tile and write its shard (zip of chip GeoTIFFs) and record (JSON)."""
    classes = {int(k): v for k, v in classes.items()}
    tile = grid.tile(tile_id)
    size = grid.chip_size
    cands, partial = candidates(grid, tile_id, stride)
    reasons = Counter({r: 0 for r in REJECTIONS})
    records = []
    rejected_cells = []
    entries: list[tuple[str, bytes]] = []
    if cands:
        # one read covering every candidate (reaching into neighbour tiles when stride < chip size)
        r_end = max(r for r, _ in cands) + size
        c_end = max(c for _, c in cands) + size
        win = Window(tile.col_off, tile.row_off, c_end - tile.col_off, r_end - tile.row_off)
        labels = read_grid_window(grid, tile_dirs, "labels", win, 0)[0]
        valid = read_grid_window(grid, tile_dirs, "valid", win, 0)[0]
        rgb = read_grid_window(grid, tile_dirs, "rgb", win, 0)
        terrain = read_grid_window(grid, tile_dirs, "terrain", win, NODATA)
        for r, c in cands:
            sl = (slice(r - tile.row_off, r - tile.row_off + size), slice(c - tile.col_off, c - tile.col_off + size))
            chip_rgb, chip_ter = rgb[(slice(None),) + sl], terrain[(slice(None),) + sl]
            reason, label, purity, shares = judge(labels[sl], valid[sl], chip_rgb, chip_ter, min_purity,
                                                  max_nodata, max_cloud)
            if reason is None and label not in classes:
                reason = "unlabelled"  # a raster value with no class (cannot happen from labels-prepare)
            if reason:
                reasons[reason] += 1
                rejected_cells.append([grid.x_min + c * grid.resolution,
                                       grid.y_max - (r + size) * grid.resolution, reason])
                continue
            x = grid.x_min + c * grid.resolution
            y_top = grid.y_max - r * grid.resolution
            y = y_top - size * grid.resolution
            chip_id = lattice_id(x, y)
            transform = grid.window_transform(Window(c, r, size, size))
            cname = classes[label]["name"]
            layers = {"rgb": chip_rgb}
            for i, name in enumerate(TILE_BANDS):
                layers[name] = chip_ter[i : i + 1]
            sums = {}
            for name, arr in layers.items():
                nodata = 0 if name == "rgb" else NODATA
                sums[name] = [_band_sums(band, nodata) for band in arr]
                desc = [name] if len(arr) == 1 else [f"{name} {b}" for b in ("R", "G", "B")]
                entries.append((f"{name}/{cname}/{chip_id}.tif", geotiff_bytes(arr, grid.crs, transform, nodata, desc)))
            records.append({"id": chip_id, "label": label, "class": cname, "purity": round(float(purity), 6),
                            "x": x, "y": y, "cloud": round(shares["cloud"], 6), "stats": sums})
    with atomic_path(out_zip) as tmp:
        with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_STORED) as zf:
            for name, data in sorted(entries):
                info = zipfile.ZipInfo(name, date_time=ZIP_DATE)
                info.external_attr = 0o644 << 16
                zf.writestr(info, data)
    doc = {"tile": tile_id, "candidates": len(cands), "partial_aoi": partial, "kept": len(records),
           "rejected": dict(reasons), "rejected_cells": sorted(rejected_cells),
           "chips": sorted(records, key=lambda d: d["id"])}
    atomic_write_text(out_json, json.dumps(doc, sort_keys=True) + "\n")
    log.info("chips tile %s: %d candidates, %d kept, rejected %s, %d cells partly outside the AOI", tile_id,
             len(cands), len(records), dict(reasons), partial)
    return doc
