"""Inputs from a STAC API served on 127.0.0.1 by the tests: search, windowed COG reads, radiometry, faults."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path

import pytest
import yaml

from gos_build.demo.stac import DEM_COLLECTION, S2_COLLECTION, StacApi, write_catalogue
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid
from gos_build.inputs import resolve
from gos_build.inputs.sentinel2 import discover
from gos_build.inputs.sentinel2 import radiometry
from gos_build.inputs.stac import AUTH_ENV
from helpers import AOI_A, run_workflow, workflow_config

# no other address may be contacted: everything but loopback goes to a proxy that does not exist
NO_NETWORK = {"HTTP_PROXY": "http://127.0.0.1:9", "HTTPS_PROXY": "http://127.0.0.1:9", "http_proxy":
              "http://127.0.0.1:9", "https_proxy": "http://127.0.0.1:9", "NO_PROXY": "127.0.0.1,localhost",
              "no_proxy": "127.0.0.1,localhost", "GDAL_HTTP_PROXY": "127.0.0.1:9"}


@pytest.fixture(scope="session")
def catalogue(inputs, tmp_path_factory) -> Path:
    """The demo inputs (10 x 10 km, baseline 05.09) as an Earth-Search-like catalogue of COGs."""
    out = tmp_path_factory.mktemp("stac") / "catalogue"
    write_catalogue(inputs, out)
    return out


def _cfg(api: StacApi, **s2) -> dict:
    stac = {"api": api.url + "/", "collection": S2_COLLECTION, "datetime": "2020-10-26", "max_cloud": 20, **s2}
    return {"aoi": {"name": "aoi"}, "sentinel2": {"mask_snow": False},
            "inputs": {"sentinel2": {"stac": stac}, "dem": {"stac": {"api": api.url + "/", "collection": DEM_COLLECTION}}}}


GRID = build_grid(bbox=tuple(AOI_A), tile_chips=4)


def test_radiometry_from_the_item_equals_the_safe_route(inputs, catalogue):
    import pystac

    (safe,) = discover([str(p) for p in (inputs / "sentinel2").glob("*.SAFE")])
    (path,) = (catalogue / "items" / S2_COLLECTION).glob("*.json")
    item = pystac.Item.from_dict(json.loads(path.read_text()))
    assert radiometry(item, item.assets["red"]) == (safe.quantification, safe.offsets["B04"]) == (10000.0, -1000.0)
    # the same DN described differently: each rule applies the -1000 exactly once, or not at all
    red = item.assets["red"]
    red.extra_fields["raster:bands"] = [{"scale": 0.0001}]  # no offset in raster:bands, flag set: DN harmonised
    assert radiometry(item, red) == (10000.0, 0.0)
    item.properties["earthsearch:boa_offset_applied"] = False  # baseline 05.09, nothing applied: apply it here
    assert radiometry(item, red) == (10000.0, -1000.0)
    item.properties["s2:processing_baseline"] = "02.14"  # before 04.00 there is no offset
    assert radiometry(item, red) == (10000.0, 0.0)
    red.extra_fields.pop("raster:bands")
    assert radiometry(item, red) == (10000.0, 0.0)


def test_resolver_reads_windows_and_caches_them(catalogue, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(AUTH_ENV, "Bearer secret-token-123")
    with StacApi(catalogue, max_seconds=120) as api:
        s2 = resolve("sentinel2", _cfg(api), GRID)
        dem = resolve("dem", _cfg(api), GRID)
        requests = list(api.requests)
    assert {r[0] for r in requests} == {"127.0.0.1"}
    assert all(r[5] == "Bearer secret-token-123" for r in requests)  # the header reached the API and the COGs
    (product,) = s2["products"]
    assert product["quantification"] == 10000.0 and product["offsets"] == {"B04": -1000.0, "B03": -1000.0,
                                                                              "B02": -1000.0}
    assert product["baseline"] == "05.09" and s2["stac"]["items"][0]["processing_baseline"] == "05.09"
    cache = s2["stac"]["cache"] + dem["stac"]["cache"]
    for rec in cache:
        assert Path(rec["data"]).is_file() and Path(rec["data"]).stat().st_size == rec["bytes"]
        assert rec["path"].endswith(".vrt")  # the window seen on the asset's own lattice
        assert rec["source"].startswith("http://127.0.0.1:")
    served = sum(r[4] for r in requests if "/data/" in r[2])
    whole = s2["stac"]["whole_asset_bytes"] + dem["stac"]["whole_asset_bytes"]
    assert 0 < served < whole / 2  # range requests: far less than the whole granule and DEM tile
    text = json.dumps([s2, dem])
    assert "secret-token-123" not in text  # credentials never reach the manifest
    assert not list(tmp_path.rglob("*.tmp*"))


def test_faults_are_retried_or_stop_with_one_line(catalogue, tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("gos_build.inputs.stac.BACKOFF_S", 0.05)
    caplog.set_level(logging.INFO)
    # a 503 and a connection dropped in the middle of a body: retried, then the same windows as without faults
    faults = [{"path": r"/data/sentinel-2-l2a/.*/B04\.tif", "status": 503, "times": 2},
              {"path": r"/data/sentinel-2-l2a/.*/B03\.tif", "drop": True, "times": 1},
              {"path": r"^/search", "status": 503, "times": 1}]
    with StacApi(catalogue, faults=faults, max_seconds=120) as api:
        s2 = resolve("sentinel2", _cfg(api), GRID)
        assert [f["seen"] for f in api.faults] == [2, 1, 1]
    assert "asset 'red': HTTP response code: 503; retrying in" in caplog.text
    assert "STAC API http://127.0.0.1:" in caplog.text and "HTTP 503; retrying with backoff" in caplog.text
    reference = tmp_path / "ref"
    reference.mkdir()
    monkeypatch.chdir(reference)
    with StacApi(catalogue, max_seconds=120) as api:
        clean = resolve("sentinel2", _cfg(api), GRID)
    assert [r["sha256"] for r in s2["stac"]["cache"]] == [r["sha256"] for r in clean["stac"]["cache"]]
    # 404 on an asset: one line naming the item, the asset and its URL; nothing cached for it
    monkeypatch.chdir(tmp_path / "ref")
    faults = [{"path": r"/data/cop-dem-glo-30/", "status": 404, "times": 99}]
    with StacApi(catalogue, faults=faults, max_seconds=120) as api:
        with pytest.raises(GosBuildError) as info:
            resolve("dem", _cfg(api), GRID)
    msg = str(info.value)
    assert msg.startswith("inputs.dem: item Copernicus_DSM_COG_10_N43_00_E128_00_DEM asset 'data': HTTP 404 (not "
                          "found) at http://127.0.0.1:") and msg.endswith("/DEM.tif")
    assert not list((tmp_path / "ref").rglob("*.tmp*")) and not list((tmp_path / "ref").rglob("DEM.tif"))
    # an empty search: the query in words
    with StacApi(catalogue, max_seconds=120) as api:
        with pytest.raises(GosBuildError, match=r"^inputs.sentinel2: no sentinel-2-l2a item over the AOI on 2021-01-01 "
                                                r"with cloud <= 20 % at http://127.0.0.1:\d+/$"):
            resolve("sentinel2", _cfg(api, datetime="2021-01-01"), GRID)
        with pytest.raises(GosBuildError, match=r"no sentinel-2-l2a item with id S2X_NOPE"):
            resolve("sentinel2", _cfg(api, ids=["S2X_NOPE"]), GRID)
    # a connection that always drops: bounded retries, then one line, and no partial file
    faults = [{"path": r"/data/sentinel-2-l2a/.*/B02\.tif", "drop": True, "times": 99}]
    monkeypatch.chdir(tmp_path / "ref")
    for f in (tmp_path / "ref").rglob("B02.*"):
        f.unlink()
    with StacApi(catalogue, faults=faults, max_seconds=120) as api:
        with pytest.raises(GosBuildError, match=r"asset 'blue': cannot be read from http://127.0.0.1:\d+/data/.*B02.tif "
                                                r"after 5 tries"):
            resolve("sentinel2", _cfg(api), GRID)
    assert not list((tmp_path / "ref").rglob("B02.tif")) and not list((tmp_path / "ref").rglob("*.tmp*"))


@pytest.mark.slow
def test_stac_route_equals_the_local_file_route(inputs, catalogue, tmp_path):
    """The workflow with only a STAC API named builds the same chips as from the same COGs as local files."""
    env_guard = {**os.environ, **NO_NETWORK}
    local_cfg = workflow_config(inputs, "aoi", AOI_A)
    (item_dir,) = (catalogue / "data" / S2_COLLECTION).iterdir()
    local_cfg["inputs"].update(sentinel2=[str(item_dir)], dem=[str(catalogue / "data" / DEM_COLLECTION / "*" / "DEM.tif")],
                               polygons=str(catalogue / "polygons.gpkg"))
    res = run_workflow(tmp_path / "local", local_cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    with StacApi(catalogue, max_seconds=900) as api:
        cfg = yaml.safe_load(yaml.safe_dump(local_cfg))
        cfg["inputs"]["sentinel2"] = {"stac": {"api": api.url + "/", "collection": S2_COLLECTION,
                                               "datetime": "2020-10-26", "max_cloud": 20}}
        cfg["inputs"]["dem"] = {"stac": {"api": api.url + "/", "collection": DEM_COLLECTION}}
        res = run_workflow(tmp_path / "stac", cfg, "--cores", "2", env=env_guard)
        assert res.returncode == 0, res.stderr[-3000:]
        n = len(api.requests)
        assert n > 0 and {r[0] for r in api.requests} == {"127.0.0.1"}
        # later stages again: no server is contacted
        res = run_workflow(tmp_path / "stac", cfg, "--cores", "2", "--forcerun", "tile", env=env_guard)
        assert res.returncode == 0, res.stderr[-3000:]
        assert len(api.requests) == n
    a = (tmp_path / "local" / "results" / "aoi" / "dataset" / "MANIFEST.sha256").read_text().splitlines()
    b = (tmp_path / "stac" / "results" / "aoi" / "dataset" / "MANIFEST.sha256").read_text().splitlines()
    # the datacard (and README.md, the Hub's card holding it) names the inputs: local files here, STAC items there
    assert [ln for ln in a if not ln.endswith(("datacard.md", "README.md"))] == \
        [ln for ln in b if not ln.endswith(("datacard.md", "README.md"))]
    assert sum(ln.endswith(".tif") for ln in a) >= 9 * 10
    man = json.loads((tmp_path / "stac" / "results" / "aoi" / "inputs" / "sentinel2.json").read_text())
    assert man["stac"]["items"][0]["processing_baseline"] == "05.09" and man["stac"]["item_json"][0]["id"]
    card = (tmp_path / "stac" / "results" / "aoi" / "dataset" / "datacard.md").read_text()
    assert "From the STAC API http://127.0.0.1:" in card and "MB of tiles fetched" in card
