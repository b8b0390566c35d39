"""Bad inputs not covered stage by stage elsewhere: each one line, naming the file or key, nothing left behind.

docs/errors.md lists every bad input with its message and the test that covers it.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import zipfile

import numpy as np
import pyogrio
import pytest
import rasterio
from affine import Affine

from helpers import run_cli
from gos_build.errors import GosBuildError
from gos_build.grid import build_grid


def test_aoi_of_zero_area(tmp_path):
    line = tmp_path / "line.geojson"
    line.write_text(json.dumps({"type": "FeatureCollection", "features": [{"type": "Feature", "properties": {},
                    "geometry": {"type": "LineString", "coordinates": [[128.1, 43.6], [128.2, 43.7]]}}]}))
    with pytest.raises(GosBuildError, match=rf"aoi.geometry: {line} holds no polygon with an area"):
        build_grid(geometry_path=str(line))
    res = run_cli("grid", str(tmp_path / "grid.json"), "--bbox", "128.1", "43.6", "128.1", "43.7")
    assert res.returncode == 2 and not (tmp_path / "grid.json").exists()
    assert res.stderr.strip() == ("gos-build: error: aoi.bbox: expected [lon_min, lat_min, lon_max, lat_max] with "
                                  "min < max, got [128.1, 43.6, 128.1, 43.7]")


def test_safe_zip_missing_a_band(auvergne_demo, tmp_path):
    (safe,) = sorted((auvergne_demo / "sentinel2").glob("*.SAFE"))
    archive = tmp_path / f"{safe.name}.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for f in sorted(safe.rglob("*")):
            if f.is_file() and "_B03_" not in f.name:
                zf.write(f, f"{safe.name}/{f.relative_to(safe).as_posix()}")
    grid = tmp_path / "grid.json"
    grid.write_text(build_grid(bbox=(2.96, 45.725, 3.0, 45.76)).to_json())
    res = run_cli("inputs", "sentinel2", "--grid", str(grid), "--out", str(tmp_path / "inv.json"),
                  "--config", json.dumps({"inputs": {"sentinel2": [str(archive)]}}))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.startswith(f"gos-build: error: {safe.name}: GRANULE/")
    assert res.stderr.strip().endswith("_B03_10m.jp2 is missing from the product")
    assert not (tmp_path / "inv.json").exists()


def test_empty_polygon_file(tmp_path):
    import geopandas as gpd

    empty = tmp_path / "empty.gpkg"
    pyogrio.write_dataframe(gpd.GeoDataFrame({"genesis": []}, geometry=[], crs="EPSG:4326"), empty,
                            geometry_type="Polygon")
    grid = tmp_path / "grid.json"
    grid.write_text(build_grid(bbox=(128.13, 43.61, 128.17, 43.64)).to_json())
    res = run_cli("inputs", "polygons", "--grid", str(grid), "--out", str(tmp_path / "p.json"),
                  "--config", json.dumps({"inputs": {"polygons": str(empty), "class_field": "genesis"}}))
    assert res.returncode == 2
    assert res.stderr.strip() == f"gos-build: error: inputs.polygons: {empty} holds no feature"
    assert not (tmp_path / "p.json").exists()


def test_output_folder_not_writable(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where a folder should be")
    dem = tmp_path / "dem.tif"
    with rasterio.open(dem, "w", driver="GTiff", width=20, height=20, count=1, dtype="float32", crs="EPSG:32652",
                       transform=Affine(10, 0, 400000, 0, -10, 4800000)) as ds:
        ds.write(np.arange(400, dtype=np.float32).reshape(20, 20), 1)
    res = run_cli("terrain", str(dem), str(blocker / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith(f"gos-build: error: {blocker / 'out'}: cannot create the output folder")
    res = run_cli("grid", str(blocker / "grid.json"), "--bbox", "128.1", "43.6", "128.2", "43.7")
    assert res.returncode == 2 and res.stderr.strip().startswith(f"gos-build: error: {blocker}: cannot write here")
    res = run_cli("demo-inputs", "--bbox", "128.1", "43.6", "128.2", "43.7", "--out", str(blocker / "demo"))
    assert res.returncode == 2 and res.stderr.strip().startswith(f"gos-build: error: {blocker / 'demo'}: cannot write")
    assert blocker.read_text() == "a file where a folder should be"


# -- the machine refuses a write: full disk, quota, read-only file system --------------------------
def test_full_disk_is_a_user_error_injected(tmp_path, monkeypatch):
    """GDAL says only 'Write failed'; with (almost) no space left that is the user's full disk, not our bug."""
    import shutil as _shutil
    from collections import namedtuple

    import rasterio.io

    from gos_build.io import write_geotiff

    def fail(*args, **kwargs):
        raise rasterio.errors.RasterioIOError("Write failed. See previous exception for details.")

    Stat = namedtuple("Stat", "f_bavail f_frsize f_flag")
    Usage = namedtuple("Usage", "total used free")
    monkeypatch.setattr(rasterio.io.DatasetWriter, "write", fail)
    monkeypatch.setattr("os.statvfs", lambda p: Stat(100, 4096, 0))  # 400 KB left
    monkeypatch.setattr(_shutil, "disk_usage", lambda p: Usage(1 << 30, (1 << 30) - 409600, 409600))
    out = tmp_path / "tiles" / "t.tif"
    with pytest.raises(GosBuildError) as info:
        write_geotiff(out, np.zeros((8, 8), np.float32), "EPSG:32652", Affine(10, 0, 0, 0, -10, 0), None, ["x"])
    assert str(info.value) == f"{out}: no space left on device (0 MB free)"
    assert list(out.parent.iterdir()) == []  # nothing partial
    # with space left, the same failure stays an internal error (a bug to report)
    monkeypatch.setattr("os.statvfs", lambda p: Stat(1 << 20, 4096, 0))
    with pytest.raises(rasterio.errors.RasterioIOError):
        write_geotiff(out, np.zeros((8, 8), np.float32), "EPSG:32652", Affine(10, 0, 0, 0, -10, 0), None, ["x"])
    # a read-only file system and a quota (Python's own errno)
    monkeypatch.setattr("os.statvfs", lambda p: Stat(1 << 20, 4096, os.ST_RDONLY))
    with pytest.raises(GosBuildError, match=r"t.tif: read-only file system \(0 MB free\)"):
        write_geotiff(out, np.zeros((8, 8), np.float32), "EPSG:32652", Affine(10, 0, 0, 0, -10, 0), None, ["x"])
    from gos_build.io import write_failure

    assert write_failure(OSError(errno.EDQUOT, "Disk quota exceeded"), out) == "disk quota exceeded"
    assert write_failure(ValueError("a bug"), out) is None


