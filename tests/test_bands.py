"""The s2 layer (``sentinel2.bands``): each band against its own file read apart from the pipeline -- GDAL (or
zarr for EOPF) reading the band, the product's offset for that band, bilinear interpolation computed here --
for every product form the rgb layer reads, and the errors of a band that is not there."""

from __future__ import annotations

import re
import shutil
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pytest
import rasterio
from pyproj import Transformer
from rasterio.windows import Window

from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.inputs import resolve
from gos_build.sentinel2 import s2_window

AOI = (2.96, 45.725, 3.00, 45.76)  # inside the Auvergne demo bbox (UTM 31N)
# what the test asks for: a 10 m band (B08) beside the 20 m B8A, three more 20 m bands and a 60 m one, in an
# order of its own (the layer keeps it)
BANDS = ["B8A", "B08", "B05", "B11", "B12", "B01", "B02"]
# the product metadata's band_id of each band (ESA, S2 Products Specification: B8A is 8, B09 is 9), spelled here
BAND_ID = {"B01": 0, "B02": 1, "B03": 2, "B04": 3, "B05": 4, "B06": 5, "B07": 6, "B08": 7, "B8A": 8, "B09": 9,
           "B10": 10, "B11": 11, "B12": 12}
RESOLUTION = {"B01": 60, "B02": 10, "B03": 10, "B04": 10, "B05": 20, "B06": 20, "B07": 20, "B08": 10, "B8A": 20,
              "B09": 60, "B11": 20, "B12": 20}


@pytest.fixture(scope="module")
def clear_demo(make_demo) -> Path:
    """Demo inputs without clouds (every pixel valid: the bilinear weights need no renormalising), SAFE and
    EOPF Zarr v2 and v3."""
    return make_demo(cloud_fraction=0.0, sentinel2_formats=("safe", "zarr2", "zarr3"))


@pytest.fixture(scope="module")
def offset_safe(clear_demo, tmp_path_factory) -> Path:
    """The demo SAFE with a BOA_ADD_OFFSET of its own for each band (-1000 + 10 x band_id): a band read with
    another band's offset is 10 DN off."""
    (safe,) = sorted((clear_demo / "sentinel2").glob("*.SAFE"))
    dest = tmp_path_factory.mktemp("offsets") / safe.name
    shutil.copytree(safe, dest)
    mtd = dest / "MTD_MSIL2A.xml"
    text = mtd.read_text(encoding="utf-8")
    text, n = re.subn(r'<BOA_ADD_OFFSET band_id="(\d+)">-1000</BOA_ADD_OFFSET>',
                      lambda m: f'<BOA_ADD_OFFSET band_id="{m.group(1)}">{-1000 + 10 * int(m.group(1))}</BOA_ADD_OFFSET>',
                      text)
    assert n == 13
    mtd.write_text(text, encoding="utf-8")
    return dest


def _zip(folder: Path, dest: Path) -> Path:
    with zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, f"{folder.name}/{p.relative_to(folder).as_posix()}")
    return dest


def _safe_band(safe: Path, band: str) -> Path:
    """The band's JP2 at its finest resolution in the SAFE."""
    for res in (10, 20, 60):
        hits = sorted(safe.glob(f"GRANULE/*/IMG_DATA/R{res}m/*_{band}_{res}m.jp2"))
        if hits:
            return hits[0]
    raise AssertionError(f"{safe.name}: no {band}")


def _bilinear(grid, arr: np.ndarray, transform, crs: str) -> np.ndarray:
    """``arr`` (one band on a north-up lattice) interpolated bilinearly at the grid's pixel centres (float64):
    the four pixels around each centre, weights by distance, written out here."""
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x = grid.x_min + (cols + 0.5) * grid.resolution
    y = grid.y_max - (rows + 0.5) * grid.resolution
    if crs != grid.crs:
        x, y = Transformer.from_crs(grid.crs, crs, always_xy=True).transform(x, y)
    fc = (x - transform.c) / transform.a - 0.5
    fr = (y - transform.f) / transform.e - 0.5
    c0, r0 = np.floor(fc).astype(int), np.floor(fr).astype(int)
    tc, tr = fc - c0, fr - r0
    return ((1 - tr) * ((1 - tc) * arr[r0, c0] + tc * arr[r0, c0 + 1])
            + tr * ((1 - tc) * arr[r0 + 1, c0] + tc * arr[r0 + 1, c0 + 1]))


def _expected(grid, dn: np.ndarray, transform, crs: str, offset: float, quant: float) -> np.ndarray:
    """The stored values (uint16 reflectance x 10000) of one band: (DN + offset) / quantification, interpolated."""
    refl = _bilinear(grid, (dn.astype(np.float64) + offset) / quant, transform, crs)
    return np.clip(np.round(refl * 10000), 1, 65535)


