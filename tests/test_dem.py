"""DEM stage: SRTM inputs -> mosaic -> void-filled, warped 10 m DEM per tile -> terrain tiles."""

from __future__ import annotations

import json
import shutil
import subprocess
import zipfile

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from scipy import ndimage

from helpers import require_tool, run_cli
from gos_build.dem import build_mosaic, dem_for_window
from gos_build.inputs import resolve
from gos_build.inputs.dem import gdal_paths
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.layout import ELEVATION_LAYERS as TILE_BANDS
from gos_build.terrain import NODATA, terrain_tile

AOI = (2.965, 45.725, 2.995, 45.755)  # ~2.3 x 3.3 km inside the Auvergne demo inputs


def _manifest(patterns, grid):
    """The dem manifest of ``inputs.dem: patterns`` (the resolver the workflow runs)."""
    return resolve("dem", {"inputs": {"dem": [str(p) for p in patterns]}}, grid)


def _mosaic(demo, tmp_path, grid, pattern="srtm/*.hgt"):
    vrt = tmp_path / "mosaic.vrt"
    build_mosaic(_manifest([demo / pattern], grid), vrt)
    return vrt


def _assemble(grid, tiles_dir, band):
    out = np.full((grid.height, grid.width), np.nan, dtype=np.float32)
    for t in grid.tiles():
        with rasterio.open(tiles_dir / f"{t.id}.tif") as ds:
            assert ds.transform == grid.window_transform(t.window)
            out[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] = ds.read(band)
    return out


