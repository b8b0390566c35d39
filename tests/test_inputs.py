"""Input resolvers: config globs -> manifests, the only place where globs are expanded."""

from __future__ import annotations

import json

import pytest

from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.inputs import expand, read_manifest, resolve, write_manifest
from helpers import AUVERGNE_BBOX, run_cli


def test_every_glob_matching_nothing_is_named_at_once(tmp_path):
    (tmp_path / "a.hgt").write_bytes(b"")
    with pytest.raises(GosBuildError) as info:
        expand([str(tmp_path / "*.hgt"), str(tmp_path / "x*.tif"), str(tmp_path / "y*.tif")], "dem")
    assert str(info.value).splitlines() == [f"inputs.dem: '{tmp_path}/x*.tif' matches no file",
                                            f"inputs.dem: '{tmp_path}/y*.tif' matches no file"]


def test_manifests_of_the_demo_inputs(auvergne_demo, tmp_path):
    grid = build_grid(bbox=AUVERGNE_BBOX, tile_chips=8)
    cfg = {"inputs": {"sentinel2": [str(auvergne_demo / "sentinel2" / "*.SAFE")],
                      "dem": [str(auvergne_demo / "srtm" / "*.hgt")],
                      "polygons": str(auvergne_demo / "polygons.gpkg"), "class_field": "genesis"},
           "sentinel2": {"mask_snow": True}}
    s2 = resolve("sentinel2", cfg, grid)
    (product,) = s2["products"]
    assert s2["kind"] == "sentinel2" and s2["invalid_scl"] == [0, 1, 3, 8, 9, 10, 11]
    assert product["baseline"] == "05.09" and product["offsets"] == {"B04": -1000.0, "B03": -1000.0, "B02": -1000.0}
    safe = next((auvergne_demo / "sentinel2").glob("*.SAFE"))
    assert product["bytes"] == sum(f.stat().st_size for f in safe.rglob("*") if f.is_file())
    dem = resolve("dem", cfg, grid)
    assert [f["width"] for f in dem["files"]] == [3601] * len(dem["files"]) and dem["crs"] == "EPSG:4326"
    poly = resolve("polygons", cfg, grid)
    assert poly["fields"] == ["id", "genesis"] and poly["crs"] == "EPSG:4326" and poly["layer"] == "landforms"
    assert poly["bytes"] == (auvergne_demo / "polygons.gpkg").stat().st_size
    write_manifest(tmp_path / "dem.json", dem)
    assert read_manifest(tmp_path / "dem.json", "dem") == json.loads(json.dumps(dem))
    with pytest.raises(GosBuildError, match="an inputs manifest of 'dem', expected 'polygons'"):
        read_manifest(tmp_path / "dem.json", "polygons")


def test_polygons_resolver_refusals(auvergne_demo, tmp_path):
    grid = build_grid(bbox=AUVERGNE_BBOX)
    cfg = {"inputs": {"polygons": str(auvergne_demo / "polygons.gpkg"), "class_field": "landform"}}
    with pytest.raises(GosBuildError, match=r"inputs.class_field: .*polygons.gpkg has no field 'landform' "
                                            r"\(fields: id, genesis\)"):
        resolve("polygons", cfg, grid)
    for name in ("a.gpkg", "b.gpkg"):
        (tmp_path / name).write_bytes((auvergne_demo / "polygons.gpkg").read_bytes())
    cfg = {"inputs": {"polygons": str(tmp_path / "*.gpkg"), "class_field": "genesis"}}
    with pytest.raises(GosBuildError, match="matches 2 files; name one vector file"):
        resolve("polygons", cfg, grid)


def test_inputs_command_writes_nothing_on_error(tmp_path):
    grid = tmp_path / "grid.json"
    grid.write_text(build_grid(bbox=AUVERGNE_BBOX).to_json())
    res = run_cli("inputs", "dem", "--grid", str(grid), "--out", str(tmp_path / "dem.json"),
                  "--config", json.dumps({"inputs": {"dem": [str(tmp_path / "*.hgt")]}}))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip() == f"gos-build: error: inputs.dem: '{tmp_path}/*.hgt' matches no file"
    assert not (tmp_path / "dem.json").exists()
