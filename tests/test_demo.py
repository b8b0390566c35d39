"""Demo inputs: real formats read by GDAL's own drivers, deterministic bytes, learnable class signatures."""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from rasterio.features import rasterize

from helpers import AUVERGNE_BBOX, require_tool
from gos_build.demo import demo_inputs, mgrs_tile


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def _safe(folder: Path) -> Path:
    (safe,) = sorted((folder / "sentinel2").glob("*.SAFE"))
    return safe


@pytest.mark.slow  # extra demo products: several seconds
def test_same_arguments_same_bytes(auvergne_demo, tmp_path):
    again = tmp_path / "again"
    demo_inputs(AUVERGNE_BBOX, again, seed=3, baseline="05.09", cloud_fraction=0.1)
    a, b = _digest(auvergne_demo), _digest(again)
    assert a == b
    assert any(k.endswith(".jp2") for k in a) and any(k.endswith(".hgt") for k in a)


def test_srtm_tiles_read_by_gdal_srtmhgt_driver(auvergne_demo):
    manifest = json.loads((auvergne_demo / "demo-inputs.json").read_text())
    assert manifest["dem"] == ["srtm/N45E002.hgt", "srtm/N45E003.hgt"]  # the bbox margin reaches 2 E
    with rasterio.open(auvergne_demo / "srtm" / "N45E003.hgt") as ds:
        assert ds.driver == "SRTMHGT"
        assert ds.shape == (3601, 3601) and ds.dtypes[0] == "int16" and ds.nodata == -32768
        half = 0.5 / 3600
        assert ds.bounds.left == pytest.approx(3 - half) and ds.bounds.top == pytest.approx(46 + half)
        assert ds.bounds.right == pytest.approx(4 + half) and ds.bounds.bottom == pytest.approx(45 - half)
        assert ds.crs.to_epsg() == 4326
        z = ds.read(1)
    # the raw file is big-endian int16, read independently of GDAL
    raw = np.fromfile(auvergne_demo / "srtm" / "N45E003.hgt", dtype=">i2").reshape(3601, 3601)
    assert np.array_equal(raw, z)
    voids = z == -32768
    assert 0 < voids.sum() < 500  # a few small voids ...
    rows, cols = np.nonzero(voids)
    lon, lat = 3 + cols / 3600, 46 - rows / 3600
    lon0, lat0, lon1, lat1 = AUVERGNE_BBOX
    assert ((lon >= lon0) & (lon <= lon1) & (lat >= lat0) & (lat <= lat1)).all()  # ... inside the AOI
    valid = z[~voids]
    assert 100 < valid.min() and valid.max() < 2000



def test_sentinel2_product_read_by_gdal_sentinel2_driver(auvergne_demo):
    safe = _safe(auvergne_demo)
    assert re.fullmatch(r"S2B_MSIL2A_20201026T\d{6}_N0509_R046_T31TDL_20201026T\d{6}\.SAFE", safe.name)
    with rasterio.open(safe / "MTD_MSIL2A.xml") as ds:
        assert ds.driver == "SENTINEL2"
        assert ds.tags()["PROCESSING_BASELINE"] == "05.09"
        assert ds.tags()["BOA_QUANTIFICATION_VALUE"] == "10000"
        sub10 = [s for s in ds.subdatasets if s.endswith(":10m:EPSG_32631")]
    assert len(sub10) == 1
    with rasterio.open(sub10[0]) as s10:
        assert s10.crs.to_epsg() == 32631 and s10.res == (10.0, 10.0)
        assert s10.descriptions[:4] == ("B4, central wavelength 665 nm", "B3, central wavelength 560 nm",
                                        "B2, central wavelength 490 nm", "B8, central wavelength 842 nm")
        assert all(s10.tags(i)["BOA_ADD_OFFSET"] == "-1000" for i in range(1, 5))
        red = s10.read(1)
        # the granule covers the AOI
        from pyproj import Transformer

        x, y = Transformer.from_crs("EPSG:4326", "EPSG:32631", always_xy=True).transform(
            [AUVERGNE_BBOX[0], AUVERGNE_BBOX[2]], [AUVERGNE_BBOX[1], AUVERGNE_BBOX[3]])
        b = s10.bounds
        assert b.left < min(x) and b.right > max(x) and b.bottom < min(y) and b.top > max(y)
    refl = (red.astype(float) - 1000) / 10000
    assert 0.01 < np.median(refl) < 0.2  # vegetated land in red
    assert red.min() >= 1  # 0 is nodata and the granule is full


