"""The per-tile files ``results/<aoi>/tiles/<id>/<file>``: their one writer and one windowed reader.

The stages compute every per-pixel layer tile by tile. Run by hand, each stage
writes its tile's layer here (:func:`write_tile`), and whoever needs a window of
the grid that crosses tiles reads it here (:func:`read_window`). In the
workflow one job makes a tile's layers and chips in memory and leaves small
decimated *pieces* (:func:`decimate_array`, :func:`write_piece`) from which the
AOI-wide maps -- the preview, the overview -- are assembled
(:func:`place_pieces`), so memory follows the window or the decimation, never
the AOI.
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


def decimate_array(grid: Grid, tile, arr: np.ndarray, nodata, factor: int,
                   resampling=Resampling.nearest) -> np.ndarray:
    """A tile's layer held in memory ((bands, h, w) or (h, w) on the tile's pixels) decimated by ``factor`` with
    GDAL's ``resampling``: (bands, ceil(h / factor), ceil(w / factor)). The layer goes through an in-memory
    GeoTIFF with its nodata and the per-tile files' layout, so GDAL resamples it exactly as it would the
    layer's file (the pieces give the maps the tiles' files gave)."""
    from rasterio.io import MemoryFile

    from .io import geotiff_profile

    arr = arr if arr.ndim == 3 else arr[np.newaxis]
    profile = geotiff_profile(tile.width, tile.height, arr.shape[0], str(arr.dtype), grid.crs,
                              grid.window_transform(tile.window), nodata, compress="none")
    out_shape = (arr.shape[0], math.ceil(tile.height / factor), math.ceil(tile.width / factor))
    with MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(arr)
        with mem.open() as ds:
            return ds.read(out_shape=out_shape, resampling=resampling)


def write_piece(path: str | Path, grid: Grid, tile, factor: int, arr: np.ndarray, nodata,
                descriptions: list[str]) -> None:
    """Write a tile's piece of an AOI-wide decimated map (:func:`decimate_array`), for :func:`place_pieces`."""
    from .io import write_geotiff

    write_geotiff(path, arr, grid.crs, grid.window_transform(tile.window) @ rasterio.Affine.scale(factor), nodata,
                  descriptions, compress=tile_compression(arr.dtype))


def place_pieces(grid: Grid, factor: int, pieces: dict[str, str | Path], fills) -> np.ndarray:
    """The whole grid decimated by ``factor``, (bands, ceil(H / factor), ceil(W / factor)), from the tiles'
    pieces (tile id -> file of :func:`write_piece`); ``fills``: per band, the value where no tile is. Every
    tile of the grid must have its piece."""
    H, W = math.ceil(grid.height / factor), math.ceil(grid.width / factor)
    missing = [t.id for t in grid.tiles() if t.id not in pieces]
    if missing:
        raise GosBuildError(f"tiles: no piece for tile(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}")
    out = None
    for t in grid.tiles():
        with rasterio.open(pieces[t.id]) as ds:
            part = ds.read()
        if out is None:
            out = np.empty((part.shape[0], H, W), dtype=part.dtype)
            for b in range(part.shape[0]):
                out[b] = fills[b]
        r0, c0 = t.row_off // factor, t.col_off // factor
        oh, ow = part.shape[1:]
        out[:, r0 : r0 + oh, c0 : c0 + ow] = part[:, : H - r0, : W - c0]
    return out
