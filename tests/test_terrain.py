"""Terrain parameters against GDAL's gdaldem and against independent numpy computations.

The DEM is real: matplotlib's Jacksboro fault sample (3" SRTM-like, Tennessee),
written as a projected GeoTIFF with square 30 m pixels.
"""

from __future__ import annotations

import subprocess

import numpy as np
import pytest
import rasterio
from affine import Affine
from numpy.lib.stride_tricks import sliding_window_view

from helpers import require_tool, run_cli
from gos_build.errors import GosBuildError
from gos_build.terrain import LAYERS, NODATA, halo_for, richdem_slope_aspect, terrain_file, terrain_layers

INNER = (slice(1, -1), slice(1, -1))  # everything but the one-pixel border


def _write(path, z, crs="EPSG:32616", res=(30.0, 30.0), nodata=-9999.0):
    with rasterio.open(path, "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype=z.dtype, crs=crs, transform=Affine(res[0], 0, 730000, 0, -res[1], 4070000),
                       nodata=nodata) as ds:
        ds.write(z, 1)
    return path


@pytest.fixture(scope="module")
def jacksboro(tmp_path_factory):
    import matplotlib.cbook as cbook

    z = np.asarray(cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"], dtype=np.float32)
    folder = tmp_path_factory.mktemp("jacksboro")
    dem = _write(folder / "dem.tif", z)  # square pixels: gdaldem aspect ignores the pixel size
    res = run_cli("terrain", str(dem), str(folder / "out"))
    assert res.returncode == 0, res.stderr
    return folder, z, res


def _read(path):
    with rasterio.open(path) as ds:
        return ds.read(1).astype(np.float64)


def _gdaldem(folder, mode, *extra):
    exe = require_tool("gdaldem")
    out = folder / f"gdal_{mode}.tif"
    subprocess.run([exe, mode, str(folder / "dem.tif"), str(out), "-q", *extra], check=True)
    return _read(out)


def test_outputs_are_float32_on_the_dem_grid_with_nodata(jacksboro):
    folder, z, _ = jacksboro
    for name in LAYERS:
        with rasterio.open(folder / "out" / f"{name}.tif") as ds:
            assert ds.dtypes == ("float32",) and ds.nodata == NODATA
            assert ds.shape == z.shape and ds.crs.to_epsg() == 32616
            assert ds.transform == Affine(30, 0, 730000, 0, -30, 4070000)
            assert ds.descriptions == (name,)


def test_slope_matches_gdaldem(jacksboro):
    folder, _, _ = jacksboro
    ours, ref = _read(folder / "out" / "slope.tif"), _gdaldem(folder, "slope")
    assert np.abs(ours[INNER] - ref[INNER]).max() < 1e-3
    assert ref[INNER].max() > 20  # a real, steep DEM


def test_hillshade_matches_gdaldem(jacksboro):
    folder, _, _ = jacksboro
    ours = _read(folder / "out" / "hillshade.tif")
    ref = _gdaldem(folder, "hillshade", "-az", "315", "-alt", "45")
    assert np.abs(ours[INNER] - ref[INNER]).max() <= 1.0
    assert ours[INNER].min() >= 1 and ours[INNER].max() <= 255


def test_hillshade_other_sun_matches_gdaldem(jacksboro, tmp_path):
    folder, _, _ = jacksboro
    res = run_cli("terrain", str(folder / "dem.tif"), str(tmp_path), "--azimuth", "135", "--altitude", "20")
    assert res.returncode == 0, res.stderr
    ref = _gdaldem(folder, "hillshade", "-az", "135", "-alt", "20")
    assert np.abs(_read(tmp_path / "hillshade.tif")[INNER] - ref[INNER]).max() <= 1.0


def test_northness_eastness_match_gdaldem_aspect(jacksboro):
    folder, _, _ = jacksboro
    aspect = _gdaldem(folder, "aspect")  # -9999 on flat cells
    north, east = _read(folder / "out" / "northness.tif"), _read(folder / "out" / "eastness.tif")
    sloped = aspect[INNER] != -9999
    assert sloped.mean() > 0.95
    assert np.abs(north[INNER][sloped] - np.cos(np.radians(aspect[INNER][sloped]))).max() < 1e-4
    assert np.abs(east[INNER][sloped] - np.sin(np.radians(aspect[INNER][sloped]))).max() < 1e-4
    # flat cells: 0, not cos/sin of richdem's 270 degrees
    assert (~sloped).sum() > 0
    assert np.all(north[INNER][~sloped] == 0) and np.all(east[INNER][~sloped] == 0)


def test_mean_std_dev_against_direct_window_computation(jacksboro):
    folder, z, _ = jacksboro
    w = 9
    win = sliding_window_view(z.astype(np.float64), (w, w))  # each pixel's 9 x 9 neighbourhood
    mean, std = win.mean(axis=(2, 3)), win.std(axis=(2, 3))  # numpy's two-pass std
    k = w // 2
    inner = (slice(k, -k), slice(k, -k))  # pixels whose window lies inside the DEM
    centre = z[inner].astype(np.float64)
    dev = np.where(std > 0, (centre - mean) / np.where(std > 0, std, 1), 0)
    assert np.abs(_read(folder / "out" / "mean.tif")[inner] - mean).max() < 1e-3
    assert np.abs(_read(folder / "out" / "std.tif")[inner] - std).max() < 1e-3
    assert np.abs(_read(folder / "out" / "dev.tif")[inner] - dev).max() < 1e-4
    assert std.max() > 10


def test_median_statistic(jacksboro, tmp_path):
    folder, z, _ = jacksboro
    res = run_cli("terrain", str(folder / "dem.tif"), str(tmp_path), "--window", "5", "--local-statistic", "median")
    assert res.returncode == 0, res.stderr
    med = np.median(sliding_window_view(z.astype(np.float64), (5, 5)), axis=(2, 3))
    assert np.array_equal(_read(tmp_path / "mean.tif")[2:-2, 2:-2], med)


def test_richdem_progress_never_reaches_the_terminal(jacksboro):
    _, _, res = jacksboro
    assert res.stdout == ""
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert lines and all(" INFO " in ln or " DEBUG " in ln for ln in lines), res.stderr


def test_richdem_traps():
    # flat: richdem says aspect 270 where slope is 0
    z = np.full((7, 7), 100.0, dtype=np.float32)
    slope, aspect = richdem_slope_aspect(z, 10.0, 10.0)
    assert np.all(slope[1:-1, 1:-1] == 0) and np.all(aspect[1:-1, 1:-1] == 270)
    layers = terrain_layers(np.pad(z, 4, mode="edge"), 4, 10.0, 10.0, window=9)
    for name in ("northness", "eastness", "dev", "std", "slope"):
        assert np.all(layers[name] == 0), name
    assert np.allclose(layers["hillshade"], 1 + 254 * np.sin(np.radians(45)), atol=1e-3)
    # a plane rising 1 m per 10 m to the east: slope 45 deg, facing (downhill) west
    x = np.arange(11, dtype=np.float32)
    plane = np.tile(x * 10.0 / 10.0, (11, 1)) * 10.0  # z = x_metres
    layers = terrain_layers(plane, 4, 10.0, 10.0, window=3)
    assert np.allclose(layers["slope"], 45.0, atol=1e-4)
    assert np.allclose(layers["eastness"], -1.0, atol=1e-6) and np.allclose(layers["northness"], 0.0, atol=1e-6)
    # a NaN void: NaN must not leak as NaN; the stencils touching it are nodata, the rest is not
    holed = np.pad(z, 4, mode="edge").copy()
    holed[7, 7] = np.nan
    layers = terrain_layers(holed, 4, 10.0, 10.0, window=3)
    for name in LAYERS:
        a = layers[name]
        assert not np.isnan(a).any()
        assert (a == NODATA).sum() == 9, name  # the void and its 8 neighbours (3 x 3 stencils)
    # a geotransform given in GDAL order with 10 m cells: a 45 degree plane stays 45 degrees
    assert np.allclose(richdem_slope_aspect(plane, 10.0, 10.0)[0][1:-1, 1:-1], 45.0, atol=1e-4)


def test_tiled_equals_whole_raster(jacksboro):
    _, z, _ = jacksboro
    z = z.astype(np.float32)
    w = 9
    h = halo_for(w)
    whole = terrain_layers(np.pad(z, h, mode="edge"), h, 30.0, 30.0, window=w)
    padded = np.pad(z, h, mode="edge")
    H, W = z.shape
    rows, cols = [(0, 150), (150, H)], [(0, 200), (200, W)]
    for r0, r1 in rows:
        for c0, c1 in cols:
            tile = terrain_layers(padded[r0 : r1 + 2 * h, c0 : c1 + 2 * h], h, 30.0, 30.0, window=w)
            for name in LAYERS:
                assert np.array_equal(tile[name], whole[name][r0:r1, c0:c1]), (name, r0, c0)


def test_file_blocks_do_not_change_the_bytes(jacksboro, tmp_path):
    folder, _, _ = jacksboro
    terrain_file(folder / "dem.tif", tmp_path / "small", block=128)
    for name in LAYERS:
        assert np.array_equal(_read(tmp_path / "small" / f"{name}.tif"), _read(folder / "out" / f"{name}.tif"))


def test_geographic_dem_is_refused(tmp_path):
    dem = _write(tmp_path / "geo.tif", np.zeros((10, 10), np.float32), crs="EPSG:4326", res=(0.0003, 0.0003))
    res = run_cli("terrain", str(dem), str(tmp_path / "out"))
    assert res.returncode == 2
    assert res.stderr.strip().startswith(f"gos-build: error: {dem}: the DEM is in a geographic CRS")
    assert "need metres" in res.stderr and "Traceback" not in res.stderr
    assert not (tmp_path / "out").exists()


def test_dem_in_feet_is_refused(tmp_path):
    dem = _write(tmp_path / "ft.tif", np.zeros((10, 10), np.float32), crs="EPSG:2263")  # NY State Plane, US ft
    res = run_cli("terrain", str(dem), str(tmp_path / "out"))
    assert res.returncode == 2 and "not metres" in res.stderr


def test_corrupt_and_all_nodata_dems(tmp_path):
    bad = tmp_path / "broken.tif"
    bad.write_bytes(b"II*\x00garbage" * 10)
    res = run_cli("terrain", str(bad), str(tmp_path / "out"))
    assert res.returncode == 2 and res.stderr.startswith(f"gos-build: error: {bad}: not a readable raster")
    empty = _write(tmp_path / "empty.tif", np.full((20, 20), -9999, np.float32))
    res = run_cli("terrain", str(empty), str(tmp_path / "out2"))
    assert res.returncode == 2 and f"{empty}: every pixel is nodata" in res.stderr
    assert not list((tmp_path / "out2").glob("*.tif"))  # nothing half-written left behind


def test_window_must_be_odd():
    with pytest.raises(GosBuildError, match="terrain.window: expected an odd integer"):
        terrain_layers(np.zeros((20, 20), np.float32), 5, 10, 10, window=8)


def test_nodata_stencil_equals_a_3x3_maximum_filter():
    """The 3 x 3 'touches nodata' mask (numpy shifts, no scipy import per job) is scipy's maximum filter."""
    from scipy import ndimage

    from gos_build.terrain import _any_3x3

    rng = np.random.default_rng(3)
    for p in (0.001, 0.05, 0.5):
        a = rng.random((67, 45)) < p
        assert np.array_equal(_any_3x3(a), ndimage.maximum_filter(a, size=3, mode="constant", cval=False)[1:-1, 1:-1])
