"""EOPF Zarr products (format 2 and 3, folder and zip) as Sentinel-2 input, and the median composite.

References: the demo SAFE's own JPEG 2000 bands read with GDAL (rasterio), and a median computed here with
numpy from those band files -- not the stage's output."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import rasterio

from helpers import run_cli
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.inputs import read_manifest, resolve, write_manifest
from gos_build.inputs.sentinel2 import discover
from gos_build.sentinel2 import s2_tile

AOI = (2.96, 45.725, 3.00, 45.76)  # inside the Auvergne demo bbox (UTM 31N)
FORMS = ("safe", "zarr2", "zarr3")


def _tiles(patterns, out: Path, composite="mosaic", reverse=False):
    """Resolve + every tile into ``out``; (grid, rgb (3, H, W), valid (H, W), observations or None, manifest)."""
    out.mkdir(parents=True, exist_ok=True)
    grid = build_grid(bbox=AOI, tile_chips=4, crs="auto")
    doc = resolve("sentinel2", {"inputs": {"sentinel2": [str(p) for p in patterns]},
                                "sentinel2": {"composite": composite}}, grid)
    if reverse:
        doc["products"] = doc["products"][::-1]
    write_manifest(out / "sentinel2.json", doc)
    manifest = read_manifest(out / "sentinel2.json", "sentinel2")
    rgb = np.zeros((3, grid.height, grid.width), np.uint16)
    valid = np.zeros((grid.height, grid.width), np.uint8)
    obs = np.zeros((grid.height, grid.width), np.uint8) if composite == "median" else None
    for t in grid.tiles():
        o = out / f"{t.id}_obs.tif" if obs is not None else None
        s2_tile(manifest, grid, t.id, out / f"{t.id}_rgb.tif", out / f"{t.id}_valid.tif", None, o)
        sl = (slice(t.row_off, t.row_off + t.height), slice(t.col_off, t.col_off + t.width))
        with rasterio.open(out / f"{t.id}_rgb.tif") as ds:
            rgb[(slice(None),) + sl] = ds.read()
        with rasterio.open(out / f"{t.id}_valid.tif") as ds:
            valid[sl] = ds.read(1)
        if o is not None:
            with rasterio.open(o) as ds:
                obs[sl] = ds.read(1)
    return grid, rgb, valid, obs, manifest


def _tile_bytes(folder: Path) -> dict:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*_rgb.tif")) + sorted(folder.glob("*_valid.tif"))}


@pytest.fixture(scope="module")
def eopf_demo(make_demo) -> Path:
    return make_demo(sentinel2_formats=FORMS)


def _products(demo: Path, form: str) -> list[Path]:
    folder = {"safe": "sentinel2", "zarr2": "sentinel2_zarr2", "zarr3": "sentinel2_zarr3"}[form]
    return sorted((demo / folder).glob("*.SAFE" if form == "safe" else "*.zarr"))


def test_zarr_products_give_the_safe_tiles_byte_for_byte(eopf_demo, tmp_path):
    from gos_build.demo.eopf import zip_product

    _, rgb, valid, _, _ = _tiles(_products(eopf_demo, "safe"), tmp_path / "safe")
    reference = _tile_bytes(tmp_path / "safe")
    assert valid.any() and not valid.all() and rgb.any()  # clouds and data on the AOI
    for form in ("zarr2", "zarr3"):
        (product,) = _products(eopf_demo, form)
        _tiles([product], tmp_path / form)
        assert _tile_bytes(tmp_path / form) == reference, form
        zipped = zip_product(product).rename(tmp_path / f"{product.name}.zip")
        _tiles([zipped], tmp_path / f"{form}-zip")
        assert _tile_bytes(tmp_path / f"{form}-zip") == reference, f"{form} zipped"


def test_manifest_records_format_baseline_and_radiometry_from_the_product(eopf_demo):
    for form, version in (("zarr2", "2.9.0"), ("zarr3", "3.0.0")):
        (p,) = discover([str(q) for q in _products(eopf_demo, form)])
        assert p.format == f"EOPF Zarr v{form[-1]}" and p.processor_version == version
        assert p.baseline == "05.09" and p.level == "L2A"
        # scale_factor 0.0001, add_offset -0.1 in the attributes: (DN - 1000) / 10000, the offset once
        assert p.quantification == 10000.0 and p.offsets == {"B04": -1000.0, "B03": -1000.0, "B02": -1000.0}
        assert p.granules[0].crs == "EPSG:32631" and p.datetime.startswith("20")
    (safe,) = discover([str(q) for q in _products(eopf_demo, "safe")])
    assert safe.format == "SAFE" and safe.datetime[:19] == p.datetime[:19]


def _copy(product: Path, tmp_path: Path) -> Path:
    """A copy of a product without its consolidated metadata (which would still list what a test removes)."""
    dest = tmp_path / product.name
    shutil.copytree(product, dest)
    if (dest / ".zmetadata").exists():
        (dest / ".zmetadata").unlink()
    else:
        doc = json.loads((dest / "zarr.json").read_text())
        doc.pop("consolidated_metadata", None)
        (dest / "zarr.json").write_text(json.dumps(doc))
    return dest


@pytest.mark.parametrize("form", ["zarr2", "zarr3"])
def test_broken_products_stop_with_one_line(eopf_demo, tmp_path, form):
    (product,) = _products(eopf_demo, form)
    name = product.name.removesuffix(".zarr")

    broken = _copy(product, tmp_path / "no-r10m")
    shutil.rmtree(broken / "measurements" / "reflectance" / "r10m")
    with pytest.raises(GosBuildError, match=rf"{name}.*no measurements/reflectance/r10m in the product"):
        discover([str(broken)])

    broken = _copy(product, tmp_path / "no-scl")
    shutil.rmtree(broken / "conditions" / "mask" / "l2a_classification" / "r20m" / "scl")
    with pytest.raises(GosBuildError, match=r"no conditions/mask/l2a_classification/r20m/scl in the product"):
        discover([str(broken)])

    broken = _copy(product, tmp_path / "bad-crs")
    attrs_file = broken / (".zattrs" if form == "zarr2" else "zarr.json")
    doc = json.loads(attrs_file.read_text())
    attrs = doc if form == "zarr2" else doc["attributes"]
    attrs["other_metadata"]["horizontal_CRS_code"] = "EPSG:UTM32"
    attrs_file.write_text(json.dumps(doc))
    with pytest.raises(GosBuildError, match=r"other_metadata.horizontal_CRS_code is 'EPSG:UTM32', not a CRS"):
        discover([str(broken)])

    fake = tmp_path / f"{name}.zarr.zip"
    fake.write_text("not a zip")
    with pytest.raises(GosBuildError, match=rf"{fake.name}.*not a zip file"):
        discover([str(fake)])


def test_cli_names_the_missing_group_without_a_traceback(eopf_demo, tmp_path):
    (product,) = _products(eopf_demo, "zarr3")
    broken = _copy(product, tmp_path)
    shutil.rmtree(broken / "measurements")
    grid = tmp_path / "grid.json"
    grid.write_text(build_grid(bbox=AOI).to_json())
    res = run_cli("inputs", "sentinel2", "--grid", str(grid), "--out", str(tmp_path / "s2.json"),
                  "--config", json.dumps({"inputs": {"sentinel2": [str(broken)]}}))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    lines = [ln for ln in res.stderr.strip().splitlines() if ln.strip()]
    assert len(lines) == 1 and "no measurements/reflectance/r10m in the product" in lines[0], res.stderr
    assert not (tmp_path / "s2.json").exists()


# -- the median composite -------------------------------------------------------------------------------------
def _numpy_median(safes: list[Path], grid):
    """Per pixel and band the median of the valid observations, from the SAFEs' JP2 bands: DN at the grid
    pixel (same lattice), valid where DN != 0 and SCL (20 m, the pixel under the centre) is not 0 1 3 8 9 10."""
    rows, cols = np.mgrid[0: grid.height, 0: grid.width]
    x = grid.x_min + (cols + 0.5) * 10
    y = grid.y_max - (rows + 0.5) * 10
    stack, valid = [], []
    for safe in safes:
        bands = []
        for band in ("B04", "B03", "B02"):
            (path,) = safe.rglob(f"*_{band}_10m.jp2")
            with rasterio.open(path) as ds:
                t, dn = ds.transform, ds.read(1)
            bands.append(dn[((t.f - y) // 10).astype(int), ((x - t.c) // 10).astype(int)])
        (path,) = safe.rglob("*_SCL_20m.jp2")
        with rasterio.open(path) as ds:
            t, scl = ds.transform, ds.read(1)
        scl = scl[((t.f - y) // 20).astype(int), ((x - t.c) // 20).astype(int)]
        dn = np.stack(bands)
        ok = np.all(dn != 0, axis=0) & ~np.isin(scl, (0, 1, 3, 8, 9, 10))
        refl = ((dn.astype(np.float64) - 1000.0) / 10000.0).astype(np.float32)  # baseline 05.09: offset -1000
        stack.append(np.where(ok, refl, np.nan))
        valid.append(ok)
    with np.errstate(all="ignore"):
        import warnings

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.stack(stack), axis=0)
    count = np.sum(valid, axis=0)
    rgb = np.where(count > 0, np.clip(np.round(np.nan_to_num(med) * np.float32(10000.0)), 1, 65535), 0)
    return rgb.astype(np.uint16), count


@pytest.mark.slow  # three dates of demo products
def test_median_composite_is_the_numpy_median_of_the_valid_observations(make_demo, tmp_path):
    demo = make_demo(dates=3, cloud_fraction=0.3)
    safes = sorted((demo / "sentinel2").glob("*.SAFE"))
    assert len(safes) == 3
    grid, rgb, valid, obs, manifest = _tiles(safes, tmp_path / "median", composite="median")
    assert manifest["composite"] == "median" and len(manifest["products"]) == 3
    expected, count = _numpy_median(safes, grid)
    assert np.array_equal(obs, count)
    assert np.array_equal(valid, (count > 0).astype(np.uint8))
    assert np.array_equal(rgb, expected)
    # the dates' clouds differ: pixels with 1, 2 and 3 valid observations all occur
    assert {1, 2, 3} <= set(np.unique(count).tolist())
    # clouded in one date: the others' median, not the mosaic's single date
    _, mosaic, _, _, _ = _tiles(safes, tmp_path / "mosaic")
    assert (rgb != mosaic).any(axis=0)[count >= 2].mean() > 0.5
    # the products' order changes no byte
    _tiles(safes, tmp_path / "reversed", composite="median", reverse=True)
    assert _tile_bytes(tmp_path / "reversed") == _tile_bytes(tmp_path / "median")


@pytest.mark.slow  # a workflow run over three dates
def test_median_workflow_counts_observations_and_leaves_no_scratch(make_demo, tmp_path):
    """``sentinel2.composite: median`` through the workflow: the tiles' observation counts reach the datacard (from
    the tiles' records) and the overview's maps (from their pieces, scratch); the datacard's figures are those of
    the maps' band."""
    from helpers import run_workflow, workflow_config

    demo = make_demo(dates=3, cloud_fraction=0.3)
    cfg = dict(workflow_config(demo, "aoi", list(AOI)), sentinel2={"composite": "median"})
    res = run_workflow(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    aoi = tmp_path / "results" / "aoi"
    assert not list((aoi / "tiles").rglob("*.tif"))  # the map pieces: scratch
    with rasterio.open(aoi / "figures" / "overview_layers.tif") as ds:  # a small AOI: not decimated
        maps = dict(zip(ds.descriptions, ds.read()))
    obs = maps["observations"].astype(int)
    assert {1, 2, 3} <= set(np.unique(obs).tolist())
    card = (aoi / "dataset" / "datacard.md").read_text(encoding="utf-8")
    assert "median of the valid observations of 3 product(s)" in card
    assert f"mean {round(obs.mean(), 3):g}, " in card
    assert f"; {(obs == 0).sum()} px ({100 * (obs == 0).mean():.2f} %) had none" in card


# -- through a STAC API (the demo's, on 127.0.0.1) ------------------------------------------------------------
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy":
              "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
              "no_proxy": "127.0.0.1,localhost"}


