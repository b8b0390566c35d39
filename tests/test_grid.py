"""The reference grid: CRS choice, lattice snapping, tiles, ids -- checked against pyproj directly."""

from __future__ import annotations

import math

import numpy as np
import pytest
import shapely
from pyproj import Geod, Transformer
from shapely.geometry import box

from gos_build.errors import GosBuildError
from gos_build.grid import Grid, build_grid, lattice_id, parse_lattice_id, utm_crs_for


def _corners_in_grid(grid: Grid, bbox) -> None:
    """Every point of the bbox edge, projected independently with pyproj, lies inside the grid."""
    lon0, lat0, lon1, lat1 = bbox
    t = np.linspace(0, 1, 50)
    lons = np.concatenate([lon0 + (lon1 - lon0) * t, np.full(50, lon1), lon1 - (lon1 - lon0) * t, np.full(50, lon0)])
    lats = np.concatenate([np.full(50, lat0), lat0 + (lat1 - lat0) * t, np.full(50, lat1), lat1 - (lat1 - lat0) * t])
    x, y = Transformer.from_crs("EPSG:4326", grid.crs, always_xy=True).transform(lons, lats)
    gx0, gy0, gx1, gy1 = grid.bounds
    assert x.min() >= gx0 and x.max() <= gx1 and y.min() >= gy0 and y.max() <= gy1
    # and the grid is no bigger than one chip beyond the AOI on each side
    assert x.min() - gx0 < 640 and gx1 - x.max() < 640 and y.min() - gy0 < 640 and gy1 - y.max() < 640


@pytest.mark.parametrize(
    "bbox, epsg",
    [
        ((128.125, 43.60, 128.25, 43.69), "EPSG:32652"),  # north-east China, northern hemisphere
        ((-70.70, -33.50, -70.58, -33.41), "EPSG:32719"),  # Santiago de Chile, southern hemisphere
        ((2.90, 45.70, 3.03, 45.79), "EPSG:32631"),  # Auvergne, zone 31N
    ],
)
def test_grid_crs_and_lattice(bbox, epsg):
    grid = build_grid(bbox=bbox, tile_chips=8)
    assert grid.crs == epsg
    assert grid.x_min % 640 == 0 and grid.y_max % 640 == 0
    assert grid.width % 64 == 0 and grid.height % 64 == 0
    assert grid.transform.a == 10 and grid.transform.e == -10
    _corners_in_grid(grid, bbox)
    # AOI area in the grid CRS against the geodesic area on the ellipsoid (UTM scale error < 0.1 %)
    lon0, lat0, lon1, lat1 = bbox
    geodesic = abs(Geod(ellps="WGS84").geometry_area_perimeter(box(lon0, lat0, lon1, lat1).segmentize(0.001))[0])
    assert grid.aoi.area == pytest.approx(geodesic, rel=1e-3)


def test_grid_straddling_utm_boundary_uses_centroid_zone():
    # 126 E is the boundary between zones 51 and 52; the centroid (126.04 E) is in 52
    bbox = (125.96, 44.00, 126.12, 44.08)
    grid = build_grid(bbox=bbox, tile_chips=8)
    assert grid.crs == "EPSG:32652" == utm_crs_for(126.04, 44.04)
    _corners_in_grid(grid, bbox)  # the part west of 126 E is on the grid too
    assert utm_crs_for(125.99, 44.0) == "EPSG:32651"


def test_tiles_partition_the_grid_and_are_chip_aligned():
    grid = build_grid(bbox=(128.125, 43.60, 128.25, 43.69), tile_chips=8)
    tiles = grid.tiles()
    cover = np.zeros((grid.height, grid.width), dtype=np.int32)
    for t in tiles:
        cover[t.row_off : t.row_off + t.height, t.col_off : t.col_off + t.width] += 1
        # a tile's id is the SW corner of its cell on the global 5120 m tile lattice
        x, y = parse_lattice_id(t.id)
        assert x % 5120 == 0 and y % 5120 == 0
        tx0 = grid.x_min + t.col_off * 10
        ty1 = grid.y_max - t.row_off * 10
        assert x <= tx0 < x + 5120 and y < ty1 <= y + 5120
        # tile edges fall on the chip lattice
        assert tx0 % 640 == 0 and ty1 % 640 == 0 and (t.width * 10) % 640 == 0 and (t.height * 10) % 640 == 0
    assert cover.min() == 1 and cover.max() == 1  # a rectangle AOI: every pixel in exactly one tile
    assert len({t.id for t in tiles}) == len(tiles)


