"""Extra terrain layers (``terrain.extra``) against their references: gdaldem, brute force, GRASS 8.2.

The DEM is real: matplotlib's Jacksboro fault sample, written as a projected GeoTIFF with square 10 m
pixels (the grid's resolution). GRASS (Debian ``grass-core``) runs in a temporary location made from
the GeoTIFF's own CRS.
"""

from __future__ import annotations

import hashlib
import json
import math
import subprocess

import numpy as np
import pytest
import rasterio
from affine import Affine

from helpers import AUVERGNE_BBOX, require_tool
from gos_build import geomorphometry as gm
from gos_build.config import check_config, with_defaults
from gos_build.errors import GosBuildError

RES = 10.0


@pytest.fixture(scope="module")
def dem(tmp_path_factory):
    import matplotlib.cbook as cbook

    z = np.asarray(cbook.get_sample_data("jacksboro_fault_dem.npz")["elevation"], dtype=np.float32)
    folder = tmp_path_factory.mktemp("jacksboro10")
    with rasterio.open(folder / "dem.tif", "w", driver="GTiff", width=z.shape[1], height=z.shape[0], count=1,
                       dtype="float32", crs="EPSG:32616", transform=Affine(RES, 0, 730000, 0, -RES, 4070000),
                       nodata=-9999.0) as ds:
        ds.write(z, 1)
    return folder, z


def _read(path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1, masked=True).astype(np.float64).filled(np.nan)


def _gdaldem(folder, mode, *extra) -> np.ndarray:
    exe = require_tool("gdaldem")
    out = folder / f"gdal_{mode}.tif"
    subprocess.run([exe, mode, str(folder / "dem.tif"), str(out), "-q", *extra], check=True)
    return _read(out)


@pytest.fixture(scope="module")
def grass(dem):
    """GRASS's r.slope.aspect curvatures and r.geomorphon forms of the DEM (two parameter sets)."""
    exe = require_tool("grass", "grass-core")
    folder, _ = dem
    script = folder / "grass.sh"
    script.write_text("\n".join([
        "set -e",
        "r.in.gdal input=dem.tif output=dem --quiet",
        "g.region raster=dem",
        "r.slope.aspect elevation=dem pcurvature=pc tcurvature=tc --quiet",
        "r.geomorphon -m elevation=dem forms=g500 search=500 skip=0 flat=1 --quiet",
        "r.geomorphon -m elevation=dem forms=g300 search=300 skip=20 flat=2 --quiet",
        *(f"r.out.gdal input={m} output={m}.tif type=Float64 --quiet -f" for m in ("pc", "tc")),
        *(f"r.out.gdal input={m} output={m}.tif type=Byte nodata=0 --quiet -f" for m in ("g500", "g300")),
    ]) + "\n")
    res = subprocess.run([exe, "--tmp-location", "dem.tif", "--exec", "bash", "grass.sh"], cwd=folder,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    return {m: _read(folder / f"{m}.tif") for m in ("pc", "tc", "g500", "g300")}


@pytest.mark.parametrize("kind,mode", [("tri", ["TRI", "-alg", "Riley"]), ("roughness", ["roughness"]),
                                       ("tpi", ["TPI"])])
def test_3x3_kinds_equal_gdaldem(dem, kind, mode):
    folder, z = dem
    ref = _gdaldem(folder, *mode)[1:-1, 1:-1]  # gdaldem leaves its one-pixel border nodata
    mine = gm.compute({"kind": kind}, z, 1, RES)
    assert mine.shape == ref.shape and not np.isnan(mine).any()
    np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=2e-5)  # gdaldem writes float32


def test_3x3_kinds_are_nodata_where_their_window_touches_nodata(dem, tmp_path):
    _, z = dem
    holed = z.copy()
    holed[100:104, 200:203] = np.nan
    for kind in ("tri", "roughness", "tpi", "profile_curvature", "tangential_curvature"):
        out = gm.compute({"kind": kind}, holed, 1, RES)
        bad = np.isnan(out)
        assert bad[98:104, 198:203].all() and bad.sum() == 6 * 5, kind  # the hole grown by one cell


