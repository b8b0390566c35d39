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
   (cloud, shadow, cirrus) > ``chips.max_cloud``;
5. ``boundary``: the chip's distance to the nearest class boundary of the
   interpretation polygons (:func:`gos_build.labels.boundary_distances`, m) <
   ``chips.min_boundary_distance_m`` (default 0: none is rejected).

Every kept chip records that distance (``boundary_m``): map-scale polygons are
uncertain by ~0.5 mm x the scale denominator (125 m at 1:250 000), so a chip
near a boundary may carry the neighbouring class.

Chip ids are the south-west corner of the chip in the grid CRS, metres
(``E0500480N4880000``), so overlapping AOIs give the same ids and bytes.

:func:`cut_tile` returns the tile's record -- one entry per kept chip (label,
purity, corner, per-layer sums for the dataset statistics), the rejection
counts and the south-west corner and reason of every rejected candidate --
and the kept chips' arrays; the archive's writers turn them into files
(:mod:`gos_build.archive.shard`).
"""

from __future__ import annotations

import logging
import math
from collections import Counter
from pathlib import Path

import numpy as np
import shapely
from rasterio.windows import Window

from .grid import Grid, lattice_id
from .layout import (DEM, GOS10M, REJECTIONS, RGB, S2, TERRAIN_NODATA, Layer, Registry, classes_from_config,
                     period_names)
from .tiles import read_window

log = logging.getLogger(__name__)


def candidates(grid: Grid, tile_id: str, stride: int) -> tuple[list[tuple[int, int]], int]:
    """(row, col) grid pixel of each candidate chip's top-left corner, and the partial-AOI count."""
    tile = grid.tile(tile_id)
    size = grid.chip_size
    first_row, first_col = grid.first_chip_origin(tile, stride)
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
          max_nodata: float, max_cloud: float, s2: np.ndarray | None = None, periods=(),
          max_period_nodata: float | None = None) -> tuple[str | None, int, float, dict]:
    """(rejection reason or None, label, purity, shares) of one chip's arrays. ``max_nodata`` holds for every
    layer: rgb, each terrain layer and, with ``sentinel2.bands``, the s2 layer (a pixel with nodata in any of
    its bands); ``max_period_nodata`` (default ``max_nodata``) for each period layer (``periods``: their
    arrays), whose nodata is every pixel without a clear observation in the period. ``max_cloud`` is judged on
    the one valid mask of rgb (and s2)."""
    n = labels.size
    counts = np.bincount(labels.ravel(), minlength=256)
    counts[0] = 0
    if counts.sum() == 0:
        return "unlabelled", 0, 0.0, {}
    label = int(np.argmax(counts))  # ties: the smaller class id
    purity = counts[label] / n
    nodata = [float((rgb[0] == 0).mean())] + [float((terrain[i] == TERRAIN_NODATA).mean()) for i in range(terrain.shape[0])]
    if s2 is not None:
        nodata.append(float((s2 == 0).any(axis=0).mean()))
    period_nodata = max((float((p == 0).any(axis=0).mean()) for p in periods), default=0.0)
    has_data = rgb[0] != 0
    cloud = float((has_data & (valid == 0)).sum() / n)
    shares = {"nodata": max(nodata), "cloud": cloud}
    if purity < min_purity:
        return "purity", label, purity, shares
    if max(nodata) > max_nodata or period_nodata > (max_nodata if max_period_nodata is None else max_period_nodata):
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


def stack_band(layer: Layer, band: np.ndarray) -> np.ndarray:
    """A layer's values from its band of the float32 terrain stack (nodata -9999): the band itself for a
    float32 layer, else cast to the layer's dtype with its own nodata (geomorphons: uint8, 0)."""
    if layer.dtype == "float32":
        return band
    return np.where(band == TERRAIN_NODATA, layer.nodata, band).astype(layer.dtype)


def files_reader(grid: Grid, tiles_dir: str | Path, allowed: set[str] | None = None):
    """A reader of windows of the per-tile layers in ``tiles_dir/<tile>/*.tif`` (:func:`cut_tile`'s ``read``):
    ``read(role, window, fill) -> (bands, h, w)``; ``allowed``: the tiles the caller declared as its inputs."""
    return lambda role, window, fill: read_window(grid, tiles_dir, role, window, fill, allowed)


def arrays_reader(window: Window, layers: dict):
    """A reader of windows of per-tile layers held in memory (:func:`cut_tile`'s ``read``): ``layers`` maps a
    role (``rgb``, ``valid``, ``labels``, ``terrain``) to its (bands, h, w) array over ``window`` of the grid."""
    def read(role, win, fill):
        r0, c0 = int(win.row_off - window.row_off), int(win.col_off - window.col_off)
        h, w = int(win.height), int(win.width)
        arr = layers[role]
        if r0 < 0 or c0 < 0 or r0 + h > arr.shape[1] or c0 + w > arr.shape[2]:
            raise ValueError(f"window {win} reaches outside the layers' window {window}")
        return arr[:, r0 : r0 + h, c0 : c0 + w]
    return read