def _assert_band(got: np.ndarray, want: np.ndarray, what: str) -> None:
    diff = np.abs(got.astype(np.int64) - want.astype(np.int64))
    # the pipeline rounds a float32 reflectance, the test a float64 one: at most 1 apart, where a value lies on
    # a half (a 20 m band halfway between two pixels is often one: weights 1/4, 3/4 of integer DN)
    assert diff.max() <= 1, f"{what}: {diff.max()} apart at {np.unravel_index(diff.argmax(), diff.shape)}"
    assert (diff == 0).mean() > 0.95, f"{what}: {(diff != 0).mean():.3%} differ by 1"


def _s2(patterns_or_stac, grid, bands=BANDS, tmp_path=None) -> tuple[dict, np.ndarray]:
    cfg = {"inputs": {"sentinel2": patterns_or_stac}, "sentinel2": {"mask_snow": False, "bands": list(bands)},
           "aoi": {"name": "aoi"}}
    manifest = resolve("sentinel2", cfg, grid)
    rgb, valid, _, layers, _ = s2_window(manifest, grid, Window(0, 0, grid.width, grid.height))
    s2 = layers["s2"]
    assert valid.all() and (rgb != 0).all()  # a clear scene: every pixel valid
    assert s2.shape == (len(bands), grid.height, grid.width) and s2.dtype == np.uint16
    return manifest, s2


def _mtd_offsets(mtd: str) -> dict[int, float]:
    return {int(i): float(v) for i, v in re.findall(r'<BOA_ADD_OFFSET band_id="(\d+)">([-\d.]+)<', mtd)}


@pytest.mark.parametrize("form", ["safe", "safe-zip", "neighbouring-zone"])
def test_each_band_of_a_safe_equals_gdal_with_its_own_offset_and_bilinear(form, offset_safe, tmp_path):
    """10, 20 and 60 m bands of a SAFE (folder, zip; a grid in the next UTM zone west: every band
    interpolated), each read by GDAL (JP2OpenJPEG), with the offset the MTD gives its band_id."""
    grid = build_grid(bbox=AOI, tile_chips=4, crs="EPSG:32630" if form == "neighbouring-zone" else "auto")
    product = str(_zip(offset_safe, tmp_path / f"{offset_safe.name}.zip")) if form == "safe-zip" else str(offset_safe)
    manifest, s2 = _s2([product], grid)
    offsets = _mtd_offsets((offset_safe / "MTD_MSIL2A.xml").read_text(encoding="utf-8"))
    assert offsets[BAND_ID["B8A"]] != offsets[BAND_ID["B08"]]
    for k, band in enumerate(BANDS):
        with rasterio.open(_safe_band(offset_safe, band)) as ds:
            assert ds.res == (RESOLUTION[band],) * 2
            want = _expected(grid, ds.read(1), ds.transform, ds.crs.to_string(), offsets[BAND_ID[band]], 10000.0)
        _assert_band(s2[k], want, f"{form} {band}")
    # B08 and B8A are distinct bands of the landscape: never the same values
    assert np.abs(s2[0].astype(int) - s2[1].astype(int)).mean() > 50


@pytest.fixture(scope="module")
def l1c_safe(offset_safe, tmp_path_factory) -> Path:
    """The offset SAFE laid out as an L1C product: MTD_MSIL1C.xml (Level-1C, QUANTIFICATION_VALUE,
    RADIO_ADD_OFFSET per band_id), every band in the granule's one IMG_DATA folder (``..._B05.jp2``), no SCL,
    and a cirrus band B10 (the B09 file: a 60 m band L2A products lack)."""
    name = offset_safe.name.replace("MSIL2A", "MSIL1C")
    dest = tmp_path_factory.mktemp("l1c") / name
    (granule,) = sorted((offset_safe / "GRANULE").iterdir())
    img = dest / "GRANULE" / granule.name / "IMG_DATA"
    img.mkdir(parents=True)
    files = []
    for jp2 in sorted(granule.glob("IMG_DATA/R*m/*.jp2")):
        m = re.fullmatch(r"(T\w+_\d{8}T\d{6})_(B\w\w)_\d\dm\.jp2", jp2.name)
        if m and not (img / f"{m.group(1)}_{m.group(2)}.jp2").exists():
            shutil.copy(jp2, img / f"{m.group(1)}_{m.group(2)}.jp2")
            files.append(f"{m.group(1)}_{m.group(2)}")
            if m.group(2) == "B09":
                shutil.copy(jp2, img / f"{m.group(1)}_B10.jp2")
                files.append(f"{m.group(1)}_B10")
    mtd = (offset_safe / "MTD_MSIL2A.xml").read_text(encoding="utf-8")
    mtd = re.sub(r"<IMAGE_FILE>[^<]*</IMAGE_FILE>\s*", "", mtd)
    listed = "".join(f"<IMAGE_FILE>GRANULE/{granule.name}/IMG_DATA/{f}</IMAGE_FILE>" for f in sorted(files))
    mtd = mtd.replace("</Granule>", listed + "</Granule>", 1).replace("Level-2A", "Level-1C")
    mtd = mtd.replace("BOA_QUANTIFICATION_VALUE", "QUANTIFICATION_VALUE").replace("BOA_ADD_OFFSET", "RADIO_ADD_OFFSET")
    (dest / "MTD_MSIL1C.xml").write_text(mtd, encoding="utf-8")
    return dest