def _brute_disc(z: np.ndarray, radius_m: float, halo: int):
    """Mean without and with the centre, and the population std, over the cells whose centres lie within
    ``radius_m``, by explicit offsets (float64 sums of shifted arrays)."""
    r = np.arange(-halo, halo + 1) * RES
    dy, dx = np.meshgrid(r, r, indexing="ij")
    inside = np.hypot(dx, dy) <= radius_m * (1 + 1e-12)
    h, w = z.shape[0] - 2 * halo, z.shape[1] - 2 * halo
    zz = z.astype(np.float64)
    stack = np.stack([zz[halo + a : halo + a + h, halo + b : halo + b + w]
                      for a, b in zip(*np.nonzero(inside) - np.array([[halo], [halo]]))])
    centre = zz[halo:-halo, halo:-halo]
    n = stack.shape[0]
    return (stack.sum(0) - centre) / (n - 1), stack.mean(0), stack.std(0), n


@pytest.mark.parametrize("radius_m", [10 * math.sqrt(2), 55.0, 300.0])
def test_disc_tpi_and_dev_equal_brute_force(dem, radius_m):
    _, z = dem
    halo = gm.disc_halo(radius_m, RES)
    mean_ex, mean_in, std, n = _brute_disc(z, radius_m, halo)
    centre = z[halo:-halo, halo:-halo].astype(np.float64)
    tpi = gm.compute({"kind": "tpi", "radius_m": radius_m}, z, halo, RES)
    np.testing.assert_allclose(tpi, centre - mean_ex, rtol=0, atol=1e-9)
    dev = gm.compute({"kind": "dev", "radius_m": radius_m}, z, halo, RES)
    want = np.where(std > 0, (centre - mean_in) / np.where(std > 0, std, 1), 0.0)
    np.testing.assert_allclose(dev, want, rtol=0, atol=1e-8)
    assert n == {1: 9, 5: 97, 30: 2821}[halo]  # cells of each disc, counted apart
    if halo == 1:  # a radius of 10 sqrt(2) m is gdaldem's eight neighbours
        np.testing.assert_array_equal(tpi, gm.tpi3(z, 1))


def test_disc_is_nodata_where_it_reaches_nodata_and_exact_wherever_the_array_starts(dem):
    _, z = dem
    holed = z.copy()
    holed[150, 150] = np.nan
    spec = {"kind": "tpi", "radius_m": 55.0}
    out = gm.compute(spec, holed, 5, RES)
    rows, cols = np.nonzero(np.isnan(out))
    d = np.hypot(rows + 5 - 150, cols + 5 - 150) * RES
    assert (d <= 55.0 + 1e-9).all() and len(rows) == 97
    # integer sums: the value of a cell does not depend on where the array starts (float prefix sums would)
    for kind in ("tpi", "dev"):
        spec = {"kind": kind, "radius_m": 300.0}
        a = gm.compute(spec, z, 30, RES)
        b = gm.compute(spec, z[7:, 13:], 30, RES)
        assert np.array_equal(a[7:, 13:], b), kind


def test_curvatures_equal_grass_r_slope_aspect(dem, grass):
    _, z = dem
    for kind, ref in (("profile_curvature", grass["pc"]), ("tangential_curvature", grass["tc"])):
        mine = gm.compute({"kind": kind}, z, 1, RES)
        ref = ref[1:-1, 1:-1]
        scale = np.nanpercentile(np.abs(ref), 99)
        assert np.isfinite(ref).all() and scale > 0
        assert np.nanmax(np.abs(mine - ref)) <= 0.01 * scale, kind


