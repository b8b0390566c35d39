"""Sentinel-2 stage, checked against direct reads of the product's own JP2 bands and SCL."""

from __future__ import annotations

import json
import re
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio

from helpers import run_cli
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.inputs import read_manifest, resolve, write_manifest
from gos_build.inputs.sentinel2 import discover, products_from_manifest
from gos_build.sentinel2 import composite_window, decode_granule, granule_keys, s2_tile


def inventory(patterns, grid, out, mask_snow=False):
    """Resolve ``inputs.sentinel2: patterns`` into its manifest at ``out`` (the workflow's inputs_sentinel2 rule)."""
    doc = resolve("sentinel2", {"inputs": {"sentinel2": list(patterns)}, "sentinel2": {"mask_snow": mask_snow}},
                  grid)
    write_manifest(out, doc)
    return doc


def load_inventory(path):
    doc = read_manifest(path, "sentinel2")
    return products_from_manifest(doc), tuple(doc["invalid_scl"])

AOI = (2.96, 45.725, 3.00, 45.76)  # inside the demo bbox


def _safes(demo: Path) -> list[Path]:
    return sorted((demo / "sentinel2").glob("*.SAFE"))


def _tiles(patterns, tmp_path, tile_chips=4, aoi=AOI, crs="auto", decoded=False):
    """Run inventory + every tile; return (grid, rgb (3, H, W) uint16, valid (H, W) uint8). ``decoded``: as the
    workflow runs it, each granule decoded once over the grid (decode_granule) and the tiles reading that."""
    grid = build_grid(bbox=aoi, tile_chips=tile_chips, crs=crs)
    inv = tmp_path / "inventory.json"
    inventory(patterns, grid, inv)
    manifest = read_manifest(inv, "sentinel2")
    dirs = None
    if decoded:
        dirs = [tmp_path / "granules" / key for key in granule_keys(manifest, grid)]
        for folder in dirs:
            decode_granule(manifest, grid, folder.name, folder)
    rgb = np.zeros((3, grid.height, grid.width), np.uint16)
    valid = np.zeros((grid.height, grid.width), np.uint8)
    for t in grid.tiles():
        s2_tile(manifest, grid, t.id, tmp_path / f"{t.id}_rgb.tif", tmp_path / f"{t.id}_valid.tif", dirs)
        sl = (slice(t.row_off, t.row_off + t.height), slice(t.col_off, t.col_off + t.width))
        with rasterio.open(tmp_path / f"{t.id}_rgb.tif") as ds:
            assert ds.dtypes == ("uint16",) * 3 and ds.nodata == 0
            assert ds.crs.to_epsg() == (32631 if crs == "auto" else int(crs.split(":")[1]))
            rgb[(slice(None),) + sl] = ds.read()
        with rasterio.open(tmp_path / f"{t.id}_valid.tif") as ds:
            valid[sl] = ds.read(1)
    return grid, rgb, valid


def _band(safe: Path, name: str):
    (path,) = safe.rglob(f"*_{name}_*m.jp2")
    with rasterio.open(path) as ds:
        return ds.read(1), ds.transform