def test_each_band_of_an_l1c_product_equals_gdal(l1c_safe):
    """L1C: the bands from the granule's one IMG_DATA folder at their own resolutions (B10 the cirrus band
    among them), each with its RADIO_ADD_OFFSET; no SCL: every pixel with data is valid."""
    grid = build_grid(bbox=AOI, tile_chips=4)
    bands = ["B10", "B8A", "B05", "B08"]
    _, s2 = _s2([str(l1c_safe)], grid, bands)
    offsets = {int(i): float(v) for i, v in re.findall(
        r'<RADIO_ADD_OFFSET band_id="(\d+)">([-\d.]+)<', (l1c_safe / "MTD_MSIL1C.xml").read_text(encoding="utf-8"))}
    assert len(offsets) == 13
    for k, band in enumerate(bands):
        (path,) = l1c_safe.glob(f"GRANULE/*/IMG_DATA/*_{band}.jp2")
        with rasterio.open(path) as ds:
            want = _expected(grid, ds.read(1), ds.transform, ds.crs.to_string(), offsets[BAND_ID[band]], 10000.0)
        _assert_band(s2[k], want, f"L1C {band}")


def test_each_band_of_a_band_folder_and_a_stac_item_equals_gdal(catalogue_bands, tmp_path, monkeypatch):
    """Band GeoTIFFs in a folder (each file's own scale/offset tags), and the same COGs as an Earth-Search-like
    STAC item served on 127.0.0.1 (asset keys nir, nir08, rededge1, swir16, swir22, coastal, blue): each band
    equals GDAL's read of the COG, its tags' radiometry, interpolated here."""
    from gos_build.demo.stac import S2_COLLECTION, StacApi

    grid = build_grid(bbox=AOI, tile_chips=4)
    (item_dir,) = sorted((catalogue_bands / "data" / S2_COLLECTION).iterdir())
    expected = {}
    for band in BANDS:
        with rasterio.open(item_dir / f"{band}.tif") as ds:
            scale, offset = ds.scales[0], ds.offsets[0]
            assert ds.res == (RESOLUTION[band],) * 2
            expected[band] = _expected(grid, ds.read(1), ds.transform, ds.crs.to_string(), offset / scale,
                                       1 / scale)
    folder = tmp_path / "bands"
    shutil.copytree(item_dir, folder)
    for form in ("folder", "stac"):
        if form == "folder":
            cfg_value = [str(folder / "*.tif")]
            manifest = resolve("sentinel2", {"inputs": {"sentinel2": cfg_value}, "aoi": {"name": "aoi"},
                                             "sentinel2": {"bands": BANDS}}, grid)
        else:
            monkeypatch.chdir(tmp_path)
            with StacApi(catalogue_bands, max_seconds=120) as api:
                stac = {"api": api.url + "/", "collection": S2_COLLECTION, "datetime": "2020-10-26", "max_cloud": 20}
                manifest = resolve("sentinel2", {"inputs": {"sentinel2": {"stac": stac}}, "aoi": {"name": "aoi"},
                                                 "sentinel2": {"bands": BANDS}}, grid)
                assert {r[0] for r in api.requests} == {"127.0.0.1"}
        rgb, valid, _, layers, _ = s2_window(manifest, grid, Window(0, 0, grid.width, grid.height))
        s2 = layers["s2"]
        assert valid.all() and s2.shape == (len(BANDS), grid.height, grid.width)
        for k, band in enumerate(BANDS):
            _assert_band(s2[k], expected[band], f"{form} {band}")


@pytest.fixture(scope="module")
def catalogue_bands(clear_demo, tmp_path_factory) -> Path:
    """The clear demo as an Earth-Search-like catalogue: a COG per band (B01 ... B12, B8A) and SCL."""
    from gos_build.demo.stac import write_catalogue

    out = tmp_path_factory.mktemp("stac_bands") / "catalogue"
    write_catalogue(clear_demo, out)
    return out


@pytest.mark.parametrize("fmt", ["zarr2", "zarr3"])
def test_each_band_of_an_eopf_product_equals_its_array(fmt, clear_demo):
    """EOPF Zarr v2 and v3: each band from its resolution group (r10m, r20m, r60m) equals the array read with
    zarr, its own scale_factor and add_offset, its x/y pixel centres, interpolated here."""
    import zarr

    folder = clear_demo / {"zarr2": "sentinel2_zarr2", "zarr3": "sentinel2_zarr3"}[fmt]
    (product,) = sorted(folder.glob("*.zarr"))
    grid = build_grid(bbox=AOI, tile_chips=4)
    _, s2 = _s2([str(product)], grid)
    root = zarr.open_group(str(product), mode="r")
    crs = root.attrs["other_metadata"]["horizontal_CRS_code"]
    for k, band in enumerate(BANDS):
        res = RESOLUTION[band]
        group = root[f"measurements/reflectance/r{res}m"]
        arr = group[band.lower()]
        x, y = group["x"][:], group["y"][:]
        transform = rasterio.Affine(res, 0, float(x[0]) - res / 2, 0, -res, float(y[0]) + res / 2)
        scale, offset = arr.attrs["scale_factor"], arr.attrs["add_offset"]
        want = _expected(grid, arr[:], transform, crs, offset / scale, 1 / scale)
        _assert_band(s2[k], want, f"{fmt} {band}")