@pytest.mark.parametrize("search,skip,flat,key", [(500.0, 0.0, 1.0, "g500"), (300.0, 20.0, 2.0, "g300")])
def test_geomorphons_equal_grass_r_geomorphon(dem, grass, search, skip, flat, key):
    """Equal at >= 99 % of the cells whose lines of sight lie inside the DEM (here: all of them); GRASS leaves
    the cells within skip + 1 of the edge null, and its lines end at the edge."""
    _, z = dem
    spec = {"kind": "geomorphons", "search_m": search, "skip_m": skip, "flat_deg": flat}
    halo = gm.halo_px(spec, RES)
    padded = np.pad(z.astype(np.float64), halo, constant_values=np.nan)  # outside the DEM: nodata, as in GRASS
    mine = gm.compute(spec, padded, halo, RES)
    ref = grass[key]
    inner = (slice(halo, -halo), slice(halo, -halo))
    a, b = ref[inner], mine[inner]
    assert np.isfinite(a).all()
    assert (a == b).mean() >= 0.99
    assert set(np.unique(b)) <= set(range(1, 11)) and len(np.unique(b)) >= 6
    edge = np.isfinite(ref) & np.isfinite(mine)
    assert (ref[edge] == mine[edge]).mean() >= 0.99  # even near the edge, where both see part of the lines


def test_tiled_equals_untiled_at_a_2_km_radius_reading_only_the_halo(auvergne_demo, tmp_path, monkeypatch):
    from gos_build import dem as dem_stage
    from gos_build.dem import build_mosaic
    from gos_build.grid import build_grid
    from gos_build.inputs import resolve
    from gos_build.terrain import terrain_window

    aoi = (2.965, 45.725, 2.995, 45.755)
    small = build_grid(bbox=aoi, tile_chips=2)  # 1280 m tiles
    whole = build_grid(bbox=aoi, tile_chips=64)
    assert len(small.tiles()) >= 9 and len(whole.tiles()) == 1
    vrt = tmp_path / "mosaic.vrt"
    build_mosaic(resolve("dem", {"inputs": {"dem": [str(auvergne_demo / "srtm" / "*.hgt")]}}, small), vrt)
    extra = {"tpi_2k": {"kind": "tpi", "radius_m": 2000}, "dev_2k": {"kind": "dev", "radius_m": 2000},
             "forms": {"kind": "geomorphons", "search_m": 1500, "skip_m": 30, "flat_deg": 1.5},
             "pcurv": {"kind": "profile_curvature"}, "tri": {"kind": "tri"}}
    read = []
    real = dem_stage.dem_for_window

    def spy(mosaic, grid, window, *args, **kwargs):
        read.append(window)
        return real(mosaic, grid, window, *args, **kwargs)

    monkeypatch.setattr(dem_stage, "dem_for_window", spy)
    untiled = terrain_window(whole, whole.tiles()[0].window, vrt, extra=extra)
    tiled = np.full_like(untiled, np.nan)
    for t in small.tiles():
        read.clear()
        part = terrain_window(small, t.window, vrt, extra=extra, block_rows=64)  # blocks change nothing either
        tiled[:, t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] = part
        (win,) = read  # the DEM as far around the tile as the 2 km disc needs: 200 px each side
        assert (win.width, win.height) == (t.width + 400, t.height + 400)
    assert untiled.shape[0] == 8 + len(extra)
    assert np.array_equal(tiled, untiled)
    assert (untiled[8:] != -9999).mean() > 0.99  # the demo DEM reaches 2 km past this AOI


# -- the config ------------------------------------------------------------------------------------
def _config(extra, **grid):
    from helpers import default_config

    cfg = default_config()
    cfg["terrain"]["extra"] = extra
    cfg["grid"].update(grid)
    return cfg


