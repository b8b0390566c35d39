"""Chips: judging candidates and cutting a tile's shard, on hand-made tiles with known answers."""

from __future__ import annotations

import hashlib

import numpy as np
import rasterio

from gos_build.archive.shard import write_tile_shard
from gos_build.chips import candidates, files_reader, judge
from gos_build.config import job_config as parse_job_config
from gos_build.grid import build_grid
from gos_build.io import geotiff_profile
from gos_build.layout import LAYERS, MODALITIES
from gos_build.terrain import NODATA
from helpers import job_config

CLASSES = {1: {"name": "tectonic", "name_zh": "构造地貌", "values": ["tectonic"]},
           2: {"name": "volcanic", "name_zh": "火山熔岩地貌", "values": ["volcanic"]},
           3: {"name": "fluvial", "name_zh": "流水地貌", "values": ["fluvial"]}}


def test_judge_counts_each_reason():
    lab = np.ones((64, 64), np.uint8)
    ok_valid = np.ones((64, 64), np.uint8)
    rgb = np.full((3, 64, 64), 500, np.uint16)
    ter = np.zeros((8, 64, 64), np.float32)
    assert judge(lab, ok_valid, rgb, ter, 0.9, 0.0, 0.05)[:2] == (None, 1)
    mixed = lab.copy()
    mixed[:8] = 2  # 12.5 % class 2 -> purity 0.875
    reason, label, purity, _ = judge(mixed, ok_valid, rgb, ter, 0.9, 0.0, 0.05)
    assert (reason, label, purity) == ("purity", 1, 0.875)
    assert judge(mixed, ok_valid, rgb, ter, 0.85, 0.0, 0.05)[0] is None
    part_unlabelled = lab.copy()
    part_unlabelled[:7] = 0  # unlabelled pixels count against purity
    assert judge(part_unlabelled, ok_valid, rgb, ter, 0.9, 0.0, 0.05)[0] == "purity"
    assert judge(np.zeros_like(lab), ok_valid, rgb, ter, 0.9, 0.0, 0.05)[0] == "unlabelled"
    holed = ter.copy()
    holed[3, 10, 10] = NODATA  # one nodata pixel in `slope`
    assert judge(lab, ok_valid, rgb, holed, 0.9, 0.0, 0.05)[0] == "nodata"
    assert judge(lab, ok_valid, rgb, holed, 0.9, 0.001, 0.05)[0] is None  # 1/4096 < 0.001
    cloudy = ok_valid.copy()
    cloudy[:4] = 0  # 6.25 % invalid
    assert judge(lab, cloudy, rgb, ter, 0.9, 0.0, 0.05)[0] == "cloud"
    assert judge(lab, cloudy, rgb, ter, 0.9, 0.0, 0.07)[0] is None


def _write(path, arr, grid, tile, dtype, nodata):
    arr = arr if arr.ndim == 3 else arr[None]
    profile = geotiff_profile(tile.width, tile.height, arr.shape[0], dtype, grid.crs,
                              grid.window_transform(tile.window), nodata)
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(arr.astype(dtype))


