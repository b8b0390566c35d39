"""DEM stage: the ``dem`` manifest -> one mosaic (VRT) -> per-tile void-filled elevation on the 10 m grid.

* :func:`build_mosaic` writes a VRT over the manifest's files (all in one
  CRS, checked by :mod:`gos_build.inputs.dem`); later files win where files
  overlap (SRTM neighbours share their edge row/column, with equal values).
* :func:`dem_for_window` reads the source pixels a grid window needs plus a
  margin, fills voids by inverse-distance interpolation (GDAL ``FillNodata``,
  at most ``FILL_DISTANCE`` source pixels away; bigger voids stay nodata), and
  resamples onto the grid: float32 metres, NaN = nodata. Resampling is done
  here, point by point (pyproj maps each 10 m pixel centre into the source,
  then bilinear or Keys cubic convolution -- GDAL's ``cubic`` kernel -- from
  its 2 x 2 / 4 x 4 neighbourhood), not by GDAL's warper: the warper's result
  for a pixel shifts by millimetres to decimetres with the destination window
  (chunking, approximate transforms), and tiles must equal an untiled run bit
  for bit.
"""

from __future__ import annotations

import logging
import math
import os
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
from affine import Affine
from pyproj import Transformer
from rasterio.windows import Window

from .errors import GosBuildError
from .grid import Grid
from .inputs.dem import SOURCE_NODATA
from .resample import KERNELS, frac_index, resample_points

log = logging.getLogger(__name__)

FILL_DISTANCE = 64  # source pixels: ~2 km of SRTM1
_KERNEL_MARGIN = 3  # source pixels around the footprint for the cubic kernel


def build_mosaic(manifest: dict, out_vrt: str | Path) -> dict:
    """Write a VRT mosaic of the files of a ``dem`` manifest at ``out_vrt`` (later files win on overlaps).

    The mosaic lattice is the first file's, extended over all files, at the finest resolution.
    Returns a summary (sources, CRS, resolution, covered fraction) for the log.
    """
    from .io import atomic_path

    srcs = [dict(f, transform=Affine.from_gdal(*f["transform"])) for f in manifest["files"]]
    res, resy = manifest["resolution"]
    t0 = srcs[0]["transform"]
    x0 = min(s["bounds"][0] for s in srcs)
    y1 = max(s["bounds"][3] for s in srcs)
    x1 = max(s["bounds"][2] for s in srcs)
    y0 = min(s["bounds"][1] for s in srcs)
    x0 = t0.c + math.floor((x0 - t0.c) / res + 1e-6) * res
    y1 = t0.f - math.floor((t0.f - y1) / resy + 1e-6) * resy
    width = int(math.ceil((x1 - x0) / res - 1e-6))
    height = int(math.ceil((y1 - y0) / resy - 1e-6))

    out_vrt = Path(out_vrt)
    sources = []
    for s in srcs:
        t = s["transform"]
        dx, dy = (t.c - x0) / res, (y1 - t.f) / resy
        w, h = s["width"] * abs(t.a) / res, s["height"] * abs(t.e) / resy
        if s["path"].startswith("/vsi"):
            fname, rel = s["path"], 0
        else:
            fname, rel = os.path.relpath(os.path.abspath(s["path"]), os.path.abspath(out_vrt.parent)), 1
        nodata = s["nodata"] if s["nodata"] is not None else SOURCE_NODATA
        sources.append(
            f'    <ComplexSource>\n'
            f'      <SourceFilename relativeToVRT="{rel}">{escape(fname)}</SourceFilename>\n'
            f'      <SourceBand>1</SourceBand>\n'
            f'      <SrcRect xOff="0" yOff="0" xSize="{s["width"]}" ySize="{s["height"]}"/>\n'
            f'      <DstRect xOff="{dx:.10g}" yOff="{dy:.10g}" xSize="{w:.10g}" ySize="{h:.10g}"/>\n'
            f'      <NODATA>{nodata:.10g}</NODATA>\n'
            f'    </ComplexSource>\n'
        )
    vrt = (
        f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">\n'
        f"  <SRS>{escape(srcs[0]['crs_wkt'])}</SRS>\n"
        f"  <GeoTransform>{x0:.12g}, {res:.12g}, 0, {y1:.12g}, 0, {-resy:.12g}</GeoTransform>\n"
        f'  <VRTRasterBand dataType="Float32" band="1">\n'
        f"    <NoDataValue>{SOURCE_NODATA:g}</NoDataValue>\n"
        + "".join(sources)
        + "  </VRTRasterBand>\n</VRTDataset>\n"
    )
    with atomic_path(out_vrt) as tmp:
        Path(tmp).write_text(vrt, encoding="utf-8")
    log.info("DEM mosaic: %d file(s), %s, %.6g x %.6g, %d x %d px, covers %.2f %% of the AOI -> %s",
             len(srcs), manifest["crs"], res, resy, width, height, 100 * manifest["aoi_covered"], out_vrt)
    return {k: manifest[k] for k in ("sources", "crs", "resolution", "aoi_covered")}


