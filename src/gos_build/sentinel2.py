"""Sentinel-2 stage: the ``sentinel2`` manifest -> cloud-masked, radiometrically correct RGB per tile.

Validity: L2A pixels whose scene classification (SCL, 20 m, taken by nearest
neighbour) is in the manifest's ``invalid_scl`` (0 no data, 1 saturated, 3
cloud shadow, 8/9 cloud, 10 cirrus; 11 snow by config) are invalid; L1C and
GeoTIFF bands without SCL know nodata only.

Compositing: products are taken least cloudy first; for each grid pixel the
first product with a *valid* pixel wins, else the first with data (the pixel
then stays marked invalid). Reflectance is interpolated bilinearly from the
2 x 2 source pixels around the point, renormalised over the usable ones
(valid ones for a valid pixel), so neither nodata zeros nor masked pixels
bleed into a value; the mask itself is nearest-neighbour. Each grid pixel
depends only on its own position: tiles equal an untiled run.

Outputs per tile: ``rgb.tif`` (3 bands R G B = B04 B03 B02, uint16
reflectance x 10000, nodata 0) and ``valid.tif`` (uint8, 1 = valid).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import rasterio
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.windows import Window
from shapely.geometry import box

from .errors import GosBuildError
from .grid import Grid
from .inputs.sentinel2 import INVALID_SCL, RGB_BANDS, Granule, Product, products_from_manifest
from .layout import RGB as RGB_LAYER
from .layout import VALID_DESCRIPTION
from .resample import nearest_indices, resample_points

log = logging.getLogger(__name__)


# -- one tile ----------------------------------------------------------------------------
def composite_window(products: list[Product], grid: Grid, window: Window, invalid_scl=INVALID_SCL):
    """(reflectance float32 (3, h, w) NaN = nodata, valid bool (h, w)) on a grid window."""
    h, w = int(window.height), int(window.width)
    rows, cols = np.mgrid[0:h, 0:w]
    x = grid.x_min + (window.col_off + cols + 0.5) * grid.resolution
    y = grid.y_max - (window.row_off + rows + 0.5) * grid.resolution
    refl = np.full((3, h, w), np.nan, dtype=np.float32)
    have = np.zeros((h, w), dtype=bool)
    valid = np.zeros((h, w), dtype=bool)
    for p in products:
        for g in p.granules:
            if g.crs == grid.crs:
                gx, gy = x, y
            else:
                gx, gy = Transformer.from_crs(grid.crs, g.crs, always_xy=True).transform(x, y)
            if not box(*g.bounds).intersects(box(gx.min(), gy.min(), gx.max(), gy.max())):
                continue
            got = _granule_values(p, g, gx, gy, invalid_scl)
            if got is None:
                continue
            vals, nn_data, nn_valid = got
            take = (nn_data & ~have) | (nn_valid & ~valid)
            refl[:, take] = vals[:, take]
            have |= nn_data
            valid |= nn_valid
            if valid.all():
                return refl, valid
    return refl, valid


def _granule_values(p: Product, g: Granule, gx, gy, invalid_scl):
    """Reflectance (3, h, w), has-data and valid masks (nearest) of one granule at points (gx, gy)."""
    with rasterio.open(g.bands["B04"]) as ds:
        inv = ~ds.transform
        fc = inv.a * gx + inv.b * gy + inv.c - 0.5
        fr = inv.d * gx + inv.e * gy + inv.f - 0.5
        c0, r0 = int(math.floor(fc.min())) - 2, int(math.floor(fr.min())) - 2
        c1, r1 = int(math.ceil(fc.max())) + 3, int(math.ceil(fr.max())) + 3
        if c1 <= 0 or r1 <= 0 or c0 >= ds.width or r0 >= ds.height:
            return None
        win = Window(c0, r0, c1 - c0, r1 - r0)
        src_transform = ds.window_transform(win)
    dn = np.stack([_read(g.bands[b], win, p.name) for b in RGB_BANDS])
    data = np.all(dn != 0, axis=0)
    usable = data
    if g.scl:
        with rasterio.open(g.scl) as ds:
            # SCL (20 m) at each 10 m source pixel centre, nearest neighbour
            sr, sc = np.mgrid[0 : win.height, 0 : win.width]
            sx = src_transform.c + (sc + 0.5) * src_transform.a
            sy = src_transform.f + (sr + 0.5) * src_transform.e
            sinv = ~ds.transform
            fsc, fsr = sinv.a * sx + sinv.c - 0.5, sinv.e * sy + sinv.f - 0.5
            q0, p0 = int(math.floor(fsc.min())) - 1, int(math.floor(fsr.min())) - 1
            q1, p1 = int(math.ceil(fsc.max())) + 2, int(math.ceil(fsr.max())) + 2
            scl = _read(g.scl, Window(q0, p0, q1 - q0, p1 - p0), p.name, ds=ds)
        ri, ci, inside = nearest_indices(fsr - p0, fsc - q0, scl.shape)
        scl10 = np.where(inside, scl[ri, ci], 0)
        usable = data & ~np.isin(scl10, invalid_scl)
    r, c = fr - r0, fc - c0
    ri, ci, inside = nearest_indices(r, c, data.shape)
    nn_data = inside & data[ri, ci]
    nn_valid = inside & usable[ri, ci]
    vals = np.empty((3,) + gx.shape, dtype=np.float32)
    for i, band in enumerate(RGB_BANDS):
        z = (dn[i].astype(np.float64) + p.offsets[band]) / p.quantification
        v_valid = resample_points(z, r, c, "bilinear", valid=usable)
        v_data = resample_points(z, r, c, "bilinear", valid=data)
        vals[i] = np.where(nn_valid, v_valid, v_data)
    return vals, nn_data, nn_valid


def _read(path: str, win: Window, product: str, ds=None) -> np.ndarray:
    try:
        if ds is not None:
            return ds.read(1, window=win, boundless=True, fill_value=0)
        with rasterio.open(path) as src:
            return src.read(1, window=win, boundless=True, fill_value=0)
    except RasterioIOError as exc:
        raise GosBuildError(f"{product}: {path.rsplit('/', 1)[-1]}: cannot be read ({exc})") from None


def s2_tile(manifest: dict, grid: Grid, tile_id: str, out_rgb: str | Path, out_valid: str | Path) -> dict:
    """Write one tile's ``rgb`` (uint16 x 10000, nodata 0) and ``valid`` (uint8) GeoTIFFs from the manifest."""
    from .io import write_geotiff

    products, invalid_scl = products_from_manifest(manifest), tuple(manifest["invalid_scl"])
    tile = grid.tile(tile_id)
    refl = np.empty((3, tile.height, tile.width), dtype=np.float32)
    valid = np.empty((tile.height, tile.width), dtype=bool)
    # 256 rows at a time keeps memory bounded; each pixel depends on its own position only
    for r0 in range(0, tile.height, 256):
        n = min(256, tile.height - r0)
        win = Window(tile.col_off, tile.row_off + r0, tile.width, n)
        refl[:, r0 : r0 + n], valid[r0 : r0 + n] = composite_window(products, grid, win, invalid_scl)
    have = ~np.isnan(refl).any(axis=0)
    rgb = np.where(have, np.clip(np.round(np.nan_to_num(refl) * 10000.0), 1, 65535), RGB_LAYER.nodata).astype(
        RGB_LAYER.dtype)
    mask = (valid & have).astype(np.uint8)
    transform = grid.window_transform(tile.window)
    write_geotiff(out_rgb, rgb, grid.crs, transform, RGB_LAYER.nodata,
                  [f"{name} ({band}) reflectance x 10000" for band, name in zip(RGB_BANDS, RGB_LAYER.bands)])
    write_geotiff(out_valid, mask, grid.crs, transform, None, [VALID_DESCRIPTION])
    stats = {"pixels": int(mask.size), "nodata": int((~have).sum()), "invalid": int((have & ~valid).sum())}
    log.info("sentinel2 tile %s: %d px, %d nodata, %d invalid (cloud/shadow/cirrus)", tile_id, stats["pixels"],
             stats["nodata"], stats["invalid"])
    return stats