def test_overlapping_aois_share_pixels_and_tile_ids():
    a = build_grid(bbox=(128.125, 43.60, 128.25, 43.69), tile_chips=8)
    b = build_grid(bbox=(128.20, 43.65, 128.33, 43.75), tile_chips=8)
    assert a.crs == b.crs
    # same lattice: the offset between the two origins is a whole number of chips
    assert (a.x_min - b.x_min) % 640 == 0 and (a.y_max - b.y_max) % 640 == 0
    common = {t.id for t in a.tiles()} & {t.id for t in b.tiles()}
    assert common, "overlapping AOIs should share tiles"


def test_lattice_ids():
    assert lattice_id(500480, 4880000) == "E0500480N4880000"
    assert lattice_id(-1280, -640) == "W0001280S0000640"
    assert parse_lattice_id("E0500480N4880000") == (500480, 4880000)
    assert parse_lattice_id(lattice_id(-1280, 9_999_360)) == (-1280, 9_999_360)
    with pytest.raises(GosBuildError, match="not a lattice id"):
        parse_lattice_id("tile_3")


def test_grid_json_round_trip(tmp_path):
    grid = build_grid(bbox=(128.125, 43.60, 128.25, 43.69), tile_chips=8)
    path = tmp_path / "grid.json"
    path.write_text(grid.to_json())
    again = Grid.read(path)
    assert again == grid and again.tiles() == grid.tiles()


def test_explicit_crs_and_bad_crs():
    grid = build_grid(bbox=(128.125, 43.60, 128.25, 43.69), crs="EPSG:32651")
    assert grid.crs == "EPSG:32651"
    with pytest.raises(GosBuildError, match="aoi.crs: EPSG:4326 is not a projected CRS in metres"):
        build_grid(bbox=(128.125, 43.60, 128.25, 43.69), crs="EPSG:4326")
    with pytest.raises(GosBuildError, match="aoi.bbox"):
        build_grid(bbox=(129, 43.6, 128, 43.7))


def test_geometry_aoi_from_vector_file(tmp_path):
    import geopandas as gpd

    # an L-shaped AOI in UTM 52N: tiles missing the L's notch are not listed
    poly = shapely.Polygon([(428800, 4823040), (439040, 4823040), (439040, 4828160), (433920, 4828160),
                            (433920, 4838400), (428800, 4838400)])
    path = tmp_path / "aoi.gpkg"
    gpd.GeoDataFrame(geometry=[poly], crs="EPSG:32652").to_file(path)
    grid = build_grid(geometry_path=str(path), tile_chips=8)
    assert grid.crs == "EPSG:32652"
    assert grid.aoi.area == pytest.approx(poly.area, rel=1e-6)
    ids = {t.id for t in grid.tiles()}
    assert "E0435200N4833280" not in ids  # the notch (north-east) has no tile
    assert "E0430080N4828160" in ids
    nocrs = tmp_path / "nocrs.geojson"
    nocrs.write_text('{"type":"FeatureCollection","features":[{"type":"Feature","properties":{},'
                     '"geometry":{"type":"Polygon","coordinates":[[[0,0],[1,0],[1,1],[0,0]]]}}]}')
    # GeoJSON without crs member is WGS84 by RFC 7946, so it is accepted
    assert build_grid(geometry_path=str(nocrs)).crs == "EPSG:32631"
    assert math.isclose(grid.tile_span, 5120)


def test_neighbours_on_the_tile_lattice():
    grid = build_grid(bbox=(128.13, 43.61, 128.25, 43.69), tile_chips=4)  # 2560 m tiles
    ids = [t.id for t in grid.tiles()]
    first = grid.tiles()[0]  # north-west
    x, y = parse_lattice_id(first.id)
    east, south, south_east = (lattice_id(x + 2560, y), lattice_id(x, y - 2560), lattice_id(x + 2560, y - 2560))
    assert grid.neighbours(first.id) == [east, south, south_east]
    assert grid.neighbours(first.id, directions=((-1, 0), (0, 1))) == []  # west and north lie outside
    last = ids[-1]  # south-east corner: no neighbour east or south
    assert grid.neighbours(last) == []