def test_sentinel2_product_read_by_gdal_cli(auvergne_demo):
    gdalinfo = require_tool("gdalinfo")
    out = subprocess.run([gdalinfo, str(_safe(auvergne_demo) / "MTD_MSIL2A.xml")], capture_output=True,
                         text=True, check=True).stdout
    assert "Driver: SENTINEL2/" in out
    assert re.search(r"SUBDATASET_1_NAME=SENTINEL2_L2A:.*MTD_MSIL2A\.xml:10m:EPSG_32631", out)
    assert "SUBDATASET_1_DESC=Bands B2, B3, B4, B8 with 10m resolution, UTM 31N" in out
    hgt = subprocess.run([gdalinfo, str(auvergne_demo / "srtm" / "N45E003.hgt")], capture_output=True,
                         text=True, check=True).stdout
    assert "Driver: SRTMHGT/" in hgt and "Size is 3601, 3601" in hgt
    assert "Upper Left  (   2.9998611,  46.0001389)" in hgt


@pytest.mark.slow  # extra demo products: several seconds
def test_scl_has_clouds_and_baselines_differ_only_by_the_offset(auvergne_demo, tmp_path):
    old = tmp_path / "old"
    demo_inputs(AUVERGNE_BBOX, old, seed=3, baseline="02.14", cloud_fraction=0.1)
    new_safe, old_safe = _safe(auvergne_demo), _safe(old)
    assert "_N0214_" in old_safe.name
    xml = (old_safe / "MTD_MSIL2A.xml").read_text()
    assert "<PROCESSING_BASELINE>02.14</PROCESSING_BASELINE>" in xml and "BOA_ADD_OFFSET" not in xml
    for band in ("B02", "B03", "B04", "B08"):
        (n,) = new_safe.rglob(f"*_{band}_10m.jp2")
        (o,) = old_safe.rglob(f"*_{band}_10m.jp2")
        with rasterio.open(n) as a, rasterio.open(o) as b:
            assert a.driver == "JP2OpenJPEG"
            dn_new, dn_old = a.read(1).astype(np.int32), b.read(1).astype(np.int32)
        assert np.array_equal(dn_new - 1000, dn_old)  # same reflectance, lossless JP2
    (scl_path,) = new_safe.rglob("*_SCL_20m.jp2")
    with rasterio.open(scl_path) as ds:
        assert ds.res == (20.0, 20.0)
        scl = ds.read(1)
    cloud = np.isin(scl, (8, 9, 10)).mean()
    assert 0.05 < cloud < 0.15  # --cloud-fraction 0.1 over the granule
    assert (scl == 3).any() and (scl == 4).any() and (scl == 6).any()  # shadows, vegetation, water


def test_polygons_read_by_ogr_with_valid_geometries_and_chinese_names(auvergne_demo):
    path = auvergne_demo / "polygons.gpkg"
    info = pyogrio.read_info(path)
    assert info["driver"] == "GPKG" and info["crs"] == "EPSG:4326" and info["geometry_type"] == "Polygon"
    gdf = pyogrio.read_dataframe(path)
    assert set(gdf["genesis"]) <= {"构造地貌", "火山熔岩地貌", "流水地貌"}
    assert shapely.is_valid(gdf.geometry.values).all()
    lon0, lat0, lon1, lat1 = AUVERGNE_BBOX
    assert shapely.box(lon0, lat0, lon1, lat1).within(shapely.union_all(gdf.geometry.values).buffer(1e-9))
    assert shapely.union_all(gdf.geometry.values).area == pytest.approx(gdf.geometry.area.sum(), rel=1e-9)  # no overlaps