@pytest.mark.slow  # a catalogue of every demo form, served on 127.0.0.1
@pytest.mark.parametrize("collection", ["eopf-sentinel-2-l2a", "eopf-sentinel-2-l2a-zarr3"])
def test_stac_items_of_both_layouts_give_the_safe_tiles(eopf_demo, tmp_path, monkeypatch, collection):
    from gos_build.demo.stac import StacApi, write_catalogue
    from gos_build.inputs.stac import AUTH_ENV

    for k, v in NO_NETWORK.items():
        monkeypatch.setenv(k, v)
    _tiles(_products(eopf_demo, "safe"), tmp_path / "safe")
    catalogue = tmp_path / "catalogue"
    summary = write_catalogue(eopf_demo, catalogue)
    assert len(summary[collection]) == 1
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(AUTH_ENV, "Bearer secret-token-123")
    grid = build_grid(bbox=AOI, tile_chips=4, crs="auto")
    with StacApi(catalogue, max_seconds=120, max_requests=2000) as api:
        cfg = {"aoi": {"name": "aoi"}, "sentinel2": {"composite": "mosaic"},
               "inputs": {"sentinel2": {"stac": {"api": api.url + "/", "collection": collection}}}}
        doc = resolve("sentinel2", cfg, grid)
        requests = list(api.requests)
        # a second resolve reads the metadata only: the windows are cached
        again = resolve("sentinel2", cfg, grid)
        assert not [r for r in api.requests[len(requests):] if "/r10m/b04/" in r[2]]
        # a median over a date range without any product: one line naming the range
        cfg["sentinel2"]["composite"] = "median"
        cfg["inputs"]["sentinel2"]["stac"]["datetime"] = "2021-06-01/2021-09-30"
        with pytest.raises(GosBuildError, match=rf"no {collection} item over the AOI on 2021-06-01/2021-09-30"):
            resolve("sentinel2", cfg, grid)
    assert all(r["cached"] for r in again["stac"]["cache"])
    assert {r[0] for r in requests} == {"127.0.0.1"}
    assert all(r[5] == "Bearer secret-token-123" for r in requests)
    (p,) = doc["products"]
    assert p["format"] == ("EOPF Zarr v3" if collection.endswith("zarr3") else "EOPF Zarr v2")
    assert p["baseline"] == "05.09" and p["quantification"] == 10000.0 and p["offsets"]["B04"] == -1000.0
    assert "secret-token" not in json.dumps(doc)
    # each chunk under the window fetched once, none beyond the product's (the demo product is small: its
    # AOI window with the margin reaches every chunk); the bytes fetched are recorded
    assert all(r["fetched_bytes"] > 0 for r in doc["stac"]["cache"])
    chunk_gets = [r for r in requests if "/r10m/b04/" in r[2]]
    (product,) = _products(eopf_demo, "zarr2" if collection == "eopf-sentinel-2-l2a" else "zarr3")
    stored = [f for f in (product / "measurements/reflectance/r10m/b04").rglob("*") if f.is_file()
              and not f.name.startswith((".z", "zarr.json"))]
    assert 0 < len(chunk_gets) == len({r[2] for r in chunk_gets}) <= len(stored)
    write_manifest(tmp_path / "stac" / "sentinel2.json", doc)
    manifest = read_manifest(tmp_path / "stac" / "sentinel2.json", "sentinel2")
    for t in grid.tiles():
        s2_tile(manifest, grid, t.id, tmp_path / "stac" / f"{t.id}_rgb.tif", tmp_path / "stac" / f"{t.id}_valid.tif")
    assert _tile_bytes(tmp_path / "stac") == _tile_bytes(tmp_path / "safe")
