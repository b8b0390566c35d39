"""DEM inputs -> one mosaic (VRT) -> per-tile void-filled elevation on the 10 m grid.

* Inputs: SRTM1/SRTM3 ``.hgt`` tiles, ``.hgt.zip`` read in place through
  ``/vsizip/``, or GeoTIFF DEMs in metres; all in one CRS (several CRSs: reproject
  first). Later files win where files overlap (SRTM neighbours share their edge
  row/column, with equal values).
* :func:`build_mosaic` writes a VRT over the inputs and refuses inputs that do
  not cover the AOI, naming the covered fraction (and, for SRTM, the missing
  1-degree tiles).
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

import glob
import logging
import math
import os
import zipfile
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from rasterio.errors import RasterioIOError
from rasterio.warp import transform_bounds
from rasterio.windows import Window
from shapely.geometry import box

from .errors import GosBuildError
from .grid import Grid
from .resample import KERNELS, resample_points

log = logging.getLogger(__name__)

SOURCE_NODATA = -32768.0
FILL_DISTANCE = 64  # source pixels: ~2 km of SRTM1
_KERNEL_MARGIN = 3  # source pixels around the footprint for the cubic kernel


def hgt_name(lat: int, lon: int) -> str:
    """SRTM tile name of the 1-degree cell whose south-west corner is (lat, lon): N43E128."""
    return f"{'N' if lat >= 0 else 'S'}{abs(lat):02d}{'E' if lon >= 0 else 'W'}{abs(lon):03d}.hgt"


def expand_inputs(patterns, key: str) -> list[str]:
    """Files (GDAL paths) matched by config globs, sorted; a glob matching nothing is an error.

    ``.hgt.zip`` / ``.zip`` files become ``/vsizip/<zip>/<member>.hgt`` paths.
    """
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    out: list[str] = []
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if not hits:
            raise GosBuildError(f"inputs.{key}: '{pattern}' matches no file")
        for hit in hits:
            out.append(_gdal_path(hit, key))
    return out


def _gdal_path(path: str, key: str) -> str:
    if not path.lower().endswith(".zip"):
        return path
    try:
        with zipfile.ZipFile(path) as zf:
            members = [n for n in zf.namelist() if n.lower().endswith((".hgt", ".tif", ".tiff"))]
    except (zipfile.BadZipFile, OSError) as exc:
        raise GosBuildError(f"inputs.{key}: {path}: not a readable zip file ({exc})") from None
    if len(members) != 1:
        raise GosBuildError(f"inputs.{key}: {path}: expected one .hgt or .tif inside, found {len(members)}")
    return f"/vsizip/{os.path.abspath(path)}/{members[0]}"


def _describe_source(path: str) -> dict:
    try:
        with rasterio.open(path) as ds:
            if ds.crs is None:
                raise GosBuildError(f"{path}: the DEM has no CRS")
            if ds.transform.b or ds.transform.d:
                raise GosBuildError(f"{path}: rotated rasters are not supported")
            if ds.driver == "SRTMHGT" and ds.width not in (1201, 3601):
                raise GosBuildError(f"{path}: an HGT tile must be 1201 or 3601 posts square, got {ds.width}")
            # a decimated read is enough to tell an all-nodata file
            step = max(1, min(ds.width, ds.height) // 256)
            sample = ds.read(1, out_shape=(max(1, ds.height // step), max(1, ds.width // step)), masked=True)
            if sample.mask.all() or (ds.nodata is None and np.all(sample == SOURCE_NODATA)):
                raise GosBuildError(f"{path.split('/vsizip/')[-1]}: every pixel of the DEM is nodata")
            return dict(path=path, crs=ds.crs, transform=ds.transform, width=ds.width, height=ds.height,
                        nodata=ds.nodata, bounds=tuple(ds.bounds), driver=ds.driver)
    except RasterioIOError as exc:
        name = path.split("/vsizip/")[-1]
        if path.lower().endswith(".hgt") and os.path.exists(name):
            size = os.path.getsize(name)
            raise GosBuildError(f"{name}: not an SRTM HGT tile ({size} bytes; SRTM1 has 25934402, SRTM3 2884802)") from None
        raise GosBuildError(f"{name}: not a readable raster ({exc})") from None


def build_mosaic(paths: list[str], grid: Grid, out_vrt: str | Path) -> dict:
    """Write a VRT mosaic of the DEM ``paths`` at ``out_vrt``; check it covers the grid's AOI.

    Returns a summary (sources, CRS, resolution, covered fraction) for the log/datacard.
    """
    from .io import atomic_path

    if not paths:
        raise GosBuildError("inputs.dem: no DEM file given")
    srcs = [_describe_source(p) for p in paths]
    crs = srcs[0]["crs"]
    other = [s["path"] for s in srcs if s["crs"] != crs]
    if other:
        raise GosBuildError(f"inputs.dem: files are in different CRSs ({srcs[0]['path']}: {crs}; "
                            f"{other[0]}: another); reproject them to one CRS")
    res = min(abs(s["transform"].a) for s in srcs)
    resy = min(abs(s["transform"].e) for s in srcs)
    # the mosaic lattice: the first source's, extended over all bounds
    t0 = srcs[0]["transform"]
    x0 = min(s["bounds"][0] for s in srcs)
    y1 = max(s["bounds"][3] for s in srcs)
    x1 = max(s["bounds"][2] for s in srcs)
    y0 = min(s["bounds"][1] for s in srcs)
    x0 = t0.c + math.floor((x0 - t0.c) / res + 1e-6) * res
    y1 = t0.f - math.floor((t0.f - y1) / resy + 1e-6) * resy
    width = int(math.ceil((x1 - x0) / res - 1e-6))
    height = int(math.ceil((y1 - y0) / resy - 1e-6))

    fraction, missing = _coverage(srcs, crs, grid)
    if fraction < 0.9999:
        hint = f"; missing SRTM tiles: {', '.join(missing[:12])}" if missing else ""
        raise GosBuildError(f"inputs.dem: the DEM files cover {100 * fraction:.1f} % of the AOI{hint}")

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
        f"  <SRS>{escape(crs.to_wkt())}</SRS>\n"
        f"  <GeoTransform>{x0:.12g}, {res:.12g}, 0, {y1:.12g}, 0, {-resy:.12g}</GeoTransform>\n"
        f'  <VRTRasterBand dataType="Float32" band="1">\n'
        f"    <NoDataValue>{SOURCE_NODATA:g}</NoDataValue>\n"
        + "".join(sources)
        + "  </VRTRasterBand>\n</VRTDataset>\n"
    )
    with atomic_path(out_vrt) as tmp:
        Path(tmp).write_text(vrt, encoding="utf-8")
    log.info("DEM mosaic: %d file(s), %s, %.6g x %.6g, %d x %d px, covers %.2f %% of the AOI -> %s",
             len(srcs), crs.to_string(), res, resy, width, height, 100 * fraction, out_vrt)
    return {"sources": paths, "crs": crs.to_string(), "resolution": [res, resy], "aoi_covered": fraction}


def _coverage(srcs, crs, grid: Grid) -> tuple[float, list[str]]:
    """Fraction of the AOI inside the union of the sources' footprints, and missing SRTM tile names."""
    to_grid = Transformer.from_crs(crs, grid.crs, always_xy=True)
    foot = shapely.union_all([
        shapely.transform(shapely.segmentize(box(*s["bounds"]), max((s["bounds"][2] - s["bounds"][0]) / 32, 1e-9)),
                          lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])))
        for s in srcs
    ])
    aoi = grid.aoi
    fraction = aoi.intersection(foot).area / aoi.area
    missing: list[str] = []
    if fraction < 0.9999 and all(s["driver"] == "SRTMHGT" for s in srcs):
        lon0, lat0, lon1, lat1 = transform_bounds(grid.crs, "EPSG:4326", *aoi.bounds, densify_pts=21)
        to_ll = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True)
        aoi_ll = shapely.transform(aoi, lambda xy: np.column_stack(to_ll.transform(xy[:, 0], xy[:, 1])))
        have = {os.path.basename(s["path"]).split(".")[0].upper() for s in srcs}
        for lat in range(math.floor(lat0), math.ceil(lat1)):
            for lon in range(math.floor(lon0), math.ceil(lon1)):
                name = hgt_name(lat, lon)
                if name[:-4] not in have and aoi_ll.intersects(box(lon, lat, lon + 1, lat + 1)):
                    missing.append(name)
    return fraction, missing


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
        fc, fr = _frac_index(inv, *to_src.transform(ex, ey))
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
        fc, fr = _frac_index(inv, *to_src.transform(x, y))
        out[rows[0] : rows[-1] + 1] = resample_points(z, fr - row0, fc - col0, resampling, void=SOURCE_NODATA)
    return out


def _frac_index(inv, sx, sy):
    """Fractional source pixel indices (col, row) of points, 0.0 = the centre of pixel 0."""
    return inv.a * sx + inv.b * sy + inv.c - 0.5, inv.d * sx + inv.e * sy + inv.f - 0.5


def fill_voids(z: np.ndarray) -> np.ndarray:
    """Fill SOURCE_NODATA voids by inverse-distance interpolation (<= FILL_DISTANCE px); bigger stay nodata."""
    from rasterio.fill import fillnodata

    valid = z != SOURCE_NODATA
    if valid.all() or not valid.any():
        return z
    filled = fillnodata(z.copy(), mask=valid.astype(np.uint8), max_search_distance=FILL_DISTANCE,
                        smoothing_iterations=0)
    return filled.astype(np.float32)
