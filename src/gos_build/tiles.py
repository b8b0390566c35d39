"""The per-tile files ``results/<aoi>/tiles/<id>/<file>``: their one writer and one windowed reader.

The stages write every per-pixel layer tile by tile; whoever needs a window
of the grid that crosses tiles (the chips of overlapping strides, the figures,
the preview) reads it here, either at full resolution (:func:`read_window`) or
decimated over the whole grid (:func:`read_decimated`), so memory follows the
window or the decimation, never the AOI.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import rasterio
from rasterio.enums import Resampling
from rasterio.windows import Window

from .errors import GosBuildError
from .grid import Grid
from .layout import tile_path

def tile_compression(dtype) -> str:
    """How a per-tile layer is stored. They are scratch, written once and read by the chips, preview and
    figures jobs, so speed comes before size: float32 layers (terrain) raw -- DEFLATE or Zstandard with the
    float predictor shrink them 1.3x at best, for 10x the writing and 6x the reading time; integer layers
    (reflectance, masks, labels) Zstandard level 1 (2-1000x smaller, fast). Products stay DEFLATE."""
    return "none" if np.dtype(dtype).kind == "f" else "zstd"


def write_tile(path: str | Path, grid: Grid, tile, arr, nodata, descriptions: list[str],
               tags: list[dict] | None = None) -> None:
    """Write a per-tile layer: bands ``arr`` on ``tile``'s pixels of the grid (grid CRS), atomically."""
    from .io import write_geotiff

    dtype = (arr[0] if isinstance(arr, (list, tuple)) else arr).dtype
    write_geotiff(path, arr, grid.crs, grid.window_transform(tile.window), nodata, descriptions, tags,
                  compress=tile_compression(dtype))


def read_window(grid: Grid, tiles_dir: str | Path, role: str, window: Window, fill,
                allowed: set[str] | None = None) -> np.ndarray:
    """All bands of ``window`` of the grid, (bands, h, w), from ``<tiles_dir>/<tile id>/<file of role>``.

    ``allowed``: the tiles the caller declared as its inputs; a tile the window
    needs outside them is an error. Pixels outside every tile are ``fill``.
    """
    r0, c0 = int(window.row_off), int(window.col_off)
    h, w = int(window.height), int(window.width)
    out = None
    for t in grid.tiles():
        rr0, cc0 = max(r0, t.row_off), max(c0, t.col_off)
        rr1, cc1 = min(r0 + h, t.row_off + t.height), min(c0 + w, t.col_off + t.width)
        if rr1 <= rr0 or cc1 <= cc0:
            continue
        if allowed is not None and t.id not in allowed:
            raise GosBuildError(f"tiles: tile {t.id} is needed for this window but was not given")
        with rasterio.open(tile_path(tiles_dir, t.id, role)) as ds:
            part = ds.read(window=Window(cc0 - t.col_off, rr0 - t.row_off, cc1 - cc0, rr1 - rr0))
        if out is None:
            out = np.full((part.shape[0], h, w), fill, dtype=part.dtype)
        out[:, rr0 - r0 : rr1 - r0, cc0 - c0 : cc1 - c0] = part
    if out is None:
        raise GosBuildError(f"tiles: window {window} lies outside every tile")
    return out


def read_decimated(grid: Grid, tiles_dir: str | Path, role: str, factor: int, fill, bands=None,
                   resampling=Resampling.nearest, paths: dict[str, str | Path] | None = None) -> np.ndarray:
    """The whole grid decimated by ``factor``, (bands, ceil(H / factor), ceil(W / factor)).

    ``bands``: 1-based band indexes (default all); ``paths`` may override the
    file of a tile (tile id -> path).
    """
    H, W = math.ceil(grid.height / factor), math.ceil(grid.width / factor)
    out = None
    for t in grid.tiles():
        oh, ow = math.ceil(t.height / factor), math.ceil(t.width / factor)
        path = paths[t.id] if paths else tile_path(tiles_dir, t.id, role)
        with rasterio.open(path) as ds:
            idx = list(bands) if bands else list(range(1, ds.count + 1))
            part = ds.read(idx, out_shape=(len(idx), oh, ow), resampling=resampling)
        if out is None:
            out = np.full((part.shape[0], H, W), fill, dtype=part.dtype)
        r0, c0 = t.row_off // factor, t.col_off // factor
        out[:, r0 : r0 + oh, c0 : c0 + ow] = part[:, : H - r0, : W - c0]
    return out
