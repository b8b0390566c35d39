"""The workflow's per-tile job (gos_build.tile_job, ``gos-build tile``) against the stage commands' path: each
stage writing its tile's layer to a GeoTIFF, the chips cut from those files (with the neighbours' files when
chips overlap). Same shard bytes, same records -- the layers passed in memory change nothing."""

from __future__ import annotations

import json

import numpy as np
import pytest
import rasterio

from helpers import AOI_A, workflow_config

from gos_build.archive.shard import write_tile_shard
from gos_build.chips import files_reader
from gos_build.config import check_config, with_defaults
from gos_build.dem import build_mosaic
from gos_build.grid import grid_from_config
from gos_build.inputs import identity, read_manifest, resolve, write_manifest
from gos_build.labels import prepare_labels, rasterize_tile
from gos_build.layout import tile_path
from gos_build.sentinel2 import decode_granule, granule_keys, s2_tile
from gos_build.terrain import terrain_options, terrain_tile
from gos_build.tile_job import build_tile


@pytest.fixture(scope="module", params=[64, 40], ids=["stride64", "stride40"])
def prepared(request, inputs, tmp_path_factory):
    """The once-per-AOI steps (grid, manifests, DEM mosaic, prepared polygons, decoded granules) for AOI A with
    small tiles, at a stride of a chip (the default) or less (chips reaching into the east/south neighbours)."""
    work = tmp_path_factory.mktemp(f"tilejob{request.param}")
    cfg = workflow_config(inputs, "aoi", AOI_A)
    cfg["grid"].update(tile_chips=2, stride=request.param)
    check_config(cfg)
    cfg = with_defaults(cfg)
    grid = grid_from_config(cfg)
    manifests = {}
    for kind in ("sentinel2", "dem", "polygons"):
        write_manifest(work / f"{kind}.json", resolve(kind, cfg, grid))
        manifests[kind] = read_manifest(work / f"{kind}.json", kind)
    build_mosaic(manifests["dem"], work / "mosaic.vrt")
    poly = manifests["polygons"]
    prepare_labels(poly["path"], cfg["inputs"]["class_field"], cfg["classes"], grid, work / "polygons.gpkg",
                   work / "prepare.json", source_file=identity(poly))
    granules = []
    for key in granule_keys(manifests["sentinel2"], grid):
        decode_granule(manifests["sentinel2"], grid, key, work / "granules" / key)
        granules.append(work / "granules" / key)
    return {"work": work, "cfg": cfg, "grid": grid, "s2": manifests["sentinel2"], "granules": granules}


def test_the_tile_job_equals_the_stage_commands(prepared):
    work, cfg, grid = prepared["work"], prepared["cfg"], prepared["grid"]
    stride = cfg["grid"]["stride"]
    tiles = grid.tiles()
    assert len(tiles) >= 4
    # the stage commands' path: every tile's layers as files, then each tile's chips from them
    files = work / "files"
    for t in tiles:
        d = files / t.id
        d.mkdir(parents=True)
        s2_tile(prepared["s2"], grid, t.id, tile_path(files, t.id, "rgb"), tile_path(files, t.id, "valid"),
                prepared["granules"])
        terrain_tile(grid, t.id, work / "mosaic.vrt", tile_path(files, t.id, "terrain"),
                     **terrain_options(cfg["terrain"]))
        rasterize_tile(work / "polygons.gpkg", grid, t.id, tile_path(files, t.id, "labels"))
    reached = kept = 0
    for t in tiles:
        neighbours = set(grid.neighbours(t.id)) if stride < grid.chip_size else set()
        expected = write_tile_shard(grid, t.id, files_reader(grid, files, {t.id} | neighbours), cfg,
                                    work / "ref" / t.id / "shard", work / "ref" / t.id / "chips.json",
                                    polygons=work / "polygons.gpkg")
        out = {k: work / "job" / t.id / name for k, name in (
            ("shard", "shard"), ("chips", "chips.json"), ("labels", "labels.json"), ("sentinel2", "sentinel2.json"),
            ("preview", "preview.tif"), ("overview", "overview.tif"))}
        build_tile(grid, t.id, cfg, prepared["s2"], prepared["granules"], work / "mosaic.vrt", work / "polygons.gpkg",
                   out)
        assert json.loads(out["chips"].read_text()) == expected
        kept += expected["kept"]
        assert out["chips"].read_bytes() == (work / "ref" / t.id / "chips.json").read_bytes()
        ref = {p.relative_to(work / "ref" / t.id / "shard"): p.read_bytes()
               for p in (work / "ref" / t.id / "shard").rglob("*") if p.is_file()}
        got = {p.relative_to(out["shard"]): p.read_bytes() for p in out["shard"].rglob("*") if p.is_file()}
        assert got.keys() == ref.keys() and got == ref
        # the tile's records describe its own pixels only, not the neighbours' its chips reach
        with rasterio.open(tile_path(files, t.id, "labels")) as ds:
            ids, counts = np.unique(ds.read(1), return_counts=True)
        assert json.loads(out["labels"].read_text()) == {str(i): int(n) for i, n in zip(ids, counts)}
        with rasterio.open(tile_path(files, t.id, "rgb")) as ds:
            nodata = int((ds.read(1) == 0).sum())
        s2 = json.loads(out["sentinel2"].read_text())
        assert s2["pixels"] == t.width * t.height and s2["nodata"] == nodata
        window = grid.reach(t.id, stride)
        reached += (window.width, window.height) != (t.width, t.height)
    assert kept >= 9
    # at the default stride no tile reads beyond itself; at 40 px most chips' tiles reach their neighbours
    assert (reached == 0) if stride == grid.chip_size else reached >= len(tiles) // 2