@pytest.mark.parametrize("extra,message", [
    ({"t": {"kind": "slopes"}}, "config key 'terrain.extra.t.kind': expected one of"),
    ({"d": {"kind": "dev"}}, "config key 'terrain.extra.d.radius_m': missing (kind dev needs it)"),
    ({"d": {"kind": "dev", "radius_m": 0}}, "config key 'terrain.extra.d.radius_m': expected a value > 0"),
    ({"d": {"kind": "dev", "radius_m": -50}}, "config key 'terrain.extra.d.radius_m': expected a value > 0"),
    ({"t": {"kind": "tpi", "radius_m": 5}}, "config key 'terrain.extra.t.radius_m': 5 m is below one cell (10 m)"),
    ({"g": {"kind": "geomorphons"}}, "config key 'terrain.extra.g.search_m': missing"),
    ({"r": {"kind": "tri", "radius_m": 100}}, "config key 'terrain.extra.r.radius_m': kind tri takes no parameter"),
    ({"slope": {"kind": "tri"}}, "config key 'terrain.extra.slope': the name 'slope' is taken"),
    ({"rgb": {"kind": "tri"}}, "config key 'terrain.extra.rgb': the name 'rgb' is taken"),
    ({"s2": {"kind": "tri"}}, "config key 'terrain.extra.s2': the name 's2' is taken"),
    ({"s2_spring": {"kind": "tri"}}, "the name 's2_spring' is taken"),
    ({"Bad-Name": {"kind": "tri"}}, "config key 'terrain.extra': layer names are lower-case"),
])
def test_bad_extra_layers_are_config_errors_naming_the_key(extra, message):
    with pytest.raises(GosBuildError) as exc:
        check_config(_config(extra))
    assert message in str(exc.value), str(exc.value)


def test_a_radius_larger_than_the_aoi_is_refused_with_its_size():
    from gos_build.grid import grid_from_config

    cfg = _config({"far": {"kind": "tpi", "radius_m": 25000}})
    check_config(cfg)
    with pytest.raises(GosBuildError, match=r"terrain.extra.far.radius_m': 25000 m is larger than the AOI "
                                            r"\(10\.\d\d x 10\.\d\d km\)"):
        grid_from_config(with_defaults(cfg))


