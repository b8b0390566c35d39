"""Config checking: each problem named by key, defaults filled, and Snakemake stopping before any job."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import pytest
import yaml

from helpers import ROOT
from gos_build.config import check_config, load_config, with_defaults
from gos_build.errors import GosBuildError

DEMO = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))


def _problems(cfg) -> str:
    with pytest.raises(GosBuildError) as info:
        check_config(cfg)
    return str(info.value)


def test_shipped_configs_are_valid():
    check_config(DEMO)
    for path in sorted((ROOT / "configs").glob("*.yaml")):
        load_config(path)


def test_unknown_key_is_named_with_a_suggestion():
    cfg = copy.deepcopy(DEMO)
    cfg["grid"]["tile_chip"] = 8
    msg = _problems(cfg)
    assert "config key 'grid': unknown key 'tile_chip' (did you mean 'tile_chips'?)" in msg


def test_unknown_top_level_key():
    cfg = copy.deepcopy(DEMO)
    cfg["chip"] = {}
    assert "unknown key 'chip' (did you mean 'chips'?)" in _problems(cfg)


def test_wrong_type_names_key_and_expectation():
    cfg = copy.deepcopy(DEMO)
    cfg["grid"]["resolution"] = "ten"
    assert "config key 'grid.resolution': expected number, got string 'ten'" in _problems(cfg)


def test_bbox_min_greater_than_max():
    cfg = copy.deepcopy(DEMO)
    cfg["aoi"]["bbox"] = [128.25, 43.60, 128.125, 43.69]
    assert "config key 'aoi.bbox': expected [lon_min, lat_min, lon_max, lat_max] with min < max" in _problems(cfg)


def test_bad_values():
    cfg = copy.deepcopy(DEMO)
    cfg["terrain"]["window"] = 8
    cfg["split"]["method"] = "stratified"
    cfg["split"]["ratios"] = {"train": 0.8, "val": 0.1, "test": 0.2}
    cfg["chips"]["min_purity"] = 1.5
    del cfg["inputs"]["class_field"]
    msg = _problems(cfg)
    assert "config key 'terrain.window': expected an odd integer, got 8" in msg
    assert "config key 'split.method': expected one of ['block', 'block_unstratified', 'random'], got string 'stratified'" in msg
    assert "config key 'split.ratios': train + val + test must be 1, got 1.1" in msg
    assert "config key 'chips.min_purity': expected a value <= 1, got 1.5" in msg
    assert "config key 'inputs.class_field': missing (required)" in msg


def test_class_value_claimed_twice():
    cfg = copy.deepcopy(DEMO)
    cfg["classes"][2]["values"].append("tectonic")
    assert "value 'tectonic' is listed for class 1 and class 2" in _problems(cfg)


def test_bbox_and_geometry_are_exclusive():
    cfg = copy.deepcopy(DEMO)
    cfg["aoi"]["geometry"] = "aoi.gpkg"
    assert "give exactly one of 'bbox' or 'geometry'" in _problems(cfg)


def test_defaults_are_filled_from_the_schema():
    cfg = {k: v for k, v in copy.deepcopy(DEMO).items() if k in ("aoi", "inputs", "classes")}
    full = with_defaults(cfg)
    assert full["grid"] == {"resolution": 10, "chip_size": 64, "stride": 64, "tile_chips": 32}
    assert full["terrain"]["hillshade"] == {"azimuth": 315, "altitude": 45}
    assert full["split"]["ratios"] == {"train": 0.7, "val": 0.1, "test": 0.2}
    assert full["labels"]["overlap"] == "error"
    assert "demo" not in full  # no demo unless asked for


def _snakemake(*args, cwd=ROOT):
    return subprocess.run([sys.executable, "-m", "snakemake", *args], cwd=cwd, capture_output=True, text=True)


@pytest.mark.parametrize("config", ["config.yaml", *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "configs").glob("*.yaml"))])
def test_dry_run_of_every_config(config, tmp_path):
    if config.endswith("gos10m.yaml"):  # the STAC route: the catalogue on 127.0.0.1, stand-in polygons
        import geopandas as gpd
        import pyogrio
        from shapely.geometry import box

        from gos_build.demo.stac import StacApi

        poly = tmp_path / "resources" / "gos10m" / "interpretation.gpkg"
        poly.parent.mkdir(parents=True)
        pyogrio.write_dataframe(gpd.GeoDataFrame({"genesis": ["构造地貌"]}, geometry=[box(128.4, 43.8, 129.2, 44.3)],
                                                 crs="EPSG:4326"), poly)
        (tmp_path / "catalogue" / "items").mkdir(parents=True)
        with StacApi(tmp_path / "catalogue", max_seconds=60) as api:
            stac = {"sentinel2": {"stac": {"api": api.url + "/", "collection": "sentinel-2-l2a"}},
                    "dem": {"stac": {"api": api.url + "/", "collection": "cop-dem-glo-30"}}}
            res = _snakemake("-n", "--configfile", str(ROOT / config), "--snakefile", str(ROOT / "Snakefile"),
                             "--directory", str(tmp_path), "--config", f"inputs={json.dumps(stac)}")
            assert api.requests == []  # planning a STAC run contacts no server: the resolver jobs do
    else:
        res = _snakemake("-n", "--configfile", str(ROOT / config), "--snakefile", str(ROOT / "Snakefile"),
                         "--directory", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "rule grid" in res.stdout + res.stderr
    if config.endswith("gos10m.yaml"):
        assert "inputs_sentinel2" in res.stdout and "tile" in res.stdout


def test_bad_config_stops_snakemake_before_any_job(tmp_path):
    bad = copy.deepcopy(DEMO)
    bad["grid"]["tile_chip"] = 8
    bad["aoi"]["bbox"] = [129, 43, 128, 44]
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(bad, allow_unicode=True), encoding="utf-8")
    res = _snakemake("--cores", "1", "--configfile", str(path), "--directory", str(tmp_path),
                     "--snakefile", str(ROOT / "Snakefile"))
    out = res.stdout + res.stderr
    assert res.returncode != 0
    assert "config key 'grid': unknown key 'tile_chip'" in out
    assert "config key 'aoi.bbox'" in out
    assert "Select jobs to execute" not in out and not (tmp_path / "results").exists()


def test_configfile_replaces_the_default_config(tmp_path):
    """A --configfile without `demo:` must not inherit the demo section or bbox of config.yaml."""
    cfg = copy.deepcopy(DEMO)
    del cfg["demo"]
    cfg["aoi"] = {"name": "mine", "bbox": [2.9, 45.7, 3.0, 45.8]}
    for key in ("sentinel2", "dem"):
        f = tmp_path / f"{key}.tif"
        f.write_bytes(b"")
        cfg["inputs"][key] = [str(f)]
    (tmp_path / "p.gpkg").write_bytes(b"")
    cfg["inputs"]["polygons"] = str(tmp_path / "p.gpkg")
    path = tmp_path / "mine.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    res = _snakemake("-n", "--configfile", str(path), "--snakefile", str(ROOT / "Snakefile"),
                     "--directory", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    assert "demo_inputs" not in res.stdout
    assert "results/mine/grid.json" in res.stdout


def test_input_glob_matching_nothing_stops_the_dry_run(tmp_path):
    cfg = copy.deepcopy(DEMO)
    del cfg["demo"]
    cfg["inputs"]["dem"] = [str(tmp_path / "srtm" / "*.hgt")]
    path = tmp_path / "nodem.yaml"
    path.write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    res = _snakemake("-n", "--configfile", str(path), "--snakefile", str(ROOT / "Snakefile"),
                     "--directory", str(tmp_path))
    assert res.returncode != 0
    out = res.stdout + res.stderr
    assert f"inputs.dem: '{tmp_path}/srtm/*.hgt' matches no file" in out
    # relative to the working directory, the demo's other inputs are missing too: all are listed at once
    assert "inputs.sentinel2: 'resources/demo/sentinel2/*.SAFE' matches no file" in out
    assert "inputs.polygons: 'resources/demo/polygons.gpkg' matches no file" in out


def test_slurm_profile_dry_run(tmp_path):
    """The cluster profile parses and plans the demo with snakemake-executor-plugin-slurm installed."""
    pytest.importorskip("snakemake_executor_plugin_slurm")
    res = _snakemake("-n", "--profile", str(ROOT / "profiles" / "slurm"), "--snakefile", str(ROOT / "Snakefile"),
                     "--directory", str(tmp_path))
    assert res.returncode == 0, res.stderr[-2000:]
    out = res.stdout + res.stderr
    assert "rule tile" in out and "rule dataset" in out
    tile = out[out.index("rule tile:"):][:1500]
    assert "mem_mb=1500" in tile and "runtime=10" in tile  # set-resources of the profile reach the jobs


def test_only_the_input_resolvers_see_input_globs():
    """Rules named inputs_<kind> are the only ones given inputs.sentinel2 / dem / polygons; stages take manifests."""
    import re

    for smk in sorted((ROOT / "workflow" / "rules").glob("*.smk")):
        for block in re.split(r"\n(?=rule )", smk.read_text(encoding="utf-8")):
            name = re.match(r"rule (\w+)", block)
            if not name:
                continue
            uses = re.findall(r"inputs\.(sentinel2|dem|polygons)\b|input_sources\(", block)
            if uses:
                assert name.group(1).startswith("inputs_"), f"{smk.name}: rule {name.group(1)} reads input globs"


def test_stac_inputs_in_the_config():
    cfg = yaml.safe_load((ROOT / "config.yaml").read_text(encoding="utf-8"))
    cfg["inputs"]["sentinel2"] = {"stac": {"api": "https://earth-search.aws.element84.com/v1",
                                           "collection": "sentinel-2-l2a", "datetime": "2020-10-26", "max_cloud": 20,
                                           "ids": ["S2B_52TDP_20201026_0_L2A"]}}
    check_config(cfg)  # a STAC mapping is as good as a list of globs
    for bad, message in (({"stac": {"api": "https://x", "colection": "c"}},
                          "config key 'inputs.dem.stac': unknown key 'colection' (did you mean 'collection'?)"),
                         ({"stac": {"api": "ftp://x", "collection": "c"}},
                          "config key 'inputs.dem.stac.api': 'ftp://x' does not match ^https?://"),
                         ({"stac": {"collection": "c"}}, "config key 'inputs.dem.stac.api': missing (required)"),
                         ("srtm/*.hgt", "config key 'inputs.dem': expected a list of globs or a mapping")):
        cfg["inputs"]["dem"] = bad
        with pytest.raises(GosBuildError) as info:
            check_config(cfg)
        assert message in str(info.value), str(info.value)