@pytest.mark.slow  # extra demo products: several seconds
def test_classes_carry_distinct_terrain_signatures(tmp_path):
    """Rugged tectonic > cone-studded volcanic > flat fluvial in slope; fluvial lowest (demo AOI)."""
    bbox = (128.125, 43.60, 128.25, 43.69)
    out = tmp_path / "demo"
    demo_inputs(bbox, out, seed=0, cloud_fraction=0.0)
    gdf = pyogrio.read_dataframe(out / "polygons.gpkg")
    with rasterio.open(out / "srtm" / "N43E128.hgt") as ds:
        win = rasterio.windows.from_bounds(*bbox, transform=ds.transform).round_offsets().round_lengths()
        z = ds.read(1, window=win).astype(float)
        transform = ds.window_transform(win)
    codes = {"构造地貌": 1, "火山熔岩地貌": 2, "流水地貌": 3}
    cls = rasterize(zip(gdf.geometry, gdf["genesis"].map(codes)), out_shape=z.shape, transform=transform)
    # slope on the 1" grid in metres, with numpy (independent of the project's terrain code)
    dy = 6371000 * np.radians(1 / 3600)
    dx = dy * np.cos(np.radians(43.65))
    z[z == -32768] = np.nan
    gy, gx = np.gradient(z, dy, dx)
    slope = np.degrees(np.arctan(np.hypot(gx, gy)))
    pct = {k: np.nanpercentile(slope[cls == k], [50, 90]) for k in (1, 2, 3)}
    elev = {k: np.nanmedian(z[cls == k]) for k in (1, 2, 3)}
    assert all((cls == k).mean() > 0.15 for k in (1, 2, 3))  # all three classes present
    assert pct[1][0] > 8 and pct[1][0] > 3 * pct[2][0] and pct[1][0] > 3 * pct[3][0]  # rugged tectonic
    assert pct[3][1] < 4  # flat valley floors
    assert pct[2][1] > 1.5 * pct[3][1]  # cones stand out of the lava plateau
    assert elev[2] > elev[3] + 100 and elev[1] > elev[3] + 100  # plateau and mountains above the valleys
    # and spectrally: fluvial fields are brighter in red than forest or lava plateau
    (red_path,) = (out / "sentinel2").rglob("*_B04_10m.jp2")
    with rasterio.open(red_path) as ds:
        from rasterio.warp import transform_geom

        red = ds.read(1).astype(float) - 1000
        geoms = [transform_geom("EPSG:4326", ds.crs, g.__geo_interface__) for g in gdf.geometry]
        cls10 = rasterize(zip(geoms, gdf["genesis"].map(codes)), out_shape=red.shape, transform=ds.transform)
    red_med = {k: np.median(red[cls10 == k]) for k in (1, 2, 3)}
    assert red_med[3] > 1.3 * red_med[1] and red_med[3] > 1.3 * red_med[2]


def test_mgrs_tile_names():
    # MGRS of the point itself (a point near a band edge also lies in the overlapping tile of the next band)
    assert mgrs_tile(2.35, 48.85) == "31UDQ"
    assert mgrs_tile(116.4, 39.9) == "50SMK"
    assert mgrs_tile(151.2, -33.87) == "56HLH"


def test_cli_bad_bbox_one_line(tmp_path):
    from helpers import run_cli

    res = run_cli("demo-inputs", "--bbox", "3", "45", "2", "46", "--out", str(tmp_path / "x"))
    assert res.returncode == 2
    assert res.stderr.strip() == ("gos-build: error: --bbox: expected [lon_min, lat_min, lon_max, lat_max] with "
                                  "min < max, got [3.0, 45.0, 2.0, 46.0]")
    assert not (tmp_path / "x").exists()