def test_registry_from_the_config_and_back_from_the_dataset(tmp_path):
    from gos_build.layout import GOS10M, LAYERS_FILE, dataset_layers, layers_from_config, layers_text

    assert layers_from_config(with_defaults(_config({}))) == GOS10M and layers_text(GOS10M) is None
    cfg = with_defaults(_config({"tpi_300": {"kind": "tpi", "radius_m": 300},
                                 "landforms": {"kind": "geomorphons", "search_m": 500}}))
    reg = layers_from_config(cfg)
    assert reg.names[:9] == GOS10M.names and reg.names[9:] == ("landforms", "tpi_300")  # by name
    assert reg.elevation == (*GOS10M.elevation, "landforms", "tpi_300")
    assert [reg[n].tile_band for n in reg.elevation] == list(range(1, 11))
    forms = reg["landforms"]
    assert (forms.dtype, forms.nodata, forms.units) == ("uint8", 0, "class")
    assert [(v, n) for v, n, _ in forms.classes][:3] == [(1, "flat"), (2, "peak"), (3, "ridge")]
    assert reg["tpi_300"].units == "m" and "300 m" in reg["tpi_300"].description
    (tmp_path / LAYERS_FILE).write_text(layers_text(reg), encoding="utf-8")
    assert dataset_layers(tmp_path) == reg
    assert dataset_layers(tmp_path / "none") == GOS10M  # a dataset without layers.json: GOS10m's nine
    (tmp_path / LAYERS_FILE).write_text('{"layers": [{"name": "../x"}]}', encoding="utf-8")
    with pytest.raises(GosBuildError, match="layers.json: not a gos-build layers file"):
        dataset_layers(tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text(layers_text(reg), encoding="utf-8")
    (tmp_path / LAYERS_FILE).unlink()
    (tmp_path / LAYERS_FILE).symlink_to(outside)
    with pytest.raises(GosBuildError, match="a symbolic link \\(not opened\\)"):
        dataset_layers(tmp_path)


def test_baseline_compares_with_and_without_the_extra_layers():
    from gos_build.ml import GOS10M_VARIANT, TERRAIN, expand_variants, variant_inputs

    terrain = (*TERRAIN, "landforms", "tpi_300")
    names = expand_variants(["rgb", "drop-one"], terrain)
    assert names[:3] == ["rgb+terrain", GOS10M_VARIANT, "rgb"] and "rgb+terrain-tpi_300" in names
    assert variant_inputs(GOS10M_VARIANT, terrain) == (("rgb",), list(range(8)))
    assert GOS10M_VARIANT not in expand_variants(["rgb"])  # GOS10m's layers only: nothing to compare


def test_extra_layers_follow_the_auvergne_grid_in_metres():
    """The AOI's own size bounds the radii (the Auvergne test AOI is ~4.7 x 5 km)."""
    from gos_build.grid import build_grid

    g = build_grid(bbox=AUVERGNE_BBOX)
    assert gm.scale_problems({"x": {"kind": "dev", "radius_m": 4000}}, g.width * 10, g.height * 10) == []
    assert gm.scale_problems({"x": {"kind": "dev", "radius_m": 6000}}, g.width * 10, g.height * 10)


# -- through the workflow: every form carries the extra layers ----------------------------------------
EXAMPLE = {"tpi3": {"kind": "tpi"}, "tpi_300": {"kind": "tpi", "radius_m": 300},
           "dev_1000": {"kind": "dev", "radius_m": 1000}, "tri": {"kind": "tri"}, "roughness": {"kind": "roughness"},
           "pcurv": {"kind": "profile_curvature"}, "tcurv": {"kind": "tangential_curvature"},
           "landforms": {"kind": "geomorphons", "search_m": 500, "flat_deg": 1.0}}


@pytest.fixture(scope="module")
def extra_dataset(inputs, tmp_path_factory):
    from helpers import AOI_A, run_workflow, workflow_config

    base = tmp_path_factory.mktemp("extra")
    res = run_workflow(base, workflow_config(inputs, "geo", AOI_A, terrain={"extra": EXAMPLE}), "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    return base / "results" / "geo" / "dataset"


@pytest.mark.slow
def test_extra_layers_in_the_tree_equal_gdaldem_on_the_chips_dem(extra_dataset, tmp_path):
    """The 3 x 3 layers of each chip, inside its one-pixel border, equal gdaldem run on the chip's own DEM file;
    geomorphons are uint8 classes 1..10 with the classes in the GeoTIFF's band description's layer."""
    from helpers import run_cli
    from gos_build.layout import chip_path, dataset_layers, read_index

    d = extra_dataset
    assert run_cli("validate", str(d)).returncode == 0
    layers = dataset_layers(d)
    assert set(EXAMPLE) <= set(layers) and layers.elevation[8:] == tuple(sorted(EXAMPLE))
    classes, chips = read_index(d)
    exe = require_tool("gdaldem")
    for c in chips[:: max(1, len(chips) // 6)]:
        name = classes[c["class_id"]]["name"]
        dem_file = d / chip_path("dem", name, c["id"])
        for layer, mode in (("tpi3", ["TPI"]), ("tri", ["TRI", "-alg", "Riley"]), ("roughness", ["roughness"])):
            out = tmp_path / f"{c['id']}_{layer}.tif"
            subprocess.run([exe, *mode[:1], str(dem_file), str(out), "-q", *mode[1:]], check=True)
            ref = _read(out)[1:-1, 1:-1]
            mine = _read(d / chip_path(layer, name, c["id"]))[1:-1, 1:-1]
            # gdaldem sums float32 elevations: a few of their spacings at this height (6e-5 m at 500-1000 m)
            tol = 8 * float(np.spacing(np.float32(np.nanmax(np.abs(_read(dem_file))))))
            np.testing.assert_allclose(mine, ref, rtol=1e-6, atol=tol, err_msg=f"{c['id']} {layer}")
        with rasterio.open(d / chip_path("landforms", name, c["id"])) as ds:
            forms = ds.read(1)
            assert ds.dtypes[0] == "uint8" and ds.nodata == 0 and ds.descriptions == ("landforms",)
        assert forms.min() >= 1 and forms.max() <= 10


@pytest.mark.slow
def test_extra_layers_in_stac_parquet_packed_croissant_and_the_loader(extra_dataset, tmp_path):
    import os
    import sys

    import zarr
    from stac_schemas import OfflineSchemas
    from gos_build.layout import chip_path, read_index

    d = extra_dataset
    classes, chips = read_index(d)
    # STAC: core and every declared extension, classification for the geomorphons' classes
    def each(item):
        assert "https://stac-extensions.github.io/classification/v1.1.0/schema.json" in item["stac_extensions"]
        forms = item["assets"]["landforms"]["classification:classes"]
        assert [(k["value"], k["name"]) for k in forms][:2] == [(1, "flat"), (2, "peak")] and len(forms) == 10
        assert set(EXAMPLE) <= set(item["assets"])

    problems = OfflineSchemas().catalogue_errors(d, chips, each)
    assert not problems, problems[:5]
    # Parquet, offline through Hugging Face datasets: the extra columns hold the tree's bytes
    script = ("import sys, hashlib, json, datasets\n"
              "ds = datasets.load_dataset(sys.argv[1])['train']\n"
              "print(json.dumps({'columns': ds.column_names, 'sha': {m: hashlib.sha256(ds[0][m]).hexdigest() "
              "for m in sys.argv[2].split(',')}, 'id': ds[0]['chip_id']}))")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    res = subprocess.run([sys.executable, "-c", script, str(d), ",".join(EXAMPLE)], capture_output=True, text=True,
                         env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert set(EXAMPLE) <= set(got["columns"])
    first = next(c for c in chips if c["id"] == got["id"])
    for m in EXAMPLE:
        tree = d / chip_path(m, classes[first["class_id"]]["name"], first["id"])
        assert got["sha"][m] == hashlib.sha256(tree.read_bytes()).hexdigest(), m
    # the packed store: every extra layer, equal to the tree
    store = zarr.open_group(str(d / "packed"), mode="r")
    ids = [str(v) for v in store["train"]["chip_id"][:]]
    by_id = {c["id"]: c for c in chips}
    for m in EXAMPLE:
        arr = store["train"][m][:]
        with rasterio.open(d / chip_path(m, classes[by_id[ids[0]]["class_id"]]["name"], ids[0])) as ds:
            assert np.array_equal(arr[0], ds.read()) and arr.dtype == ds.dtypes[0]
    # Croissant and the statistics name them
    croissant = json.loads((d / "croissant.json").read_text())
    assert set(f"{m}_path" for m in EXAMPLE) <= {f["name"] for f in croissant["recordSet"][0]["field"]}
    stats = json.loads((d / "stats.json").read_text())
    assert set(EXAMPLE) <= set(stats) and stats["landforms"]["min"][0] >= 1
    # the loader: the terrain branch holds GOS10m's eight and the extra layers
    pytest.importorskip("torch")
    from gos_build.ml import GOSDataset

    ds = GOSDataset(d, split="train", normalize=False, source="packed")
    assert ds.terrain[8:] == tuple(sorted(EXAMPLE)) and ds[0]["terrain"].shape == (16, 64, 64)
    tree = GOSDataset(d, split="train", normalize=True, source="tree")
    assert np.array_equal(tree[0]["terrain"].numpy(),
                          GOSDataset(d, split="train", normalize=True, source="parquet")[0]["terrain"].numpy())
