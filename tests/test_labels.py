"""Labels: polygons in any CRS -> class raster, checked against shapely areas computed independently."""

from __future__ import annotations

import json

import geopandas as gpd
import numpy as np
import pyogrio
import pytest
import rasterio
import shapely
from shapely.geometry import Point, Polygon, box

from helpers import run_cli
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.labels import prepare_labels, rasterize_tile, summarize

BBOX = (128.125, 43.60, 128.20, 43.66)  # ~6 x 6.7 km, UTM 52N
CLASSES = {
    1: {"name": "tectonic", "name_zh": "构造地貌", "values": ["构造地貌", "tectonic"]},
    2: {"name": "volcanic", "name_zh": "火山熔岩地貌", "values": ["火山熔岩地貌", "volcanic"]},
    3: {"name": "fluvial", "name_zh": "流水地貌", "values": ["流水地貌", "fluvial"]},
}


def _utm_polys():
    """Large polygons in UTM 52N (metres): a lava field, a valley strip, a mountain block, a bow-tie."""
    lava = Point(431500, 4831500).buffer(1500, 64)
    valley = Polygon([(428900, 4828000), (435000, 4828000), (435000, 4828900), (428900, 4828700)])
    mountains = box(429000, 4833300, 433000, 4834400)
    bowtie = Polygon([(433600, 4830500), (434600, 4832100), (434600, 4830500), (433600, 4832100)])  # self-crossing
    return [lava, valley, mountains, bowtie], ["火山熔岩地貌", "流水地貌", "构造地貌", "tectonic"]


def _write(path, geoms, values, crs="EPSG:32652", to=None, field="genesis"):
    gdf = gpd.GeoDataFrame({field: values}, geometry=geoms, crs=crs)
    if to:
        gdf = gdf.to_crs(to)
    pyogrio.write_dataframe(gdf, path)
    return path