@pytest.fixture(scope="module")
def tiled_and_untiled(auvergne_demo, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("tiles")
    small = build_grid(bbox=AOI, tile_chips=2)  # 1280 m tiles
    whole = build_grid(bbox=AOI, tile_chips=64)  # one tile
    assert (small.x_min, small.y_max, small.width, small.height) == (whole.x_min, whole.y_max, whole.width, whole.height)
    assert len(small.tiles()) >= 9 and len(whole.tiles()) == 1
    vrt = _mosaic(auvergne_demo, tmp, small)
    for name, grid in (("small", small), ("whole", whole)):
        for t in grid.tiles():
            terrain_tile(grid, t.id, vrt, tmp / name / f"{t.id}.tif")
    return small, whole, tmp, vrt


def test_tiled_equals_untiled_bit_for_bit(tiled_and_untiled):
    small, whole, tmp, _ = tiled_and_untiled
    for band, name in enumerate(TILE_BANDS, start=1):
        a = _assemble(small, tmp / "small", band)
        b = _assemble(whole, tmp / "whole", band)
        assert np.array_equal(a, b), name


def test_voids_are_filled_before_warping(tiled_and_untiled, auvergne_demo):
    small, _, tmp, _ = tiled_and_untiled
    dem = _assemble(small, tmp / "small", 1)
    assert not (dem == NODATA).any() and not np.isnan(dem).any()
    # the demo punched voids inside the bbox: some lie under this AOI
    with rasterio.open(auvergne_demo / "srtm" / "N45E002.hgt") as ds:
        win = rasterio.windows.from_bounds(*AOI, transform=ds.transform).round_offsets().round_lengths()
        assert (ds.read(1, window=win) == -32768).any(), "test AOI should contain SRTM voids"
    assert 100 < dem.min() and dem.max() < 2000


def test_bilinear_dem_matches_independent_sampling(auvergne_demo, tmp_path):
    grid = build_grid(bbox=AOI, tile_chips=64)
    vrt = _mosaic(auvergne_demo, tmp_path, grid)
    t = grid.tiles()[0]
    z = dem_for_window(vrt, grid, t.window, resampling="bilinear")
    # sample the HGT posts at each 10 m pixel centre, bilinearly, with scipy (rows/cols from lon/lat)
    with rasterio.open(auvergne_demo / "srtm" / "N45E002.hgt") as ds:
        raw = ds.read(1).astype(np.float64)
    rows, cols = np.mgrid[0 : t.height, 0 : t.width]
    x = grid.x_min + (t.col_off + cols + 0.5) * 10
    y = grid.y_max - (t.row_off + rows + 0.5) * 10
    lon, lat = Transformer.from_crs(grid.crs, "EPSG:4326", always_xy=True).transform(x, y)
    r, c = (46 - lat) * 3600, (lon - 2) * 3600  # post (0, 0) is at 46 N, 2 E
    ref = ndimage.map_coordinates(raw, [r, c], order=1)
    near_void = ndimage.map_coordinates((raw == -32768).astype(float), [r, c], order=1) > 0
    assert (~near_void).mean() > 0.98
    assert np.abs(z[~near_void] - ref[~near_void]).max() < 0.01


def test_tile_terrain_matches_gdaldem_on_the_tile_dem(tiled_and_untiled, tmp_path):
    small, _, tmp, _ = tiled_and_untiled
    gdaldem = require_tool("gdaldem")
    t = small.tiles()[4]
    src = tmp / "small" / f"{t.id}.tif"
    with rasterio.open(src) as ds:
        profile = ds.profile | {"count": 1}
        dem, slope, hs = ds.read(1), ds.read(3), ds.read(2)
        assert ds.descriptions == TILE_BANDS
    with rasterio.open(tmp_path / "dem.tif", "w", **profile) as ds:
        ds.write(dem, 1)
    for mode in ("slope", "hillshade"):
        subprocess.run([gdaldem, mode, str(tmp_path / "dem.tif"), str(tmp_path / f"{mode}.tif"), "-q"], check=True)
    with rasterio.open(tmp_path / "slope.tif") as ds:
        ref_slope = ds.read(1)
    with rasterio.open(tmp_path / "hillshade.tif") as ds:
        ref_hs = ds.read(1).astype(float)
    inner = (slice(1, -1), slice(1, -1))  # gdaldem has no halo: its border is nodata
    assert np.abs(slope[inner] - ref_slope[inner]).max() < 1e-3
    assert np.abs(hs[inner] - ref_hs[inner]).max() <= 1.0


def test_zipped_hgt_is_read_in_place(auvergne_demo, tmp_path):
    for hgt in sorted((auvergne_demo / "srtm").glob("*.hgt")):
        with zipfile.ZipFile(tmp_path / f"{hgt.stem}.SRTMGL1.hgt.zip", "w", zipfile.ZIP_DEFLATED) as zf:
            zf.write(hgt, hgt.name)
    grid = build_grid(bbox=AOI, tile_chips=64)
    paths = gdal_paths([str(tmp_path / "*.hgt.zip")])
    assert all(p.startswith("/vsizip/") and p.endswith(".hgt") for p in paths)
    manifest = _manifest([tmp_path / "*.hgt.zip"], grid)
    assert manifest["sources"] == paths and all(f["bytes"] > 0 for f in manifest["files"])
    build_mosaic(manifest, tmp_path / "zip.vrt")
    plain = _mosaic(auvergne_demo, tmp_path, grid)
    t = grid.tiles()[0]
    assert np.array_equal(dem_for_window(tmp_path / "zip.vrt", grid, t.window),
                          dem_for_window(plain, grid, t.window))
    assert not list(tmp_path.glob("*.hgt"))  # nothing was unpacked


def test_dem_not_covering_the_aoi_names_fraction_and_missing_tiles(auvergne_demo, tmp_path):
    only_east = tmp_path / "srtm"
    only_east.mkdir()
    shutil.copy(auvergne_demo / "srtm" / "N45E003.hgt", only_east)
    grid = build_grid(bbox=(2.98, 45.72, 3.02, 45.76))  # straddles 3 E
    res = run_cli("inputs", "dem", "--grid", str(_write_grid(grid, tmp_path)), "--out", str(tmp_path / "dem.json"),
                  "--config", json.dumps({"inputs": {"dem": [str(only_east / "*.hgt")]}}))
    assert res.returncode == 2
    msg = res.stderr.strip()
    assert msg.startswith("gos-build: error: inputs.dem: the DEM files cover ")
    frac = float(msg.split("cover ")[1].split(" %")[0])
    assert 40 < frac < 60  # about half the AOI lies west of 3 E
    assert msg.endswith("missing SRTM tiles: N45E002.hgt")
    assert not (tmp_path / "dem.json").exists()


def _write_grid(grid, folder):
    path = folder / "grid.json"
    path.write_text(grid.to_json())
    return path


def test_bad_dem_inputs(tmp_path):
    grid = build_grid(bbox=AOI)
    with pytest.raises(GosBuildError, match=r"inputs.dem: '.*nothing\*.hgt' matches no file"):
        _manifest([tmp_path / "nothing*.hgt"], grid)
    short = tmp_path / "N45E002.hgt"
    short.write_bytes(b"\x00\x01" * 1000)
    with pytest.raises(GosBuildError, match=r"N45E002.hgt: not an SRTM HGT tile \(2000 bytes"):
        _manifest([short], grid)
    empty = tmp_path / "N45E003.hgt"
    np.full((3601, 3601), -32768, dtype=">i2").tofile(empty)
    with pytest.raises(GosBuildError, match=r"N45E003.hgt: every pixel of the DEM is nodata"):
        _manifest([empty], grid)
    bad_zip = tmp_path / "N45E002.hgt.zip"
    bad_zip.write_bytes(b"PK not a zip")
    with pytest.raises(GosBuildError, match="not a readable zip file"):
        gdal_paths([str(bad_zip)])