def test_a_band_the_product_lacks_stops_with_one_line(clear_demo, tmp_path):
    (safe,) = sorted((clear_demo / "sentinel2").glob("*.SAFE"))
    grid = build_grid(bbox=AOI, tile_chips=4)
    with pytest.raises(GosBuildError) as err:  # B10 (cirrus) is in L1C products only
        resolve("sentinel2", {"inputs": {"sentinel2": [str(safe)]}, "sentinel2": {"bands": ["B05", "B10"]}}, grid)
    msg = str(err.value)
    assert "\n" not in msg and safe.name in msg and "B10" in msg and "L1C" in msg
    gone = tmp_path / safe.name
    shutil.copytree(safe, gone)
    for jp2 in gone.glob("GRANULE/*/IMG_DATA/R20m/*_B11_20m.jp2"):
        jp2.unlink()
    with pytest.raises(GosBuildError) as err:
        resolve("sentinel2", {"inputs": {"sentinel2": [str(gone)]}, "sentinel2": {"bands": ["B11"]}}, grid)
    assert "\n" not in str(err.value) and "B11" in str(err.value) and safe.name in str(err.value)


def test_an_unknown_band_is_a_config_error_listing_the_valid_ones():
    from gos_build.config import check_config

    from helpers import default_config

    cfg = default_config()
    cfg["sentinel2"] = {"bands": ["B04", "B13"]}
    with pytest.raises(GosBuildError) as err:
        check_config(cfg)
    msg = str(err.value)
    assert "sentinel2.bands" in msg and "B13" in msg and "B8A" in msg and "B12" in msg


# -- every form carries s2 ------------------------------------------------------------------------------------
S2_BANDS = ["B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B11", "B12"]