@pytest.fixture
def small_disk(tmp_path):
    """A 1 MB tmpfs (needs root and mount; the tests run as root in CI), unmounted afterwards."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield mnt
    subprocess.run(["umount", str(mnt)], check=False)


def test_full_disk_is_a_user_error_on_a_real_tmpfs(small_disk, tmp_path):
    dem = tmp_path / "dem.tif"
    rng = np.random.default_rng(0)
    with rasterio.open(dem, "w", driver="GTiff", width=600, height=600, count=1, dtype="float32", crs="EPSG:32652",
                       transform=Affine(10, 0, 400000, 0, -10, 4800000)) as dst:
        dst.write(rng.random((1, 600, 600), dtype=np.float32) * 500)
    res = run_cli("terrain", str(dem), str(small_disk / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr and "internal error" not in res.stderr
    assert res.stderr.strip() == f"gos-build: error: {small_disk / 'out'}: no space left on device (0 MB free)"
    assert not any(p.is_file() for p in small_disk.rglob("*"))  # nothing partial
    res = run_cli("grid", str(small_disk / "g" / "grid.json"), "--bbox", "128.1", "43.6", "128.2", "43.7")
    assert res.returncode == 0  # a small file still fits once the failed one is gone


def test_missing_or_broken_record_given_to_a_command(tmp_path):
    """A stage command given a JSON file (manifest, summary, tile record) that is missing or not JSON: one line
    naming it, no traceback, no output."""
    grid = build_grid(bbox=(128.14, 43.615, 128.18, 43.645))
    (tmp_path / "grid.json").write_text(grid.to_json())
    (tmp_path / "broken.json").write_text("{not json")
    for bad, problem in (("missing.json", "cannot be read (No such file or directory)"),
                         ("broken.json", "not valid JSON")):
        res = run_cli("publish-plan", "--config", "{}", "--grid", str(tmp_path / "grid.json"), "--labels",
                      str(tmp_path / bad), "--out", str(tmp_path / "plan"), str(tmp_path / "chips.json"))
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().startswith(f"gos-build: error: {tmp_path / bad}: {problem}"), res.stderr
        assert not (tmp_path / "plan").exists()
    # a tile record that is not there, a plan that is not one: one line naming the file
    (tmp_path / "labels.json").write_text("{}")
    cfg = '{"classes": {"1": {"name": "a", "values": ["a"]}}, "split": {"method": "block", "seed": 1}}'
    res = run_cli("publish-plan", "--config", cfg, "--grid", str(tmp_path / "grid.json"),
                  "--out", str(tmp_path / "plan"), str(tmp_path / "chips.json"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert res.stderr.strip().startswith(f"gos-build: error: {tmp_path / 'chips.json'}: cannot read the tile's "
                                         "record"), res.stderr
    for command in (["publish-group", "--group", "0"], ["dataset"]):
        res = run_cli(*command, "--config", cfg, "--grid", str(tmp_path / "grid.json"), "--plan",
                      str(tmp_path / "plan"), "--out", str(tmp_path / "out"), str(tmp_path / "x"))
        assert res.returncode == 2 and "Traceback" not in res.stderr
        assert res.stderr.strip().startswith(f"gos-build: error: {tmp_path / 'plan' / 'plan.json'}: cannot read the "
                                             "publishing plan"), res.stderr
        assert not (tmp_path / "out").exists()

