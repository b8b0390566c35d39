"""The seven DEM parameters of GOS10m, from a projected DEM in metres.

===========  ==================================================================
layer        definition (float32; w = ``window``, an odd number of pixels)
===========  ==================================================================
hillshade    GDAL's formula on the Horn (1981) gradient: 1 + 254 cos(i), 1 when
             the sun is below the local horizon (``gdaldem hillshade``)
slope        degrees, Horn (1981), richdem ``slope_degrees``
mean         mean elevation over w x w (``local_statistic: median``: the median)
std          standard deviation of elevation over w x w (population, ddof = 0)
northness    cos(aspect), aspect from richdem (0 = north, clockwise); 0 on flats
eastness     sin(aspect); 0 on flats
dev          (z - mean) / std over w x w (Wilson & Gallant's DEV, always the
             mean); 0 where std = 0
===========  ==================================================================

Rules the code keeps:

* A value is nodata (-9999) where its stencil touches nodata: the 3 x 3 Horn
  window for hillshade/slope/northness/eastness, the w x w window for
  mean/std/dev. Voids are filled upstream (:mod:`gos_build.dem`).
* Every function takes an array padded by a *halo* of real neighbours and
  returns the inner part; the result of a pixel never depends on where the
  array starts, so tile-wise == whole-raster, bit for bit.
* The standalone command (:func:`terrain_file`) has no neighbours beyond the
  DEM's edge: it pads by repeating the edge values, so the outermost pixels
  are computed as if the terrain continued flat outwards. ``gdaldem`` leaves
  them nodata (or extrapolates with ``-compute_edges``): compare inside the
  one-pixel border.
* A window standard deviation below 1e-4 m is rounding noise of a flat
  surface: std = 0 and dev = 0 there.
"""

from __future__ import annotations

import logging
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from .errors import GosBuildError
from .layout import ELEVATION_LAYERS, TERRAIN_NODATA, TERRAIN_PARAMETERS, layers_from_config, ordered_extra

log = logging.getLogger(__name__)

LAYERS = TERRAIN_PARAMETERS  # the seven parameters, in band order after the DEM
HILLSHADE, SLOPE, MEAN, STD, NORTHNESS, EASTNESS, DEV = TERRAIN_PARAMETERS
NODATA = TERRAIN_NODATA
_FLAT_VAR = 1e-8  # m^2: (1e-4 m)^2