@pytest.fixture(scope="module")
def bands_dataset(inputs, tmp_path_factory) -> Path:
    from helpers import AOI_A, run_workflow, workflow_config

    base = tmp_path_factory.mktemp("bands")
    cfg = workflow_config(inputs, "bands", AOI_A, sentinel2={"bands": S2_BANDS},
                          publish={"forms": ["tree", "stac", "croissant", "packed", "parquet", "stac-geoparquet"]})
    res = run_workflow(base, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "results" / "bands" / "dataset"


@pytest.mark.slow
def test_every_form_carries_the_s2_layer(bands_dataset, runs, tmp_path):
    """A demo with ten bands: the tree's s2 GeoTIFFs (band descriptions = band names, rgb's bytes those of the
    build without bands), STAC Items valid against core, eo v1.1.0 and raster (eo:bands with wavelengths), the
    store and the Parquet shards equal to the tree, datasets (offline) and validate, stats per band, Croissant's
    spectral bands, the loader's s2."""
    import hashlib
    import json
    import os
    import subprocess
    import sys

    import zarr

    from gos_build.layout import chip_path, read_index
    from helpers import run_cli
    from stac_schemas import OfflineSchemas

    d = bands_dataset
    classes, chips = read_index(d)
    assert len(chips) >= 10
    # the tree: s2 as GDAL reads it; the rgb files byte-identical to the build without bands (same chips)
    plain = runs["a2"] / "dataset"
    _, plain_chips = read_index(plain)
    first = chips[0]
    with rasterio.open(d / chip_path("s2", classes[first["class_id"]]["name"], first["id"])) as ds:
        assert ds.count == 10 and ds.descriptions == tuple(S2_BANDS) and ds.dtypes[0] == "uint16" and ds.nodata == 0
        s2 = ds.read()
    with rasterio.open(d / chip_path("rgb", classes[first["class_id"]]["name"], first["id"])) as ds:
        rgb = ds.read()
    assert np.array_equal(s2[[2, 1, 0]], rgb)  # B04 B03 B02 of s2 are rgb's red, green, blue
    same = [c for c in chips if c["id"] in {p["id"] for p in plain_chips}]
    assert len(same) >= 10
    for c in same[:20]:
        rel = chip_path("rgb", classes[c["class_id"]]["name"], c["id"])
        assert (d / rel).read_bytes() == (plain / rel).read_bytes()
    # STAC: eo:bands beside raster:bands, every Item and the Collection valid
    def each(item):
        assert "https://stac-extensions.github.io/eo/v1.1.0/schema.json" in item["stac_extensions"]
        eo = item["assets"]["s2"]["eo:bands"]
        assert [b["name"] for b in eo] == S2_BANDS and [b["common_name"] for b in eo][6:8] == ["nir", "nir08"]
        assert eo[7]["center_wavelength"] == pytest.approx(0.8647)
        # rgb's red, green, blue are s2's B04 B03 B02: the same wavelengths under rgb's band names
        rgb = {b["name"]: b for b in item["assets"]["rgb"]["eo:bands"]}
        assert list(rgb) == ["red", "green", "blue"]
        assert [{**rgb[c], "name": b} for c, b in zip(rgb, ("B04", "B03", "B02"))] == [eo[2], eo[1], eo[0]]

    problems = OfflineSchemas().catalogue_errors(d, chips, each)
    assert not problems, problems[:5]
    # the store and the shards hold the tree's s2
    store = zarr.open_group(str(d / "packed"), mode="r")
    ids = [str(v) for v in store["train"]["chip_id"][:]]
    by_id = {c["id"]: c for c in chips}
    with rasterio.open(d / chip_path("s2", classes[by_id[ids[0]]["class_id"]]["name"], ids[0])) as ds:
        assert np.array_equal(store["train"]["s2"][0], ds.read())
    script = ("import sys, hashlib, json, datasets\n"
              "ds = datasets.load_dataset(sys.argv[1])['train']\n"
              "print(json.dumps({'columns': ds.column_names, 'sha': hashlib.sha256(ds[0]['s2']).hexdigest(), "
              "'id': ds[0]['chip_id']}))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    res = subprocess.run([sys.executable, "-c", script, str(d)], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert "s2" in got["columns"]
    tree = d / chip_path("s2", classes[by_id[got["id"]]["class_id"]]["name"], got["id"])
    assert got["sha"] == hashlib.sha256(tree.read_bytes()).hexdigest()
    # stats per band, Croissant's spectral bands, validate
    stats = json.loads((d / "stats.json").read_text())
    assert stats["s2"]["bands"] == S2_BANDS and len(stats["s2"]["mean"]) == 10
    assert stats["s2"]["mean"][6] > 2 * stats["s2"]["mean"][2]  # vegetated: NIR (B08) well above red (B04)
    croissant = json.loads((d / "croissant.json").read_text())
    spectral = {b["name"]: b["geocr:centerWavelength"]["value"] for b in croissant["geocr:spectralBandMetadata"]}
    assert spectral["s2:B8A"] == 864.7 and spectral["s2:B12"] == 2202.4 and spectral["rgb:red"] == 664.6
    res = run_cli("validate", str(d))
    assert res.returncode == 0, res.stdout + res.stderr
    # the loader gives s2
    pytest.importorskip("torch")
    from gos_build.ml import GOSDataset

    item = GOSDataset(d, split="train", normalize=False, source="tree")[0]
    assert tuple(item["s2"].shape) == (10, 64, 64)


def test_the_modality_comparison_takes_s2_as_the_imagery():
    """In a dataset with s2 the comparison adds s2+terrain and s2 (s2's bands as the image branch); without
    s2 they are unknown, and a config asking for them without sentinel2.bands is refused in one line."""
    from gos_build.config import check_config
    from gos_build.ml import TERRAIN, expand_variants, variant_inputs
    from helpers import default_config

    images = ("rgb", "s2")
    names = expand_variants(["rgb", "terrain"], TERRAIN, images)
    assert names == ["rgb+terrain", "s2+terrain", "s2", "rgb", "terrain"]
    assert variant_inputs("s2+terrain", TERRAIN, images) == (("s2",), list(range(8)))
    assert variant_inputs("s2", TERRAIN, images) == (("s2",), [])
    assert variant_inputs("rgb+terrain", TERRAIN, images) == (("rgb",), list(range(8)))
    assert "s2" not in expand_variants(["rgb"], TERRAIN)
    # periods: each with terrain and alone, all of them together with terrain; any joined by +
    seasons = ("rgb", "s2_autumn", "s2_spring")
    assert expand_variants([], TERRAIN, seasons) == ["rgb+terrain", "s2_autumn+terrain", "s2_autumn",
                                                     "s2_spring+terrain", "s2_spring", "s2_autumn+s2_spring+terrain"]
    assert variant_inputs("rgb+s2_spring", TERRAIN, seasons) == (("rgb", "s2_spring"), [])
    with pytest.raises(GosBuildError, match="unknown variant"):
        variant_inputs("s2_spring+s2_spring", TERRAIN, seasons)
    with pytest.raises(GosBuildError, match="unknown variant 's2'"):
        variant_inputs("s2", TERRAIN)
    cfg = default_config()
    cfg["baseline"] = {"modalities": ["rgb+terrain", "s2"]}
    with pytest.raises(GosBuildError, match="'s2' uses the layer s2, which only sentinel2.bands makes"):
        check_config(cfg)
    cfg["sentinel2"] = {"bands": ["B08", "B11"]}
    check_config(cfg)


@pytest.mark.slow
def test_the_baseline_compares_s2_with_rgb(bands_dataset, tmp_path):
    """The baseline on the ten-band demo: s2+terrain and s2 trained on s2's ten bands, each compared with the
    multimodal model with an interval, and the report's sentence chosen by those figures."""
    pytest.importorskip("torch")
    import json

    from gos_build.ml import baseline

    out = baseline(bands_dataset, tmp_path, epochs=2, variants=["rgb", "terrain"])
    ab = out["ablation"]
    assert list(ab)[:3] == ["rgb+terrain", "s2+terrain", "s2"]
    for v in ("s2+terrain", "s2"):
        assert 0.0 <= ab[v]["pooled"]["overall_accuracy"] <= 1.0 and "against_full" in ab[v]
    report = (tmp_path / "report.md").read_text(encoding="utf-8")
    assert "s2+terrain" in report  # its row of the table
    blocks = out["test_blocks"]
    # the sentence only where the blocks can carry a comparison; else the report says why there is none
    assert ("s2's bands instead of rgb's" in report) == (blocks["blocks"] >= blocks["needed"])
    assert json.loads((tmp_path / "metrics.json").read_text())["ablation"]["s2"]["per_run"]


# -- one layer per period ---------------------------------------------------------------------------------------
PERIODS = {"early": "2020-10-20/2020-10-28", "late": "2020-10-29/2020-11-10"}  # the demo's dates 0 | 1, 2


@pytest.fixture(scope="module")
def three_dates(make_demo) -> Path:
    """Three acquisitions 5 days apart (2020-10-26, -31, 11-05), each with its own clouds."""
    return make_demo(dates=3, cloud_fraction=0.2)


def test_each_period_layer_is_the_nanmedian_of_its_products(three_dates):
    """Two periods, median composite, no sentinel2.bands: each layer s2_<period> holds B04 B03 B02 and equals
    numpy's nanmedian over the valid pixels (SCL read here, nearest) of the products sensed in the period
    (GDAL reading their JP2), nodata where none is clear; rgb stays the composite of every product."""
    safes = sorted((three_dates / "sentinel2").glob("*.SAFE"))
    grid = build_grid(bbox=AOI, tile_chips=4)
    cfg = {"inputs": {"sentinel2": [str(p) for p in safes]}, "aoi": {"name": "aoi"},
           "sentinel2": {"composite": "median", "periods": PERIODS}}
    manifest = resolve("sentinel2", cfg, grid)
    rgb, valid, count, layers, period_counts = s2_window(manifest, grid, Window(0, 0, grid.width, grid.height))
    assert sorted(layers) == ["s2_early", "s2_late"] and sorted(period_counts) == ["early", "late"]
    dates = {}
    for safe in safes:  # the sensing date, from the product's name
        dates[safe] = re.search(r"_(\d{8})T", safe.name).group(1)
    rows, cols = np.mgrid[0 : grid.height, 0 : grid.width]
    x = grid.x_min + (cols + 0.5) * grid.resolution
    y = grid.y_max - (rows + 0.5) * grid.resolution
    for name, members in (("early", ["20201026"]), ("late", ["20201031", "20201105"])):
        stack = []
        for safe in (s for s in safes if dates[s] in members):
            mtd = (safe / "MTD_MSIL2A.xml").read_text(encoding="utf-8")
            offsets = _mtd_offsets(mtd)
            quant = float(re.search(r"<BOA_QUANTIFICATION_VALUE[^>]*>([\d.]+)<", mtd).group(1))
            with rasterio.open(_safe_band(safe, "B04")) as ds:
                t = ds.transform
            c = ((x - t.c) / 10 - 0.5).round().astype(int)
            r = ((t.f - y) / 10 - 0.5).round().astype(int)
            bands = []
            for band in ("B04", "B03", "B02"):
                with rasterio.open(_safe_band(safe, band)) as ds:
                    bands.append((ds.read(1)[r, c].astype(np.float64) + offsets[BAND_ID[band]]) / quant)
            (scl_path,) = safe.glob("GRANULE/*/IMG_DATA/R20m/*_SCL_20m.jp2")
            with rasterio.open(scl_path) as ds:
                st = ds.transform
                scl = ds.read(1)[((st.f - y) // 20).astype(int), ((x - st.c) // 20).astype(int)]
            ok = ~np.isin(scl, (0, 1, 3, 8, 9, 10))
            stack.append(np.where(ok, np.stack(bands), np.nan))
        with warnings.catch_warnings():  # a pixel clear in no product: NaN, the answer
            warnings.simplefilter("ignore", RuntimeWarning)
            med = np.nanmedian(np.stack(stack), axis=0)
        want = np.where(np.isnan(med), 0, np.clip(np.round(med * 10000), 1, 65535))
        got = layers[f"s2_{name}"]
        assert got.shape == (3, grid.height, grid.width)
        _assert_band(got.reshape(3, -1), want.reshape(3, -1), f"period {name}")
        clear = ~np.isnan(med[0])
        assert np.array_equal(period_counts[name] > 0, clear)
        assert np.array_equal(period_counts[name][clear], np.sum([~np.isnan(s[0]) for s in stack], axis=0)[clear])
        if name == "late":
            assert (period_counts[name] == 2).mean() > 0.3 and np.array_equal(got[0] == 0, ~clear)  # both dates count
    assert not np.array_equal(layers["s2_early"], layers["s2_late"])
    assert count.max() == 3  # rgb: the median of every product


def test_a_period_without_a_product_stops_naming_it(three_dates):
    safes = sorted((three_dates / "sentinel2").glob("*.SAFE"))
    grid = build_grid(bbox=AOI, tile_chips=4)
    cfg = {"inputs": {"sentinel2": [str(p) for p in safes]}, "aoi": {"name": "aoi"},
           "sentinel2": {"periods": {"spring": "2021-04-01/2021-05-31", **PERIODS}}}
    with pytest.raises(GosBuildError) as err:
        resolve("sentinel2", cfg, grid)
    msg = str(err.value)
    assert "\n" not in msg and "sentinel2.periods.spring" in msg and "2021-04-01/2021-05-31" in msg
    assert "2020-10-26" in msg  # what the products were sensed on


def test_period_config_errors_name_the_key():
    from gos_build.config import check_config
    from helpers import default_config

    for periods, words in (({"Spring": "2021-04-01/2021-05-31"}, "period names are lower-case"),
                           ({"spring": "2021-04"}, "expected a date range"),
                           ({"spring": "2021-05-31/2021-04-01"}, "ends before it starts"),
                           ({"spring": "2021-02-30/2021-04-01"}, "is not a date")):
        cfg = default_config()
        cfg["sentinel2"] = {"periods": periods}
        with pytest.raises(GosBuildError, match=words) as err:
            check_config(cfg)
        assert "sentinel2.periods" in str(err.value)


@pytest.mark.slow
def test_a_build_with_periods_carries_a_layer_per_period(three_dates, tmp_path):
    """The workflow with two periods and four bands: s2, s2_early and s2_late in the tree (band names), STAC
    (schema-valid, eo:bands), layers.json, stats; the datacard names each period's products and its clear
    observations; validate passes; the chip rule max_period_nodata is what decides a period's clouds."""
    import json

    from gos_build.layout import chip_path, dataset_layers, read_index
    from helpers import AUVERGNE_BBOX, run_cli, run_workflow, workflow_config
    from stac_schemas import OfflineSchemas

    cfg = workflow_config(three_dates, "periods", list(AUVERGNE_BBOX),
                          sentinel2={"bands": ["B08", "B04", "B03", "B02"], "periods": PERIODS},
                          chips={"max_period_nodata": 0.5})
    res = run_workflow(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    d = tmp_path / "results" / "periods" / "dataset"
    layers = dataset_layers(d)
    assert [m for m in layers if m.startswith("s2")] == ["s2", "s2_early", "s2_late"]
    classes, chips = read_index(d)
    assert chips
    c = chips[0]
    for m in ("s2", "s2_early", "s2_late"):
        with rasterio.open(d / chip_path(m, classes[c["class_id"]]["name"], c["id"])) as ds:
            assert ds.descriptions == ("B08", "B04", "B03", "B02") and ds.count == 4
    def each(item):
        assert [b["name"] for b in item["assets"]["s2_late"]["eo:bands"]] == ["B08", "B04", "B03", "B02"]

    problems = OfflineSchemas().catalogue_errors(d, chips[:50], each)
    assert not problems, problems[:5]
    card = (d / "datacard.md").read_text(encoding="utf-8")
    early = next(line for line in card.splitlines() if line.startswith("- Period `early`"))
    late = next(line for line in card.splitlines() if line.startswith("- Period `late`"))
    assert "1 product" in early and "2020-10-26" in early and "clear observations per pixel" in early
    assert "2 products" in late and "2020-10-31" in late and "2020-11-05" in late
    stats = json.loads((d / "stats.json").read_text())
    assert stats["s2_late"]["bands"] == ["B08", "B04", "B03", "B02"]
    res = run_cli("validate", str(d))
    assert res.returncode == 0, res.stdout + res.stderr
    # the period rule: a chip's period layers have at most half their pixels without a clear observation
    for c in chips[:30]:
        for m in ("s2_early", "s2_late"):
            with rasterio.open(d / chip_path(m, classes[c["class_id"]]["name"], c["id"])) as ds:
                assert (ds.read() == 0).any(axis=0).mean() <= 0.5
    # the overview's maps hold each period's image, in false colour (B08, B04, B03 of the four bands): at this
    # AOI's size undecimated, so a chip's window of them is its tree file's bands
    c = chips[0]
    with rasterio.open(d / chip_path("s2_late", classes[c["class_id"]]["name"], c["id"])) as chip:
        want, (x0, y0, x1, y1) = chip.read([1, 2, 3]).astype(np.float32), chip.bounds
    with rasterio.open(tmp_path / "results" / "periods" / "figures" / "overview_layers.tif") as ds:
        names = ds.descriptions
        assert {"s2_early R", "s2_early G", "s2_early B", "s2_late R"} <= set(names) and ds.res == (10.0, 10.0)
        got = ds.read([names.index(f"s2_late {b}") + 1 for b in "RGB"], window=ds.window(x0, y0, x1, y1))
    assert np.array_equal(got, want)
    # the baseline: each period's image with terrain and alone, both periods together
    pytest.importorskip("torch")
    from gos_build.ml import baseline

    out = baseline(d, tmp_path / "baseline", epochs=1, variants=["rgb"])
    assert list(out["ablation"])[:8] == ["rgb+terrain", "s2+terrain", "s2", "s2_early+terrain", "s2_early",
                                         "s2_late+terrain", "s2_late", "s2_early+s2_late+terrain"]


def test_periods_through_stac_are_one_search_each_and_pinnable(three_dates, tmp_path, monkeypatch):
    """Through a STAC API on 127.0.0.1: the main search (one day) gives rgb's product; each period is one more
    search over its range, its items cached like the main one's; a period pinned by stac.period_ids takes
    those items; the manifest says which products are rgb's and which each period's."""
    from gos_build.demo.stac import S2_COLLECTION, StacApi, write_catalogue

    catalogue = tmp_path / "catalogue"
    write_catalogue(three_dates, catalogue)
    monkeypatch.chdir(tmp_path)
    grid = build_grid(bbox=AOI, tile_chips=4)
    with StacApi(catalogue, max_seconds=120) as api:
        stac = {"api": api.url + "/", "collection": S2_COLLECTION, "datetime": "2020-10-26"}
        cfg = {"inputs": {"sentinel2": {"stac": stac}}, "aoi": {"name": "aoi"},
               "sentinel2": {"composite": "median", "periods": PERIODS}}
        manifest = resolve("sentinel2", cfg, grid)
        late_ids = manifest["stac"]["periods"]["late"]["items"]
        pinned = {**cfg, "inputs": {"sentinel2": {"stac": {**stac, "period_ids": {"late": late_ids[:1]}}}}}
        again = resolve("sentinel2", pinned, grid)
        searches = [r for r in api.requests if "search" in r[2]]
    names = [p["name"] for p in manifest["products"]]
    assert manifest["rgb"] == [0] and "20201026" in names[0]  # the main search: its one day
    early = [names[i] for i in manifest["periods"]["early"]["products"]]
    late = [names[i] for i in manifest["periods"]["late"]["products"]]
    assert len(early) == 1 and "20201026" in early[0] and sorted(n[11:19] for n in late) == ["20201031", "20201105"]
    assert len(late_ids) == 2 and len(searches) >= 3 * 2  # a search for rgb's and one for each period, twice
    assert [again["products"][i]["name"] for i in again["periods"]["late"]["products"]] == late_ids[:1]
    rgb, valid, count, layers, _ = s2_window(manifest, grid, Window(0, 0, grid.width, grid.height))
    assert count.max() == 1 and sorted(layers) == ["s2_early", "s2_late"]  # rgb: the main search's product only


def test_decoded_granules_and_the_stage_command_give_the_same_layers(three_dates, tmp_path):
    """The workflow's route -- each granule's bands decoded once over the grid (s2-granule), the tiles reading
    those -- gives the same s2 and period layers as reading the products (10, 20 and 60 m bands); ``s2-tile``
    writes them beside rgb.tif, band descriptions the band names."""
    from gos_build.sentinel2 import decode_granule, granule_keys, s2_tile

    safes = sorted((three_dates / "sentinel2").glob("*.SAFE"))
    grid = build_grid(bbox=AOI, tile_chips=4)
    cfg = {"inputs": {"sentinel2": [str(p) for p in safes]}, "aoi": {"name": "aoi"},
           "sentinel2": {"composite": "median", "bands": ["B01", "B8A", "B08"], "periods": PERIODS}}
    manifest = resolve("sentinel2", cfg, grid)
    dirs = [tmp_path / "granules" / key for key in granule_keys(manifest, grid)]
    for folder in dirs:
        decode_granule(manifest, grid, folder.name, folder)
    first = None
    for t in grid.tiles()[:2]:
        direct = s2_window(manifest, grid, t.window, None, t.id)[3]
        decoded = s2_window(manifest, grid, t.window, dirs, t.id)[3]
        assert sorted(direct) == ["s2", "s2_early", "s2_late"]
        for m in direct:
            assert np.array_equal(direct[m], decoded[m]), (t.id, m)
        first = first or direct
    t = grid.tiles()[0]
    s2_tile(manifest, grid, t.id, tmp_path / "tile" / "rgb.tif", tmp_path / "tile" / "valid.tif", dirs,
            tmp_path / "tile" / "observations.tif")
    for m in ("s2", "s2_early", "s2_late"):
        with rasterio.open(tmp_path / "tile" / f"{m}.tif") as ds:
            assert ds.descriptions == ("B01", "B8A", "B08") and ds.dtypes[0] == "uint16" and ds.nodata == 0
            assert np.array_equal(ds.read(), first[m])
