"""Each chip's distance to the nearest class boundary of the interpretation polygons, and the filter on it."""

from __future__ import annotations

import json

import numpy as np
import pytest
import shapely

from helpers import AOI_A, run_workflow, workflow_config

from gos_build.labels import boundary_distances, class_boundaries
from gos_build.layout import MODALITIES, chip_path, read_index


def _independent(polygons_gpkg, chips, span=640.0):
    """shapely distance from each chip's footprint to the union of the class regions' boundaries, the polygons
    read by OGR (geopandas) and dissolved by class: nothing of gos_build's."""
    import geopandas as gpd

    g = gpd.read_file(polygons_gpkg)
    lines = shapely.union_all([shapely.union_all(sub.geometry.values).boundary for _, sub in g.groupby("class_id")])
    return np.array([shapely.box(c["x"], c["y"], c["x"] + span, c["y"] + span).distance(lines) for c in chips])


@pytest.mark.slow
def test_every_chip_records_its_distance_to_the_nearest_class_boundary(runs):
    d = runs["a2"] / "dataset"
    _, chips = read_index(d)
    want = _independent(runs["a2"] / "labels" / "polygons.gpkg", chips)
    got = np.array([c["boundary_m"] for c in chips])
    assert np.abs(got - want).max() <= 0.01
    assert (want == 0).any() and (want > 100).any()  # chips on a boundary and chips far from one
    item = json.loads((d / "stac" / chips[0]["id"] / f"{chips[0]['id']}.json").read_text())
    assert item["properties"]["gos_build:boundary_distance_m"] == chips[0]["boundary_m"]


@pytest.mark.slow
def test_min_boundary_distance_rejects_near_chips_and_leaves_the_others_unchanged(inputs, runs, tmp_path):
    base = runs["a2"]
    _, all_chips = read_index(base / "dataset")
    cfg = workflow_config(inputs, "aoi", AOI_A, chips={"min_boundary_distance_m": 300})
    res = run_workflow(tmp_path, cfg, "--cores", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    out = tmp_path / "results" / "aoi"
    classes, kept = read_index(out / "dataset")
    assert sorted(c["id"] for c in kept) == sorted(c["id"] for c in all_chips if c["boundary_m"] >= 300)
    rejected = sum(json.loads(p.read_text())["rejected"]["boundary"] for p in (out / "tiles").glob("*/chips.json"))
    assert rejected == sum(1 for c in all_chips if c["boundary_m"] < 300) > 0
    assert f"boundary: {rejected}" in (out / "dataset" / "datacard.md").read_text()
    for c in kept[:10]:  # the same chips, the same bytes
        for m in MODALITIES:
            rel = chip_path(m, classes[c["class_id"]]["name"], c["id"])
            assert (out / "dataset" / rel).read_bytes() == (base / "dataset" / rel).read_bytes()


def test_boundaries_follow_the_burn_order_and_the_search_widens_until_exact(tmp_path):
    """Two overlapping polygons of different classes (the later wins), a third of the first class touching the
    first: the boundary is the edge of the later one and the outer edge; the shared edge of one class is none.
    A tile deep inside one class finds its lines by widening the search, and equals brute force."""
    import geopandas as gpd

    a = shapely.box(0, 0, 100_000, 100_000)
    b = shapely.box(60_000, 0, 100_000, 100_000)  # class 2, later: wins over a's east part
    c = shapely.box(-50_000, 0, 0, 100_000)  # class 1 again: its edge with a is no boundary
    feats = [(a, 1), (c, 1), (b, 2)]
    lines = class_boundaries(feats)
    assert lines.distance(shapely.Point(0, 50_000)) > 0  # a | c: one class
    assert lines.distance(shapely.Point(60_000, 50_000)) == 0  # the edge of the later polygon
    assert lines.distance(shapely.Point(100_000, 50_000)) == 0  # b's outer edge: class 2 | unlabelled
    gdf = gpd.GeoDataFrame({"class_id": [1, 1, 2], "burn_order": [0, 1, 2], "src_fid": [1, 2, 3]},
                           geometry=[a, c, b], crs="EPSG:32652")
    path = tmp_path / "polygons.gpkg"
    gdf.to_file(path, layer="labels", driver="GPKG")
    for x0, y0 in ((20_000, 40_000), (59_000, 50_000), (-1_000, 99_000)):  # deep inside; near b; across a | c
        bounds = (x0, y0, x0 + 1280, y0 + 1280)
        chips = [shapely.box(x0 + i, y0 + j, x0 + i + 640, y0 + j + 640) for i in (0, 640) for j in (0, 640)]
        got = boundary_distances(path, bounds, chips)
        assert np.allclose(got, [chip.distance(lines) for chip in chips], atol=1e-9), (x0, y0, got)
    assert boundary_distances(path, (20_000, 40_000, 21_280, 41_280), [shapely.box(20_000, 40_000, 20_640,
                                                                                    40_640)]) == [39_360.0]