def cut_tile(grid: Grid, tile_id: str, read, classes: dict, stride: int, min_purity: float, max_nodata: float,
             max_cloud: float, polygons: str | Path | None = None, min_boundary_m: float = 0.0,
             layers: Registry = GOS10M, max_period_nodata: float | None = None) -> tuple[dict, list]:
    """Judge every candidate chip of one tile.

    Returns the tile's record (candidates, rejections by reason, the kept
    chips' label, purity, corner and per-band sums) and the kept chips as
    ``(record, {layer: array (bands, size, size)})``, arrays being views of the
    tile's layers as ``read(role, window, fill)`` gives them (:func:`files_reader`: the
    per-tile files, and the neighbours' when chips overlap; :func:`arrays_reader`: arrays in memory
    over :meth:`gos_build.grid.Grid.reach`). Writing them is a writer's job (:mod:`gos_build.archive`).
    ``polygons``: the prepared polygons (``labels/polygons.gpkg``), for each chip's distance to the
    nearest class boundary (without them the distance is not recorded). ``layers``: the registry (the
    terrain stack's bands are its ``elevation`` layers).
    """
    classes = classes_from_config(classes)
    tile = grid.tile(tile_id)
    size = grid.chip_size
    cands, partial = candidates(grid, tile_id, stride)
    reasons = Counter({r: 0 for r in REJECTIONS})
    records, kept, rejected_cells, passed = [], [], [], []
    if cands:
        # one read covering every candidate (reaching into neighbour tiles when stride < chip size)
        r_end = max(r for r, _ in cands) + size
        c_end = max(c for _, c in cands) + size
        win = Window(tile.col_off, tile.row_off, c_end - tile.col_off, r_end - tile.row_off)
        labels = read("labels", win, 0)[0]
        valid = read("valid", win, 0)[0]
        rgb = read(RGB.name, win, RGB.nodata)
        terrain = read("terrain", win, DEM.nodata)
        s2 = read(S2, win, RGB.nodata) if S2 in layers else None
        periods = {m: read(m, win, RGB.nodata) for m in period_names(layers)}
        for r, c in cands:
            sl = (slice(r - tile.row_off, r - tile.row_off + size), slice(c - tile.col_off, c - tile.col_off + size))
            chip_rgb, chip_ter = rgb[(slice(None),) + sl], terrain[(slice(None),) + sl]
            chip_s2 = s2[(slice(None),) + sl] if s2 is not None else None
            chip_periods = {m: a[(slice(None),) + sl] for m, a in periods.items()}
            reason, label, purity, shares = judge(labels[sl], valid[sl], chip_rgb, chip_ter, min_purity,
                                                  max_nodata, max_cloud, chip_s2, chip_periods.values(),
                                                  max_period_nodata)
            if reason is None and label not in classes:
                reason = "unlabelled"  # a raster value with no class (cannot happen from labels-prepare)
            if reason:
                reasons[reason] += 1
                rejected_cells.append([grid.x_min + c * grid.resolution,
                                       grid.y_max - (r + size) * grid.resolution, reason])
                continue
            passed.append((r, c, label, purity, shares, chip_rgb, chip_ter, chip_s2, chip_periods))
    span = size * grid.resolution
    corners = [(grid.x_min + c * grid.resolution, grid.y_max - r * grid.resolution - span) for r, c, *_ in passed]
    distances = [None] * len(passed)
    if polygons is not None and passed:
        from .labels import boundary_distances

        x0, y1 = grid.x_min + tile.col_off * grid.resolution, grid.y_max - tile.row_off * grid.resolution
        bounds = (x0, y1 - tile.height * grid.resolution, x0 + tile.width * grid.resolution, y1)
        distances = boundary_distances(polygons, bounds, [shapely.box(x, y, x + span, y + span) for x, y in corners])
    for (r, c, label, purity, shares, chip_rgb, chip_ter, chip_s2, chip_periods), (x, y), dist in zip(
            passed, corners, distances):
        if dist is not None and dist < min_boundary_m:
            reasons["boundary"] += 1
            rejected_cells.append([x, y, "boundary"])
            continue
        arrays = {RGB.name: chip_rgb, **({S2: chip_s2} if chip_s2 is not None else {}), **chip_periods}
        for i, name in enumerate(layers.elevation):
            arrays[name] = stack_band(layers[name], chip_ter[i : i + 1])
        sums = {name: [_band_sums(band, layers[name].nodata) for band in arr] for name, arr in arrays.items()}
        record = {"id": lattice_id(x, y), "class_id": label, "class": classes[label]["name"],
                  "purity": round(float(purity), 6), "x": x, "y": y, "cloud": round(shares["cloud"], 6),
                  "stats": sums, "row": r, "col": c}
        if dist is not None:
            record["boundary_m"] = round(dist, 2) if math.isfinite(dist) else None
        records.append(record)
        kept.append((record, arrays))
    doc = {"tile": tile_id, "candidates": len(cands), "partial_aoi": partial, "kept": len(records),
           "rejected": dict(reasons), "rejected_cells": sorted(rejected_cells),
           "chips": sorted(({k: v for k, v in rec.items() if k not in ("row", "col")} for rec in records),
                           key=lambda d: d["id"])}
    log.info("chips tile %s: %d candidates, %d kept, rejected %s, %d cells partly outside the AOI", tile_id,
             len(cands), len(records), dict(reasons), partial)
    return doc, kept