def test_tile_with_one_chip_per_outcome(tmp_path):
    # a grid of exactly one tile; a few chips are set up to fail one test each
    grid = build_grid(bbox=(128.13, 43.61, 128.17, 43.64), tile_chips=256)
    (tile,) = grid.tiles()
    h, w = tile.height, tile.width
    lab = np.ones((h, w), np.uint8)
    valid = np.ones((h, w), np.uint8)
    rgb = np.full((3, h, w), 700, np.uint16)
    ter = np.ones((8, h, w), np.float32)
    cands, partial = candidates(grid, tile.id, 64)  # cells fully inside the AOI, (row, col) in the grid
    assert len(cands) >= 6 and partial > 0
    (r0, c0), (r1, c1), (r2, c2), (r3, c3), (r4, c4) = cands[:5]
    lab[r0 : r0 + 64, c0 : c0 + 64] = 3  # chip 0: pure fluvial -> kept, label 3
    lab[r1 : r1 + 20, c1 : c1 + 64] = 2  # chip 1: 69 % tectonic -> purity
    ter[6, r2 + 5, c2 + 5] = NODATA  # chip 2: one nodata pixel in eastness -> nodata
    valid[r3 : r3 + 10, c3 : c3 + 64] = 0  # chip 3: 15.6 % cloud -> cloud
    lab[r4 : r4 + 64, c4 : c4 + 64] = 0  # chip 4: unlabelled
    d = tmp_path / "tiles" / tile.id
    d.mkdir(parents=True)
    _write(d / "labels.tif", lab, grid, tile, "uint8", None)
    _write(d / "valid.tif", valid, grid, tile, "uint8", None)
    _write(d / "rgb.tif", rgb, grid, tile, "uint16", 0)
    _write(d / "terrain.tif", ter, grid, tile, "float32", NODATA)
    cfg = parse_job_config(job_config(classes=CLASSES, chips={"min_purity": 0.9, "max_nodata": 0.0, "max_cloud": 0.05}))
    doc = write_tile_shard(grid, tile.id, files_reader(grid, tmp_path / "tiles"), cfg, tmp_path / "shard",
                           tmp_path / "c.json")
    assert doc["rejected"] == {"unlabelled": 1, "purity": 1, "nodata": 1, "cloud": 1, "boundary": 0}
    assert doc["kept"] == doc["candidates"] - 4
    by_id = {c["id"]: c for c in doc["chips"]}
    x0 = grid.x_min + c0 * 10
    y0 = grid.y_max - (r0 + 64) * 10
    first = by_id[f"E{int(x0):07d}N{int(y0):07d}"]
    assert first["class_id"] == 3 and first["purity"] == 1.0 and first["class"] == "fluvial"
    shard = tmp_path / "shard"
    tifs = sorted(p.relative_to(shard).as_posix() for p in shard.rglob("*.tif"))
    assert len(tifs) == 9 * doc["kept"] and {n.split("/")[0] for n in tifs} == set(MODALITIES)
    with rasterio.open(shard / f"slope/fluvial/{first['id']}.tif") as ds:
        assert ds.shape == (64, 64) and ds.bounds.left == x0 and ds.bounds.bottom == y0
        assert ds.crs.to_string() == grid.crs
    # the tree writer's list: every chip file with its sha256, taken again here from the files
    listed = dict(reversed(line.split("  ")) for line in (shard / "tree.sha256").read_text().splitlines())
    assert sorted(listed) == tifs
    assert all(listed[n] == hashlib.sha256((shard / n).read_bytes()).hexdigest() for n in tifs)
    # the packed writer's arrays: the GeoTIFFs' values (read by GDAL), a row per kept chip in chips.txt's order
    ids = (shard / "packed" / "chips.txt").read_text().split()
    assert sorted(ids) == sorted(by_id)
    for m in MODALITIES:
        arr = np.load(shard / "packed" / f"{m}.npy")
        assert arr.shape == (len(ids), len(LAYERS[m].bands), 64, 64) and arr.dtype == LAYERS[m].dtype
        for row in (0, len(ids) - 1):
            c = by_id[ids[row]]
            with rasterio.open(shard / f"{m}/{c['class']}/{c['id']}.tif") as ds:
                assert np.array_equal(arr[row], ds.read())


def test_shard_of_a_tile_without_chips(tmp_path):
    """A tile whose candidates are all rejected still has its shard: an empty chip list and arrays of 0 rows."""
    from gos_build.archive.writers import packed, tree
    from gos_build.io import write_folder

    grid = build_grid(bbox=(2.96, 45.725, 2.98, 45.745), tile_chips=2)
    members = tree.shard_members(grid, [], LAYERS) + packed.shard_members(grid, [], LAYERS)
    write_folder(tmp_path / "shard", members)
    assert (tmp_path / "shard" / tree.SUMS_FILE).read_text() == ""
    assert (tmp_path / "shard" / "packed" / "chips.txt").read_text() == ""
    for m in MODALITIES:
        arr = np.load(tmp_path / "shard" / "packed" / f"{m}.npy")
        assert arr.shape == (0, len(LAYERS[m].bands), 64, 64) and arr.dtype == LAYERS[m].dtype