def _run_all(src, tmp_path, tile_chips=2, **kw):
    grid = build_grid(bbox=BBOX, tile_chips=tile_chips)
    summary = prepare_labels(src, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json", **kw)
    arr = np.zeros((grid.height, grid.width), dtype=np.uint8)
    counts = []
    for t in grid.tiles():
        c = rasterize_tile(tmp_path / "p.gpkg", grid, t.id, tmp_path / f"{t.id}.tif")
        (tmp_path / f"{t.id}.json").write_text(json.dumps(c))
        counts.append(tmp_path / f"{t.id}.json")
        with rasterio.open(tmp_path / f"{t.id}.tif") as ds:
            assert ds.dtypes == ("uint8",) and ds.crs.to_epsg() == 32652
            arr[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] = ds.read(1)
    full = summarize(tmp_path / "p.json", counts, tmp_path / "summary.json")
    return grid, arr, summary, full


def test_pixel_areas_match_polygon_areas_and_chinese_values_map(tmp_path):
    geoms, values = _utm_polys()
    # stored in WGS84: the stage reprojects to the grid's UTM zone
    src = _write(tmp_path / "polys.gpkg", geoms, values, to="EPSG:4326")
    grid, arr, summary, full = _run_all(src, tmp_path)
    # independent areas: the original UTM polygons (bow-tie repaired by hand into its two triangles)
    lobes = shapely.MultiPolygon([Polygon([(433600, 4830500), (434100, 4831300), (433600, 4832100)]),
                                  Polygon([(434600, 4830500), (434100, 4831300), (434600, 4832100)])])
    expected = {2: geoms[0].area, 3: geoms[1].area, 1: geoms[2].area + lobes.area}
    for cid, area in expected.items():
        assert (arr == cid).sum() * 100.0 == pytest.approx(area, rel=0.01), cid
        assert full["classes"][str(cid)]["pixels"] == (arr == cid).sum()
    # points well inside each polygon carry its class
    def value_at(x, y):
        return arr[int((grid.y_max - y) // 10), int((x - grid.x_min) // 10)]
    assert value_at(431500, 4831500) == 2 and value_at(431000, 4828400) == 3 and value_at(431000, 4833800) == 1
    assert value_at(433700, 4831300) == 1 and value_at(434500, 4831300) == 1  # both bow-tie lobes
    assert value_at(434100, 4830600) == 0  # between the lobes: unlabelled
    assert summary["repaired"] == 1
    assert full["unlabelled_pixels"] == (arr == 0).sum()


def test_tiled_equals_untiled(tmp_path):
    geoms, values = _utm_polys()
    src = _write(tmp_path / "polys.gpkg", geoms, values, to="EPSG:4326")
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    g1, a, _, _ = _run_all(src, tmp_path / "a", tile_chips=2)
    g2, b, _, _ = _run_all(src, tmp_path / "b", tile_chips=256)
    assert len(g1.tiles()) > 4 and len(g2.tiles()) == 1
    assert np.array_equal(a, b)


def test_unknown_values_listed_with_counts_or_ignored(tmp_path):
    geoms, values = _utm_polys()
    src = _write(tmp_path / "polys.gpkg", geoms + [box(0, 0, 1, 1)] * 3, values + ["冰川地貌", "冰川地貌", "karst"])
    grid = build_grid(bbox=BBOX)
    with pytest.raises(GosBuildError) as info:
        prepare_labels(src, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json")
    msg = str(info.value)
    assert "values of 'genesis' not in classes: 'karst' (1 feature), '冰川地貌' (2 features)" in msg
    assert not (tmp_path / "p.gpkg").exists()
    summary = prepare_labels(src, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json",
                             unknown_values="ignore")
    assert summary["skipped"]["unknown_value"] == 3 and summary["unknown_values"] == {"karst": 1, "冰川地貌": 2}


def test_file_without_crs_is_refused(tmp_path):
    geoms, values = _utm_polys()
    shp = _write(tmp_path / "polys.shp", geoms, values)
    (tmp_path / "polys.prj").unlink()
    res = run_cli("inputs", "polygons", "--grid", _grid_file(tmp_path), "--out", str(tmp_path / "p.json"),
                  "--config", json.dumps({"inputs": {"polygons": str(shp), "class_field": "genesis"}}))
    assert res.returncode == 2
    assert res.stderr.strip() == f"gos-build: error: inputs.polygons: {shp} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326)"


def _grid_file(tmp_path):
    p = tmp_path / "grid.json"
    p.write_text(build_grid(bbox=BBOX).to_json())
    return str(p)


def test_overlap_rules(tmp_path):
    lava = box(430000, 4831000, 432000, 4833000)  # fid 1, volcanic
    valley = box(431000, 4830000, 433000, 4832000)  # fid 2, fluvial; overlaps lava by 1 km2
    src = _write(tmp_path / "o.gpkg", [lava, valley], ["volcanic", "fluvial"])
    fids = pyogrio.read_dataframe(src, fid_as_index=True).index.tolist()
    grid = build_grid(bbox=BBOX, tile_chips=256)  # one tile
    assert len(grid.tiles()) == 1
    with pytest.raises(GosBuildError) as info:
        prepare_labels(src, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json", overlap="error")
    assert f"polygons of different classes overlap: features {fids[0]} and {fids[1]}: 1000000 m2" in str(info.value)

    def centre_value(rule):
        prepare_labels(src, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json", overlap=rule)
        t = grid.tiles()[0]
        rasterize_tile(tmp_path / "p.gpkg", grid, t.id, tmp_path / "t.tif")
        with rasterio.open(tmp_path / "t.tif") as ds:
            row, col = ds.index(431500, 4831500)
            return ds.read(1)[row, col]

    assert centre_value("first") == 2  # the lava polygon comes first in the file
    assert centre_value("priority") == 2  # volcanic (2) is listed before fluvial (3) in classes
    reordered = {3: CLASSES[3], 1: CLASSES[1], 2: CLASSES[2]}
    prepare_labels(src, "genesis", reordered, grid, tmp_path / "p.gpkg", tmp_path / "p.json", overlap="priority")
    rasterize_tile(tmp_path / "p.gpkg", grid, grid.tiles()[0].id, tmp_path / "t.tif")
    with rasterio.open(tmp_path / "t.tif") as ds:
        row, col = ds.index(431500, 4831500)
        assert ds.read(1)[row, col] == 3  # fluvial first in classes now wins


def test_empty_and_non_polygon_geometries_are_skipped_and_counted(tmp_path):
    geoms, values = _utm_polys()
    gdf = gpd.GeoDataFrame({"genesis": values + ["tectonic", "fluvial"]},
                           geometry=geoms + [Point(431000, 4831000), Polygon()], crs="EPSG:32652")
    src = tmp_path / "mixed.gpkg"
    pyogrio.write_dataframe(gdf, src, geometry_type="Unknown")
    summary = prepare_labels(src, "genesis", CLASSES, build_grid(bbox=BBOX), tmp_path / "p.gpkg", tmp_path / "p.json")
    assert summary["skipped"]["not_polygon"] == 1 and summary["skipped"]["empty"] == 1
    assert summary["classes"]["1"]["features"] == 2


def test_polygons_outside_the_aoi_and_missing_field(tmp_path):
    far = _write(tmp_path / "far.gpkg", [box(0, 0, 1000, 1000)], ["tectonic"])
    grid = build_grid(bbox=BBOX)
    with pytest.raises(GosBuildError, match="no polygon touches the AOI"):
        prepare_labels(far, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json")
    with pytest.raises(GosBuildError, match="inputs.class_field: .* has no field 'landform' \\(fields: genesis\\)"):
        prepare_labels(far, "landform", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json")


def test_shared_edges_digitised_differently_are_not_overlaps(tmp_path):
    """Two lon/lat polygons sharing an edge, one with an extra vertex on it: no overlap in the file's CRS.

    Reprojected to UTM, the straight edge and its two-segment copy bend apart by millimetres over
    kilometres (square metres of fake overlap); overlaps are therefore judged before reprojection.
    """
    west = Polygon([(128.10, 43.60), (128.15, 43.60), (128.15, 43.70), (128.10, 43.70)])
    east = Polygon([(128.15, 43.60), (128.20, 43.60), (128.20, 43.70), (128.15, 43.70), (128.15, 43.6537)])
    src = _write(tmp_path / "edge.gpkg", [west, east], ["tectonic", "fluvial"], crs="EPSG:4326")
    import geopandas as gpd

    utm = gpd.read_file(src).to_crs("EPSG:32652")
    assert utm.geometry[0].intersection(utm.geometry[1]).area > 0.01  # the reprojection artefact exists ...
    summary = prepare_labels(src, "genesis", CLASSES, build_grid(bbox=BBOX), tmp_path / "p.gpkg", tmp_path / "p.json")
    assert summary["overlaps_resolved"] == 0  # ... and is not an overlap


# -- files as labs have them: encodings, Z, full-width spaces, numeric codes -------------------------
def _gbk_shapefile(tmp_path, with_cpg=False):
    """The test polygons as a Shapefile whose attributes are GBK bytes, without .cpg (older ArcGIS exports)."""
    geoms, values = _utm_polys()
    gdf = gpd.GeoDataFrame({"genesis": values}, geometry=geoms, crs="EPSG:32652")
    shp = tmp_path / "gbk" / "polys.shp"
    shp.parent.mkdir()
    pyogrio.write_dataframe(gdf, shp, encoding="GBK")
    assert (shp.parent / "polys.cpg").read_text() == "GBK"
    if not with_cpg:
        (shp.parent / "polys.cpg").unlink()
    raw = (shp.parent / "polys.dbf").read_bytes()
    assert "构造地貌".encode("gbk") in raw and "构造地貌".encode("utf-8") not in raw  # really GBK on disk
    return shp


def test_gbk_shapefile_without_cpg(tmp_path):
    shp = _gbk_shapefile(tmp_path)
    grid = build_grid(bbox=BBOX)
    with pytest.raises(GosBuildError) as info:
        prepare_labels(shp, "genesis", CLASSES, grid, tmp_path / "p.gpkg", tmp_path / "p.json")
    msg = str(info.value)
    # OGR read the GBK bytes as Latin-1; the message names what they are and the key that fixes it
    assert "'¹¹ÔìµØÃ²' (1 feature)" in msg
    assert msg.endswith("values look like GBK-encoded text read as Latin-1 ('构造地貌', '流水地貌', '火山熔岩地貌'): "
                        "set inputs.polygons_encoding: gbk")
    assert not (tmp_path / "p.gpkg").exists()
    # with the key: the same labels as the same polygons in a GeoPackage
    _, arr_shp, summary, _ = _run_all(shp, tmp_path / "shp", encoding="gbk")
    geoms, values = _utm_polys()
    _, arr_gpkg, _, _ = _run_all(_write(tmp_path / "same.gpkg", geoms, values), tmp_path / "gpkg")
    assert np.array_equal(arr_shp, arr_gpkg) and set(np.unique(arr_gpkg)) == {0, 1, 2, 3}
    assert summary["encoding"] == "gbk"


def test_gbk_through_the_resolver_and_the_cli(tmp_path):
    shp = _gbk_shapefile(tmp_path)
    cfg = {"inputs": {"polygons": str(shp), "class_field": "genesis", "polygons_encoding": "GBK"}}
    res = run_cli("inputs", "polygons", "--grid", _grid_file(tmp_path), "--out", str(tmp_path / "p.json"),
                  "--config", json.dumps(cfg))
    assert res.returncode == 0, res.stderr
    man = json.loads((tmp_path / "p.json").read_text())
    assert man["encoding_configured"] == "gbk" and man["encoding_declared"] is False
    cfg["inputs"]["polygons_encoding"] = "klingon"
    res = run_cli("inputs", "polygons", "--grid", _grid_file(tmp_path), "--out", str(tmp_path / "q.json"),
                  "--config", json.dumps(cfg))
    assert res.returncode == 2 and res.stderr.strip() == ("gos-build: error: inputs.polygons_encoding: 'klingon' is "
                                                          "not a known text encoding (e.g. gbk, gb18030, big5, utf-8)")


def test_gbk_shapefile_with_cpg_needs_no_key(tmp_path):
    shp = _gbk_shapefile(tmp_path, with_cpg=True)
    _, arr, _, _ = _run_all(shp, tmp_path)
    assert set(np.unique(arr)) == {0, 1, 2, 3}


def test_utf8_shapefile_without_cpg_gets_the_utf8_hint(tmp_path):
    geoms, values = _utm_polys()
    shp = tmp_path / "u" / "polys.shp"
    shp.parent.mkdir()
    pyogrio.write_dataframe(gpd.GeoDataFrame({"genesis": values}, geometry=geoms, crs="EPSG:32652"), shp,
                            encoding="UTF-8")
    (shp.parent / "polys.cpg").unlink()
    with pytest.raises(GosBuildError, match=r"values look like UTF-8-encoded text read as Latin-1 .*"
                                            r"set inputs.polygons_encoding: utf-8$"):
        prepare_labels(shp, "genesis", CLASSES, build_grid(bbox=BBOX), tmp_path / "p.gpkg", tmp_path / "p.json")


def test_polygon_z_full_width_spaces_nfkc_and_numeric_codes(tmp_path):
    geoms, values = _utm_polys()
    _, ref, _, _ = _run_all(_write(tmp_path / "ref.gpkg", geoms, values), tmp_path / "ref")
    # PolygonZ / MultiPolygonZ with heights: Z is dropped
    z_geoms = [shapely.force_3d(g, 250.0) for g in geoms[:3]] + [shapely.MultiPolygon([geoms[3]])]
    z_geoms[3] = shapely.force_3d(z_geoms[3], 300.0)
    src = _write(tmp_path / "z.gpkg", z_geoms, values)
    assert pyogrio.read_info(src)["geometry_type"] in ("Polygon Z", "Unknown (any) Z", "MultiPolygon Z")
    _, arr, summary, _ = _run_all(src, tmp_path / "z")
    assert np.array_equal(arr, ref) and summary["z_dropped"] is True
    # full-width spaces around the names, and names in compatibility forms (NFKC-equal)
    padded = [f"\u3000{v}\u3000" for v in values[:3]] + ["ｔｅｃｔｏｎｉｃ"]  # full-width Latin letters
    _, arr, _, _ = _run_all(_write(tmp_path / "fw.gpkg", geoms, padded), tmp_path / "fw")
    assert np.array_equal(arr, ref)
    # numeric class codes in an integer field, matched against values: [1], [2], [3]
    coded = {cid: dict(c, values=[cid]) for cid, c in CLASSES.items()}
    grid = build_grid(bbox=BBOX, tile_chips=2)
    src = _write(tmp_path / "codes.gpkg", geoms, [2, 3, 1, 1], field="code")
    assert pyogrio.read_info(src)["dtypes"].tolist() == ["int64"]
    summary = prepare_labels(src, "code", coded, grid, tmp_path / "c.gpkg", tmp_path / "c.json")
    assert {cid: c["features"] for cid, c in summary["classes"].items()} == {"1": 2, "2": 1, "3": 1}