def test_rgb_and_mask_equal_the_product_pixels(auvergne_demo, tmp_path):
    """Grid and granule share UTM 31N and the 10 m lattice: every grid pixel is one product pixel."""
    (safe,) = _safes(auvergne_demo)
    grid, rgb, valid = _tiles([str(safe)], tmp_path)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x = grid.x_min + (cols + 0.5) * 10
    y = grid.y_max - (rows + 0.5) * 10
    for i, band in enumerate(("B04", "B03", "B02")):
        dn, t = _band(safe, band)
        r, c = ((t.f - y) // 10).astype(int), ((x - t.c) // 10).astype(int)
        assert np.array_equal(rgb[i], np.clip(dn[r, c].astype(int) - 1000, 1, None))  # (DN - 1000) / 10000 * 10000
    scl, t20 = _band(safe, "SCL")
    expected = ~np.isin(scl[((t20.f - y) // 20).astype(int), ((x - t20.c) // 20).astype(int)], (0, 1, 3, 8, 9, 10))
    assert np.array_equal(valid.astype(bool), expected)
    assert 0.01 < 1 - expected.mean() < 0.5  # the demo's clouds fall on this AOI


@pytest.mark.slow  # extra demo products: several seconds
def test_baselines_give_identical_rgb(make_demo, tmp_path):
    (new,) = _safes(make_demo(baseline="05.09"))
    (old,) = _safes(make_demo(baseline="02.14"))
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, rgb_new, valid_new = _tiles([str(new)], tmp_path / "a")
    _, rgb_old, valid_old = _tiles([str(old)], tmp_path / "b")
    assert np.array_equal(rgb_new, rgb_old) and np.array_equal(valid_new, valid_old)
    assert rgb_new.mean() > 100


def test_zip_and_folder_give_identical_output(auvergne_demo, tmp_path):
    (safe,) = _safes(auvergne_demo)
    archive = tmp_path / f"{safe.name}.zip"
    shutil.make_archive(str(archive)[:-4], "zip", root_dir=safe.parent, base_dir=safe.name)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, rgb_dir, valid_dir = _tiles([str(safe)], tmp_path / "a")
    _, rgb_zip, valid_zip = _tiles([str(archive)], tmp_path / "b")
    assert np.array_equal(rgb_dir, rgb_zip) and np.array_equal(valid_dir, valid_zip)
    assert all(g.bands["B04"].startswith("/vsizip/") for p in discover([str(archive)]) for g in p.granules)
    assert {p.name for p in tmp_path.iterdir()} == {"a", "b", archive.name}  # nothing unpacked


@pytest.mark.slow  # extra demo products: several seconds
def test_two_granules_mosaic_without_seam_or_hole(make_demo, tmp_path):
    one = make_demo(cloud_fraction=0.0)
    two = make_demo(cloud_fraction=0.0, granules=2)
    assert len(_safes(two)) == 2
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    aoi = (2.95, 45.72, 3.01, 45.765)  # the whole demo bbox: spans both granules
    _, rgb1, valid1 = _tiles([str(one / "sentinel2" / "*.SAFE")], tmp_path / "a", aoi=aoi)
    _, rgb2, valid2 = _tiles([str(two / "sentinel2" / "*.SAFE")], tmp_path / "b", aoi=aoi)
    assert (rgb2 > 0).all() and valid2.all()  # no hole
    assert np.array_equal(rgb1, rgb2)  # no seam: the same pixels as a single granule


@pytest.mark.slow  # extra demo products: several seconds
def test_valid_pixel_wins_over_invalid(make_demo, tmp_path):
    two = make_demo(cloud_fraction=0.3, granules=2)
    safes = _safes(two)
    grid = build_grid(bbox=(2.95, 45.72, 3.01, 45.765), tile_chips=64)
    inventory([str(s) for s in safes], grid, tmp_path / "inv.json")
    products, invalid = load_inventory(tmp_path / "inv.json")
    refl, valid = composite_window(products, grid, grid.tiles()[0].window, invalid)
    # per product, SCL validity of every grid pixel (nearest), read directly
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x, y = grid.x_min + (cols + 0.5) * 10, grid.y_max - (rows + 0.5) * 10
    ok = []
    for p in products:
        scl, t = _band(Path(p.source), "SCL")
        r, c = ((t.f - y) // 20).astype(int), ((x - t.c) // 20).astype(int)
        inside = (r >= 0) & (c >= 0) & (r < scl.shape[0]) & (c < scl.shape[1])
        ok.append(inside & ~np.isin(scl[np.clip(r, 0, scl.shape[0] - 1), np.clip(c, 0, scl.shape[1] - 1)], invalid))
    rescued = ~ok[0] & ok[1]  # cloudy in the first (least cloudy) product, clear in the second
    assert rescued.sum() > 100
    assert valid[rescued].all()
    assert np.array_equal(valid, ok[0] | ok[1])


def test_tiled_equals_untiled(auvergne_demo, tmp_path):
    (safe,) = _safes(auvergne_demo)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, a, va = _tiles([str(safe)], tmp_path / "a", tile_chips=2)
    _, b, vb = _tiles([str(safe)], tmp_path / "b", tile_chips=256)
    assert np.array_equal(a, b) and np.array_equal(va, vb)


def test_band_geotiffs_as_input(auvergne_demo, tmp_path):
    (safe,) = _safes(auvergne_demo)
    folder = tmp_path / "cogs"
    folder.mkdir()
    for band in ("B02", "B03", "B04", "SCL"):
        (src,) = safe.rglob(f"*_{band}_*m.jp2")
        with rasterio.open(src) as ds:
            profile = ds.profile | {"driver": "GTiff", "compress": "deflate"}
            data = ds.read()
        if band != "SCL":  # a STAC-style COG: offset already applied, scale in the metadata
            data = np.clip(data.astype(int) - 1000, 1, None).astype(np.uint16)
        with rasterio.open(folder / f"{band}.tif", "w", **profile) as dst:
            dst.write(data)
            if band != "SCL":
                dst.scales, dst.offsets = (0.0001,), (0.0,)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    _, from_safe, v1 = _tiles([str(safe)], tmp_path / "a")
    _, from_tif, v2 = _tiles([str(folder / "*.tif")], tmp_path / "b")
    assert np.array_equal(from_safe, from_tif) and np.array_equal(v1, v2)
    # the folder itself named as the product (docs/pipeline.md: "in one folder = one product")
    (tmp_path / "c").mkdir()
    _, from_folder, v3 = _tiles([str(folder)], tmp_path / "c")
    assert np.array_equal(from_safe, from_folder) and np.array_equal(v1, v3)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(GosBuildError, match=r"empty: neither a SAFE product \(no MTD_MSIL2A.xml or MTD_MSIL1C.xml\) "
                                            r"nor a folder of band GeoTIFFs"):
        discover([str(empty)])


def test_product_off_the_grid_lattice_is_interpolated(auvergne_demo, tmp_path):
    """Band GeoTIFFs 5 m east of the grid's lattice: no shift is possible, every grid pixel is the bilinear
    mean of the two product pixels around it (the interpolating route, from one read of each band)."""
    (safe,) = _safes(auvergne_demo)
    folder = _shifted_bands(safe, tmp_path / "shifted")
    (tmp_path / "a").mkdir()
    grid, rgb, valid = _tiles([str(folder / "*.tif")], tmp_path / "a", tile_chips=2)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x = grid.x_min + (cols + 0.5) * 10
    y = grid.y_max - (rows + 0.5) * 10
    for i, band in enumerate(("B04", "B03", "B02")):
        dn, t = _band(safe, band)
        z = np.clip(dn.astype(float) - 1000, 1, None)
        r, c = ((t.f - y) // 10).astype(int), ((x - t.c) // 10).astype(int)  # the product pixel of each grid pixel
        expected = (z[r, c - 1] + z[r, c]) / 2  # its western neighbour now reaches it by 5 m
        assert np.abs(rgb[i] - expected).max() <= 0.5 + 1e-6
        assert (rgb[i] != np.clip(dn[r, c].astype(int) - 1000, 1, None)).mean() > 0.5  # not the unshifted pixels
    assert valid.all()  # no SCL: every pixel with data is valid


def _shifted_bands(safe: Path, folder: Path) -> Path:
    """The product's bands as GeoTIFFs 5 m east of the grid's lattice (no shift possible: interpolated)."""
    from affine import Affine

    folder.mkdir()
    for band in ("B02", "B03", "B04"):
        (src,) = safe.rglob(f"*_{band}_*m.jp2")
        with rasterio.open(src) as ds:
            profile = ds.profile | {"driver": "GTiff", "compress": "deflate",
                                    "transform": ds.transform * Affine.translation(0.5, 0)}
            data = np.clip(ds.read().astype(int) - 1000, 1, None).astype(np.uint16)
        with rasterio.open(folder / f"{band}.tif", "w", **profile) as dst:
            dst.write(data)
            dst.scales, dst.offsets = (0.0001,), (0.0,)
    return folder


@pytest.mark.parametrize("case", ["same lattice", "off the lattice", "another UTM zone"])
def test_granules_decoded_once_give_the_same_tiles(auvergne_demo, tmp_path, case):
    """The workflow decodes each granule once over the grid (s2-granule) and the tiles read that: the same
    bytes as tiles reading the product itself, whether pixels are taken as they are, interpolated, or
    reprojected; only the grid's footprint (and a margin) is decoded."""
    (safe,) = _safes(auvergne_demo)
    patterns = [str(_shifted_bands(safe, tmp_path / "shifted") / "*.tif")] if case == "off the lattice" else [str(safe)]
    crs = "EPSG:32630" if case == "another UTM zone" else "auto"
    runs = {}
    for decoded in (False, True):
        (tmp_path / str(decoded)).mkdir()
        runs[decoded] = _tiles(patterns, tmp_path / str(decoded), tile_chips=2, crs=crs, decoded=decoded)
    assert np.array_equal(runs[True][1], runs[False][1]) and np.array_equal(runs[True][2], runs[False][2])
    grid = runs[True][0]
    assert len(grid.tiles()) > 1
    (folder,) = (tmp_path / "True" / "granules").iterdir()
    with rasterio.open(folder / "B04.tif") as dec, rasterio.open(discover(patterns)[0].granules[0].bands["B04"]) as src:
        win = rasterio.windows.from_bounds(*dec.bounds, transform=src.transform).round_offsets().round_lengths()
        assert np.array_equal(dec.read(1), src.read(1, window=win))  # the product's pixels, where they lie


def test_decoded_granule_of_another_grid_is_refused(auvergne_demo, tmp_path):
    """Only the grid's footprint (plus a margin, in whole blocks of the product's file) is decoded, so
    granules decoded for a small AOI cannot serve a larger one: one line, not zeros in the tiles."""
    (safe,) = _safes(auvergne_demo)
    folder = tmp_path / "bands"  # the product's bands as GeoTIFFs in 64 px blocks (its JPEG 2000 is one block)
    folder.mkdir()
    for band in ("B02", "B03", "B04"):
        (src,) = safe.rglob(f"*_{band}_*m.jp2")
        with rasterio.open(src) as ds:
            profile = ds.profile | {"driver": "GTiff", "tiled": True, "blockxsize": 64, "blockysize": 64}
            with rasterio.open(folder / f"{band}.tif", "w", **profile) as dst:
                dst.write(ds.read())
    patterns = [str(folder / "*.tif")]
    small = build_grid(bbox=(2.97, 45.735, 2.98, 45.745), tile_chips=2)
    doc = inventory(patterns, small, tmp_path / "small.json")
    decode_granule(doc, small, "1-1", tmp_path / "1-1")
    with rasterio.open(tmp_path / "1-1" / "B04.tif") as dec, rasterio.open(folder / "B04.tif") as src:
        assert dec.width < src.width and dec.height < src.height
        assert dec.width % 64 == 0 and dec.height % 64 == 0
    large = build_grid(bbox=AOI, tile_chips=2)
    doc = inventory(patterns, large, tmp_path / "large.json")
    far = max(large.tiles(), key=lambda t: t.col_off + t.row_off)
    with pytest.raises(GosBuildError, match=r"B04\.tif: the decoded granule window does not hold"):
        s2_tile(doc, large, far.id, tmp_path / "rgb.tif", tmp_path / "valid.tif", [tmp_path / "1-1"])
    with pytest.raises(GosBuildError, match=r"granule\(s\) 1-1 not decoded"):
        s2_tile(doc, large, far.id, tmp_path / "rgb.tif", tmp_path / "valid.tif", [])
    assert not (tmp_path / "rgb.tif").exists()


# -- bad inputs: one line naming the file ------------------------------------------------
def _copy(safe: Path, tmp_path: Path) -> Path:
    dst = tmp_path / safe.name
    shutil.copytree(safe, dst)
    return dst


def test_missing_band(auvergne_demo, tmp_path):
    safe = _copy(_safes(auvergne_demo)[0], tmp_path)
    (b03,) = safe.rglob("*_B03_10m.jp2")
    b03.unlink()
    with pytest.raises(GosBuildError, match=rf"{safe.name}: GRANULE/.*_B03_10m.jp2 is missing from the product"):
        discover([str(safe)])


def test_corrupt_jp2(auvergne_demo, tmp_path):
    safe = _copy(_safes(auvergne_demo)[0], tmp_path)
    (b04,) = safe.rglob("*_B04_10m.jp2")
    b04.write_bytes(b04.read_bytes()[:200])
    grid = build_grid(bbox=AOI)
    res = run_cli("inputs", "sentinel2", "--grid", _grid(grid, tmp_path), "--out", str(tmp_path / "i.json"),
                  "--config", json.dumps({"inputs": {"sentinel2": [str(safe)]}}))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert re.match(rf"gos-build: error: {safe.name}: .*_B04_10m.jp2 is not a readable JPEG 2000", res.stderr)
    assert not (tmp_path / "i.json").exists()


def _grid(grid, tmp_path):
    p = tmp_path / "grid.json"
    p.write_text(grid.to_json())
    return str(p)


def test_product_not_covering_the_aoi(auvergne_demo):
    (safe,) = _safes(auvergne_demo)
    grid = build_grid(bbox=(3.00, 45.72, 3.06, 45.76))  # reaches ~3.5 km east of the granule
    with pytest.raises(GosBuildError) as info:
        inventory([str(safe)], grid, "/nonexistent/never-written.json")
    msg = str(info.value)
    frac = float(re.search(r"the products cover ([\d.]+) % of the AOI", msg).group(1))
    assert 20 < frac < 60 and safe.name in msg


def test_all_cloud_scene(auvergne_demo, tmp_path):
    safe = _copy(_safes(auvergne_demo)[0], tmp_path)
    (scl,) = safe.rglob("*_SCL_20m.jp2")
    with rasterio.open(scl) as ds:
        profile, shape = ds.profile, ds.shape
    with rasterio.open(scl, "w", **profile) as dst:
        dst.write(np.full(shape, 9, np.uint8), 1)  # cloud, high probability, everywhere
    with pytest.raises(GosBuildError, match=f"no valid pixel over the AOI: every pixel is cloud.*{safe.name}"):
        inventory([str(safe)], build_grid(bbox=AOI), tmp_path / "i.json")


def test_metadata_without_offsets(auvergne_demo, tmp_path):
    safe = _copy(_safes(auvergne_demo)[0], tmp_path)
    mtd = safe / "MTD_MSIL2A.xml"
    mtd.write_text(re.sub(r"\s*<BOA_ADD_OFFSET_VALUES_LIST>.*</BOA_ADD_OFFSET_VALUES_LIST>", "", mtd.read_text(), flags=re.S))
    with pytest.raises(GosBuildError, match=r"processing baseline 05.09 but no BOA_ADD_OFFSET for band B04"):
        discover([str(safe)])


def test_zip_entry_escaping_the_folder_is_refused(auvergne_demo, tmp_path):
    (safe,) = _safes(auvergne_demo)
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.write(safe / "MTD_MSIL2A.xml", f"{safe.name}/MTD_MSIL2A.xml")
        zf.writestr("../../outside.txt", "x")
    with pytest.raises(GosBuildError, match=r"zip entry '../../outside.txt' points outside the product folder"):
        discover([str(archive)])
    assert not (tmp_path.parent / "outside.txt").exists()


def test_glob_matching_nothing():
    with pytest.raises(GosBuildError, match=r"inputs.sentinel2: '/nowhere/\*.SAFE' matches no file"):
        discover(["/nowhere/*.SAFE"])


@pytest.mark.parametrize("rows", [1, 128])
def test_the_valid_share_is_rasterio_s_sample_of_the_scl(auvergne_demo, tmp_path, monkeypatch, rows):
    """``aoi_valid_estimate``: the share of the ~200 m sample points (every 20th grid pixel's centre inside the
    AOI) whose SCL pixel is valid, by rasterio's own ``sample()`` of the product's SCL -- whether the sample is
    taken a row at a time or in bands of 128 rows (memory bounded whatever the AOI)."""
    import shapely
    from pyproj import Transformer

    monkeypatch.setattr("gos_build.inputs.sentinel2.SAMPLE_ROWS", rows)
    (safe,) = _safes(auvergne_demo)
    grid = build_grid(bbox=AOI)
    doc = inventory([str(safe)], grid, tmp_path / "inv.json")
    rr, cc = np.mgrid[10 : grid.height : 20, 10 : grid.width : 20]
    x, y = grid.x_min + (cc + 0.5) * grid.resolution, grid.y_max - (rr + 0.5) * grid.resolution
    inside = shapely.contains_xy(grid.aoi, x, y)
    (scl,) = safe.rglob("*_SCL_20m.jp2")
    with rasterio.open(scl) as ds:
        gx, gy = Transformer.from_crs(grid.crs, ds.crs, always_xy=True).transform(x[inside], y[inside])
        values = np.array([v[0] for v in ds.sample(zip(gx, gy))])
    expected = (~np.isin(values, doc["invalid_scl"])).mean()
    assert 0.5 < expected < 1 and doc["aoi_valid_estimate"] == pytest.approx(expected, abs=1e-12)