def test_granules_planned_for_a_tile_cover_what_its_chips_reach():
    """With chips overlapping (stride < chip size) a tile's job reads the layers its chips reach in the east and
    south neighbours: the granules planned for it (``granule_keys_by_tile`` with the stride) include one that
    lies only there."""
    from gos_build.grid import build_grid
    from gos_build.sentinel2 import granule_keys_by_tile

    grid = build_grid(bbox=AOI_A, tile_chips=2)
    tile = next(t for t in grid.tiles() if grid.reach(t.id, 40).width > t.width)
    reach = grid.reach(tile.id, 40)
    x_edge = grid.x_min + (tile.col_off + tile.width) * grid.resolution  # the tile's east edge
    y_top = grid.y_max - tile.row_off * grid.resolution
    strip = [x_edge + 50, y_top - 200, x_edge + 150, y_top - 100]  # in the neighbour, within the chips' reach
    assert (reach.width - tile.width) * grid.resolution > 150
    manifest = {"products": [{"name": "P", "source": "P", "level": "L2A", "baseline": "05.09", "cloud_percent": 0.0,
                              "quantification": 10000.0, "offsets": {},
                              "granules": [{"name": "G", "bands": {}, "scl": None, "crs": grid.crs,
                                            "bounds": strip}]}]}
    assert granule_keys_by_tile(manifest, grid)[tile.id] == []
    assert granule_keys_by_tile(manifest, grid, 40)[tile.id] == ["1-1"]
    assert granule_keys_by_tile(manifest, grid, 64)[tile.id] == []  # chips of a stride of a chip stay inside


def test_the_visual_preview_is_stretched_over_clear_pixels(tmp_path):
    """A cloudy AOI (40 % of pixels bright cloud, not valid): each band of the preview maps the 2nd..98th
    percentile of the clear pixels (numpy, over the whole AOI placed here from the tiles) onto 1..255, so the
    ground fills the range instead of sitting near black under the clouds' stretch."""
    from gos_build.sentinel2 import preview_factor, preview_piece, visual_preview

    cfg = with_defaults(workflow_config(tmp_path, "aoi", AOI_A))
    grid = grid_from_config(cfg)
    assert preview_factor(grid) == 1  # every pixel of the AOI in the preview: the check below is exact
    rng = np.random.default_rng(5)
    full = np.zeros((3, grid.height, grid.width), np.uint16)
    clear = np.zeros((grid.height, grid.width), bool)
    pieces = {}
    for t in grid.tiles():
        rgb = rng.integers(200, 1800, (3, t.height, t.width)).astype(np.uint16)  # ground
        valid = (rng.random((t.height, t.width)) > 0.4).astype(np.uint8)
        rgb[:, valid == 0] = 9000  # cloud
        rows, cols = slice(t.row_off, t.row_off + t.height), slice(t.col_off, t.col_off + t.width)
        full[:, rows, cols], clear[rows, cols] = rgb, valid == 1
        pieces[t.id] = tmp_path / f"{t.id}.tif"
        preview_piece(grid, t, rgb, valid, pieces[t.id])
    visual_preview(grid, pieces, tmp_path / "visual.tif")
    with rasterio.open(tmp_path / "visual.tif") as ds:
        got = ds.read()
    for b in range(3):
        lo, hi = np.percentile(full[b][clear], [2, 98])
        want = np.clip(np.round(1 + 254 * (full[b].astype(np.float64) - lo) / (hi - lo)), 1, 255)
        assert np.array_equal(got[b][clear], want[clear].astype(np.uint8))
        assert np.median(got[b][clear]) > 100 and (got[b][~clear] == 255).all()