def visual_preview(grid: Grid, tiles_dir: str | Path, out: str | Path, max_size: int = 4096,
                   rgb_tiles: dict[str, str | Path] | None = None) -> None:
    """8-bit RGB preview of the whole AOI (2-98 % stretch over valid data) as a COG, decimated to max_size."""
    from rasterio.shutil import copy as rio_copy

    from .io import atomic_path
    from .tiles import read_decimated

    factor = max(1, math.ceil(max(grid.width, grid.height) / max_size))
    W, H = math.ceil(grid.width / factor), math.ceil(grid.height / factor)
    img = read_decimated(grid, tiles_dir, RGB_LAYER.name, factor, RGB_LAYER.nodata, paths=rgb_tiles)
    data = img[0] > 0
    out8 = np.zeros((3, H, W), dtype=np.uint8)
    for b in range(3):
        if data.any():
            lo, hi = np.percentile(img[b][data], [2, 98])
            scaled = (img[b].astype(np.float64) - lo) / max(hi - lo, 1.0)
            out8[b] = np.where(data, np.clip(np.round(1 + 254 * scaled), 1, 255), 0)
    transform = grid.transform @ rasterio.Affine.scale(factor)
    with atomic_path(out) as tmp:
        mem = Path(str(tmp) + ".src.tif")
        try:
            with rasterio.open(mem, "w", driver="GTiff", width=W, height=H, count=3, dtype="uint8", crs=grid.crs,
                               transform=transform, nodata=0, photometric="RGB") as dst:
                dst.write(out8)
            rio_copy(mem, tmp, driver="COG", compress="deflate", overview_resampling="average")
        finally:
            mem.unlink(missing_ok=True)
    log.info("sentinel2: visual preview %d x %d px (1:%d) -> %s", W, H, factor, out)