def dem_for_window(mosaic: str | Path, grid: Grid, window: Window, resampling: str = "cubic",
                   block_rows: int = 256) -> np.ndarray:
    """Elevation (float32 metres, NaN nodata) on ``window`` of the grid (may reach past the grid).

    Resampled ``block_rows`` rows at a time: memory stays bounded, values do not
    depend on the blocking (each pixel depends on its own position only).
    """
    if resampling not in KERNELS:
        raise GosBuildError(f"terrain.resampling: expected one of {sorted(KERNELS)}, got '{resampling}'")
    h, w = int(window.height), int(window.width)
    out = np.empty((h, w), dtype=np.float32)
    with rasterio.open(mosaic) as src:
        to_src = Transformer.from_crs(grid.crs, src.crs, always_xy=True)
        inv = ~src.transform
        # the source window: footprint of the whole grid window (dense edge sample) plus margins
        ex = grid.x_min + (window.col_off + np.concatenate([np.arange(w + 1), np.full(h + 1, w), np.arange(w + 1),
                                                            np.zeros(h + 1)])) * grid.resolution
        ey = grid.y_max - (window.row_off + np.concatenate([np.zeros(w + 1), np.arange(h + 1), np.full(w + 1, h),
                                                            np.arange(h + 1)])) * grid.resolution
        fc, fr = frac_index(inv, *to_src.transform(ex, ey))
        margin = FILL_DISTANCE + _KERNEL_MARGIN
        col0, row0 = int(math.floor(np.nanmin(fc))) - margin, int(math.floor(np.nanmin(fr))) - margin
        col1, row1 = int(math.ceil(np.nanmax(fc))) + margin + 1, int(math.ceil(np.nanmax(fr))) + margin + 1
        z = src.read(1, window=Window(col0, row0, col1 - col0, row1 - row0), boundless=True,
                     fill_value=SOURCE_NODATA, out_dtype="float32")
    z = fill_voids(z)
    cols = np.arange(w)
    for r0 in range(0, h, block_rows):
        rows = np.arange(r0, min(h, r0 + block_rows))
        cc, rr = np.meshgrid(cols, rows)
        x = grid.x_min + (window.col_off + cc + 0.5) * grid.resolution
        y = grid.y_max - (window.row_off + rr + 0.5) * grid.resolution
        fc, fr = frac_index(inv, *to_src.transform(x, y))
        out[rows[0] : rows[-1] + 1] = resample_points(z, fr - row0, fc - col0, resampling, void=SOURCE_NODATA)
    return out


def fill_voids(z: np.ndarray) -> np.ndarray:
    """Fill SOURCE_NODATA voids by inverse-distance interpolation (<= FILL_DISTANCE px); bigger stay nodata."""
    from rasterio.fill import fillnodata

    valid = z != SOURCE_NODATA
    if valid.all() or not valid.any():
        return z
    filled = fillnodata(z.copy(), mask=valid.astype(np.uint8), max_search_distance=FILL_DISTANCE,
                        smoothing_iterations=0)
    return filled.astype(np.float32)