def halo_for(window: int) -> int:
    """Pixels of real neighbours every side needs for all seven layers."""
    return max(1, window // 2)


@contextmanager
def quiet_c_output():
    """Silence C/C++ writes to file descriptors 1 and 2 (richdem's progress bar).

    ``contextlib.redirect_stderr`` only swaps Python's ``sys.stderr``; richdem
    writes from C++ straight to the descriptors, so they are duplicated to a
    temporary file and restored afterwards. What was written goes to the debug log.
    """
    import sys

    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile(mode="w+b") as sink:
        try:
            os.dup2(sink.fileno(), 1)
            os.dup2(sink.fileno(), 2)
            yield
        finally:
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace").strip()
            if text:
                log.debug("richdem said: %s", text[-2000:])


def richdem_slope_aspect(z: np.ndarray, res_x: float, res_y: float) -> tuple[np.ndarray, np.ndarray]:
    """Slope (degrees) and aspect (degrees from north, clockwise) of ``z`` with richdem.

    ``z``: float32 metres, NaN = nodata. richdem needs a finite no-data value
    (NaN never compares equal and would spread) and a GDAL-ordered geotransform
    (an ``Affine`` would be read as a cell size of 0/1).
    """
    import richdem as rd

    filled = np.where(np.isnan(z), NODATA, z).astype(np.float32)
    arr = rd.rdarray(filled, no_data=NODATA)
    arr.geotransform = (0.0, float(res_x), 0.0, 0.0, 0.0, -float(res_y))
    with quiet_c_output():
        slope = np.asarray(rd.TerrainAttribute(arr, attrib="slope_degrees"), dtype=np.float64)
        aspect = np.asarray(rd.TerrainAttribute(arr, attrib="aspect"), dtype=np.float64)
    return slope, aspect


def horn_gradient(z: np.ndarray, res_x: float, res_y: float) -> tuple[np.ndarray, np.ndarray]:
    """dz/dx (east) and dz/dy (north) by Horn (1981) for the inner part of ``z`` (1-pixel halo)."""
    z = z.astype(np.float64)
    a, b, c = z[:-2, :-2], z[:-2, 1:-1], z[:-2, 2:]
    d, f = z[1:-1, :-2], z[1:-1, 2:]
    g, h, i = z[2:, :-2], z[2:, 1:-1], z[2:, 2:]
    dzdx = ((c + 2 * f + i) - (a + 2 * d + g)) / (8.0 * res_x)
    dzdy = ((a + 2 * b + c) - (g + 2 * h + i)) / (8.0 * res_y)  # row 0 is north
    return dzdx, dzdy


def hillshade(dzdx: np.ndarray, dzdy: np.ndarray, azimuth: float = 315.0, altitude: float = 45.0) -> np.ndarray:
    """GDAL's hillshade: 1 + 254 cos(incidence), 1 where the sun is behind the slope; float64."""
    az, alt = np.radians(azimuth), np.radians(altitude)
    cang = (np.sin(alt) - np.cos(alt) * (dzdx * np.sin(az) + dzdy * np.cos(az))) / np.sqrt(
        1.0 + dzdx * dzdx + dzdy * dzdy
    )
    return np.where(cang <= 0.0, 1.0, 1.0 + 254.0 * cang)


def box_sum(a: np.ndarray, window: int) -> np.ndarray:
    """Sum over every ``window`` x ``window`` box (valid part only), in a fixed order per box."""
    rows = sliding_window_view(a, window, axis=1).sum(axis=-1)
    return sliding_window_view(rows, window, axis=0).sum(axis=-1)


def _any_3x3(a: np.ndarray) -> np.ndarray:
    """For the inner part of a boolean array (1-pixel frame): whether any of its 3 x 3 neighbourhood is set."""
    h, w = a.shape[0] - 2, a.shape[1] - 2
    out = np.zeros((h, w), dtype=bool)
    for di in range(3):
        for dj in range(3):
            out |= a[di : di + h, dj : dj + w]
    return out


def local_mean_std(z: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population standard deviation over ``window`` x ``window`` (valid part, NaN propagates)."""
    z = z.astype(np.float64)
    n = float(window * window)
    mean = box_sum(z, window) / n
    var = box_sum(z * z, window) / n - mean * mean
    var[var < _FLAT_VAR] = 0.0
    return mean, np.sqrt(var)


def terrain_layers(
    z: np.ndarray,
    halo: int,
    res_x: float,
    res_y: float,
    window: int = 9,
    local_statistic: str = "mean",
    azimuth: float = 315.0,
    altitude: float = 45.0,
) -> dict[str, np.ndarray]:
    """The seven layers for the inner part of ``z`` (float32 metres, NaN nodata, padded by ``halo``).

    Returns float32 arrays of shape ``(H - 2 halo, W - 2 halo)`` with -9999 for nodata.
    """
    if window % 2 != 1 or window < 3:
        raise GosBuildError(f"terrain.window: expected an odd integer >= 3, got {window}")
    if halo < halo_for(window):
        raise ValueError(f"halo {halo} is smaller than the {halo_for(window)} pixels window {window} needs")
    H, W = z.shape
    inner = (slice(halo, H - halo), slice(halo, W - halo))
    k = window // 2
    invalid = np.isnan(z)
    near_invalid_3 = _any_3x3(invalid[halo - 1 : H - halo + 1, halo - 1 : W - halo + 1])

    # slope/aspect from richdem, on the array with a 1-pixel frame beyond the inner part
    framed = z[halo - 1 : H - halo + 1, halo - 1 : W - halo + 1]
    slope, aspect = richdem_slope_aspect(framed, res_x, res_y)
    slope, aspect = slope[1:-1, 1:-1], aspect[1:-1, 1:-1]
    flat = slope == 0.0
    northness = np.where(flat, 0.0, np.cos(np.radians(aspect)))
    eastness = np.where(flat, 0.0, np.sin(np.radians(aspect)))

    dzdx, dzdy = horn_gradient(framed, res_x, res_y)
    shade = hillshade(dzdx, dzdy, azimuth, altitude)

    boxed = z[halo - k : H - halo + k, halo - k : W - halo + k]
    mean, std = local_mean_std(boxed, window)
    centre = z[inner].astype(np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        dev = np.where(std > 0.0, (centre - mean) / std, 0.0)
    if local_statistic == "median":
        from scipy import ndimage  # only here: scipy.ndimage costs a third of a second to import

        med = ndimage.median_filter(np.where(np.isnan(boxed), 0.0, boxed), size=window, mode="nearest")
        mean = med[k:-k, k:-k]
    elif local_statistic != "mean":
        raise GosBuildError(f"terrain.local_statistic: expected 'mean' or 'median', got '{local_statistic}'")
    near_invalid_w = box_sum(np.isnan(boxed).astype(np.float64), window) > 0

    out = {}
    for name, arr, bad in (
        (HILLSHADE, shade, near_invalid_3),
        (SLOPE, slope, near_invalid_3),
        (MEAN, mean, near_invalid_w),
        (STD, std, near_invalid_w),
        (NORTHNESS, northness, near_invalid_3),
        (EASTNESS, eastness, near_invalid_3),
        (DEV, dev, near_invalid_w),
    ):
        a = arr.astype(np.float32)
        a[bad] = NODATA
        out[name] = a
    return out


# -- files ---------------------------------------------------------------------
def check_metric_crs(crs, path) -> None:
    """Refuse a DEM whose CRS is geographic or not in metres."""
    if crs is None:
        raise GosBuildError(f"{path}: the DEM has no CRS; terrain parameters need a projected CRS in metres")
    if crs.is_geographic:
        raise GosBuildError(
            f"{path}: the DEM is in a geographic CRS ({crs.to_string()}); slope and hillshade need metres: "
            "reproject it first (e.g. gdalwarp -t_srs EPSG:326zz -tr 10 10)"
        )
    units = (crs.linear_units or "").lower()
    if units not in ("metre", "meter", "m", "metres", "meters"):
        raise GosBuildError(f"{path}: the DEM's CRS is in '{crs.linear_units}', not metres; reproject it first")


def terrain_file(
    dem_path: str | Path,
    out_dir: str | Path,
    window: int = 9,
    local_statistic: str = "mean",
    azimuth: float = 315.0,
    altitude: float = 45.0,
    block: int = 1024,
) -> dict[str, Path]:
    """``gos-build terrain``: write OUT_DIR/<layer>.tif for a projected DEM, block by block.

    Outputs are float32 GeoTIFFs on the DEM's own grid, nodata -9999, DEFLATE
    compressed, written under temporary names and renamed when all are complete.
    """
    import rasterio
    from rasterio.errors import RasterioIOError
    from rasterio.windows import Window

    from .io import geotiff_profile, writing

    dem_path, out_dir = Path(dem_path), Path(out_dir)
    try:
        src = rasterio.open(dem_path)
    except RasterioIOError as exc:
        raise GosBuildError(f"{dem_path}: not a readable raster ({exc})") from None
    with src:
        check_metric_crs(src.crs, dem_path)
        if src.transform.b != 0 or src.transform.d != 0:
            raise GosBuildError(f"{dem_path}: rotated rasters are not supported; warp it north-up first")
        res_x, res_y = abs(src.transform.a), abs(src.transform.e)
        halo = halo_for(window)
        profile = geotiff_profile(src.width, src.height, 1, "float32", src.crs, src.transform, NODATA)
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise GosBuildError(f"{out_dir}: cannot create the output folder ({exc.strerror})") from None
        tmp = {name: out_dir / f".{name}.tif.tmp" for name in LAYERS}
        dsts = {}
        any_valid = False
        try:
            with writing(out_dir):  # a full disk: one line naming the folder
                for name in LAYERS:
                    dsts[name] = rasterio.open(tmp[name], "w", **profile)
                    dsts[name].set_band_description(1, name)
                nodata = src.nodata
                for r0 in range(0, src.height, block):
                    for c0 in range(0, src.width, block):
                        h, w = min(block, src.height - r0), min(block, src.width - c0)
                        win = Window(c0 - halo, r0 - halo, w + 2 * halo, h + 2 * halo)
                        z = _read_edge_padded(src, win, nodata)
                        if not np.isnan(z[halo:-halo, halo:-halo]).all():
                            any_valid = True
                        layers = terrain_layers(z, halo, res_x, res_y, window, local_statistic, azimuth, altitude)
                        for name in LAYERS:
                            dsts[name].write(layers[name], 1, window=Window(c0, r0, w, h))
                for d in dsts.values():
                    d.close()
            if not any_valid:
                raise GosBuildError(f"{dem_path}: every pixel is nodata")
            done = {}
            for name in LAYERS:
                final = out_dir / f"{name}.tif"
                os.replace(tmp[name], final)
                done[name] = final
            log.info("terrain: %d x %d px from %s -> %s", src.width, src.height, dem_path, out_dir)
            return done
        finally:
            for d in dsts.values():
                if not d.closed:
                    d.close()
            for p in tmp.values():
                p.unlink(missing_ok=True)


def terrain_window(
    grid,
    window,
    mosaic: str | Path,
    window_px: int = 9,
    local_statistic: str = "mean",
    resampling: str = "cubic",
    azimuth: float = 315.0,
    altitude: float = 45.0,
    extra: dict | None = None,
    label: str = "window",
    block_rows: int = 512,
) -> np.ndarray:
    """The DEM warped onto a window of the grid (read with a halo) and its terrain layers: float32
    (8 + E, h, w), bands the registry's ``elevation`` (:func:`gos_build.layout.layers_from_config`) -- the DEM, the seven parameters, then the E layers of
    ``extra`` (config ``terrain.extra``: name -> kind and parameters, :mod:`gos_build.geomorphometry`)
    -- nodata -9999. ``window_px``: the terrain window (config ``terrain.window``); ``label`` names the
    window in messages (a tile id). The DEM is read as far around the window as the widest stencil
    needs (a 2 km disc: 200 px each side), not further.
    """
    from . import geomorphometry
    from .dem import dem_for_window

    extra = ordered_extra(extra)  # the registry's order
    halo = max([halo_for(window_px)] + [geomorphometry.halo_px(spec, grid.resolution) for spec in extra.values()])
    h, w = int(window.height), int(window.width)
    z = dem_for_window(mosaic, grid, grid.halo_window(window, halo), resampling)
    if np.isnan(z[halo:-halo, halo:-halo]).all():
        raise GosBuildError(f"{mosaic}: no DEM value on tile {label}")
    out = np.empty((len(ELEVATION_LAYERS) + len(extra), h, w), np.float32)
    dem = out[0]
    dem[:] = z[halo:-halo, halo:-halo]
    dem[np.isnan(dem)] = NODATA
    block_rows = max(block_rows, 4 * halo)  # a wide halo: fewer, taller blocks (the halo rows are read again)
    for r0 in range(0, h, block_rows):  # bounded memory; rows see real neighbours through the halo
        n = min(block_rows, h - r0)
        part = z[r0 : r0 + n + 2 * halo]
        layers = terrain_layers(part, halo, grid.resolution, grid.resolution, window_px, local_statistic, azimuth,
                                altitude)
        for i, name in enumerate(LAYERS, start=1):
            out[i, r0 : r0 + n] = layers[name]
        computed = geomorphometry.compute_many(extra, part, halo, grid.resolution)
        for i, a in enumerate(computed.values(), start=len(ELEVATION_LAYERS)):
            a[np.isnan(a)] = NODATA
            out[i, r0 : r0 + n] = a
    valid = dem[dem != NODATA]
    log.info("terrain %s: %d x %d px, DEM %.1f-%.1f m, nodata %.4f%s", label, w, h, float(valid.min()),
             float(valid.max()), 1.0 - valid.size / dem.size,
             f", extra layers {', '.join(extra)} (halo {halo} px)" if extra else "")
    return out


def terrain_options(section: dict) -> dict:
    """:func:`terrain_window`'s options from the config's ``terrain`` section (validated, defaults filled)."""
    return {"window_px": section["window"], "local_statistic": section["local_statistic"],
            "resampling": section["resampling"], "azimuth": section["hillshade"]["azimuth"],
            "altitude": section["hillshade"]["altitude"], "extra": section.get("extra") or {}}


def terrain_tile(grid, tile_id: str, mosaic: str | Path, out: str | Path, **options) -> Path:
    """One processing tile: :func:`terrain_window` over the tile (``options``: its keyword options, e.g.
    :func:`terrain_options`), written to ``out``: a float32 GeoTIFF of those bands on the
    tile's pixels of the grid, nodata -9999.
    """
    from .tiles import write_tile

    tile = grid.tile(tile_id)
    layers = terrain_window(grid, tile.window, mosaic, label=tile_id, **options)
    registry = layers_from_config({"terrain": {"extra": options.get("extra") or {}}})
    write_tile(out, grid, tile, layers, NODATA, list(registry.elevation),
               tags=[{"units": registry[name].units} for name in registry.elevation])
    log.info("terrain tile %s -> %s", tile_id, out)
    return Path(out)


def _read_edge_padded(src, win, nodata) -> np.ndarray:
    """Read a window that may reach past the raster; outside is filled by repeating edge values."""
    from rasterio.windows import Window

    r0, c0 = int(win.row_off), int(win.col_off)
    r1, c1 = r0 + int(win.height), c0 + int(win.width)
    rr0, cc0 = max(r0, 0), max(c0, 0)
    rr1, cc1 = min(r1, src.height), min(c1, src.width)
    z = src.read(1, window=Window(cc0, rr0, cc1 - cc0, rr1 - rr0), out_dtype="float32")
    if nodata is not None and not np.isnan(nodata):
        z[z == np.float32(nodata)] = np.nan
    return np.pad(z, ((rr0 - r0, r1 - rr1), (cc0 - c0, c1 - cc1)), mode="edge")
