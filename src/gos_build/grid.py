"""The reference grid: AOI -> projected CRS -> 10 m pixels on a global chip lattice -> tiles.

Conventions (all coordinates in the grid CRS, metres):

* The *chip lattice* is global: cell edges lie on multiples of
  ``chip_size * resolution`` (640 m by default) from the CRS origin, so two
  overlapping AOIs in the same CRS put their chips on exactly the same pixels.
* The grid covers the AOI's bounds snapped outwards to that lattice.
* *Processing tiles* are cells of a coarser global lattice,
  ``tile_chips * chip_size * resolution`` metres wide (20 480 m by default),
  clipped to the grid. Only tiles that touch the AOI are listed.
* Ids name the south-west (lower-left) corner of a lattice cell in metres,
  ``E0500480N4880000`` -- the SRTM/MGRS habit of naming a cell by its
  south-west corner. Tiles and chips use the same scheme on their own
  lattices; W/S replace E/N for negative coordinates.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import shapely
from affine import Affine
from rasterio.windows import Window
from shapely.geometry import Polygon, box

from .config import bbox_problem
from .errors import GosBuildError

_ID_RE = re.compile(r"^([EW])(\d{7,8})([NS])(\d{7,8})$")


def lattice_id(x: float, y: float) -> str:
    """Id of the lattice cell whose south-west corner is (x, y), metres."""
    xi, yi = int(round(x)), int(round(y))
    return f"{'E' if xi >= 0 else 'W'}{abs(xi):07d}{'N' if yi >= 0 else 'S'}{abs(yi):07d}"


def parse_lattice_id(cell_id: str) -> tuple[int, int]:
    """(x, y) of the south-west corner named by a lattice id, metres."""
    m = _ID_RE.match(cell_id)
    if not m:
        raise GosBuildError(f"'{cell_id}' is not a lattice id like E0500480N4880000")
    x = int(m.group(2)) * (1 if m.group(1) == "E" else -1)
    y = int(m.group(4)) * (1 if m.group(3) == "N" else -1)
    return x, y


def chip_footprints_lonlat(crs, corners, span: float) -> tuple[list[list[tuple[float, float]]], list[tuple]]:
    """Chip footprints in WGS84 lon/lat: for each south-west corner ``(x, y)`` (``crs``, metres) of a chip
    ``span`` metres wide, its closed ring (SW, SE, NE, NW, SW; degrees, 7 decimals, ~1 cm) and its centre
    (degrees, 7 decimals). The STAC items, the Parquet index and their tests share these numbers."""
    from pyproj import Transformer

    to_ll = Transformer.from_crs(crs, "EPSG:4326", always_xy=True)
    rings, centres = [], []
    for x0, y0 in corners:
        x1, y1 = x0 + span, y0 + span
        lon, lat = to_ll.transform([x0, x1, x1, x0, x0, x0 + span / 2], [y0, y0, y1, y1, y0, y0 + span / 2])
        lon, lat = [round(v, 7) for v in lon], [round(v, 7) for v in lat]
        rings.append(list(zip(lon[:5], lat[:5])))
        centres.append((lon[5], lat[5]))
    return rings, centres


def utm_crs_for(lon: float, lat: float) -> str:
    """EPSG code (``EPSG:326zz`` north, ``EPSG:327zz`` south) of the UTM zone at lon/lat.

    Plain 6-degree zones; the Norway/Svalbard exceptions are not applied
    (set ``aoi.crs`` explicitly there).
    """
    zone = int(math.floor((lon + 180.0) / 6.0)) % 60 + 1
    return f"EPSG:{32600 + zone if lat >= 0 else 32700 + zone}"


@dataclass(frozen=True)
class Tile:
    """A processing tile: a window of the grid, in grid pixels (row/col from the top-left)."""

    id: str
    row_off: int
    col_off: int
    height: int
    width: int

    @property
    def window(self) -> Window:
        return Window(self.col_off, self.row_off, self.width, self.height)


@dataclass(frozen=True)
class Grid:
    """A north-up raster grid in a projected CRS, on the global chip lattice.

    ``x_min``/``y_max`` is the top-left corner (metres); pixels are
    ``resolution`` metres square; ``aoi_wkt`` is the AOI polygon in the grid CRS.
    """

    crs: str
    resolution: float
    chip_size: int
    tile_chips: int
    x_min: float
    y_max: float
    width: int
    height: int
    aoi_wkt: str

    # -- geometry -----------------------------------------------------------
    @property
    def transform(self) -> Affine:
        return Affine(self.resolution, 0.0, self.x_min, 0.0, -self.resolution, self.y_max)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(x_min, y_min, x_max, y_max) of the grid, metres."""
        return (
            self.x_min,
            self.y_max - self.height * self.resolution,
            self.x_min + self.width * self.resolution,
            self.y_max,
        )

    @property
    def chip_span(self) -> float:
        """Width of one chip lattice cell, metres (640 by default)."""
        return self.chip_size * self.resolution

    @property
    def tile_span(self) -> float:
        """Width of one tile lattice cell, metres (20 480 by default)."""
        return self.tile_chips * self.chip_span

    @property
    def aoi(self) -> Polygon:
        return shapely.from_wkt(self.aoi_wkt)

    # -- tiles --------------------------------------------------------------
    def tiles(self) -> list[Tile]:
        """Processing tiles touching the AOI, ordered north to south, west to east."""
        span = self.tile_span
        x0, y0, x1, y1 = self.bounds
        aoi = self.aoi
        shapely.prepare(aoi)
        out = []
        for ty in range(math.floor(y1 / span - 1e-9), math.floor(y0 / span + 1e-9) - 1, -1):
            for tx in range(math.floor(x0 / span + 1e-9), math.ceil(x1 / span - 1e-9)):
                cx0, cy0 = max(tx * span, x0), max(ty * span, y0)
                cx1, cy1 = min((tx + 1) * span, x1), min((ty + 1) * span, y1)
                if cx1 <= cx0 or cy1 <= cy0:
                    continue
                if not aoi.intersects(box(cx0, cy0, cx1, cy1)):
                    continue
                col = int(round((cx0 - x0) / self.resolution))
                row = int(round((y1 - cy1) / self.resolution))
                out.append(
                    Tile(
                        id=lattice_id(tx * span, ty * span),
                        row_off=row,
                        col_off=col,
                        height=int(round((cy1 - cy0) / self.resolution)),
                        width=int(round((cx1 - cx0) / self.resolution)),
                    )
                )
        return out

    def tile(self, tile_id: str) -> Tile:
        for t in self.tiles():
            if t.id == tile_id:
                return t
        raise GosBuildError(f"tile '{tile_id}' is not a tile of this grid ({self.crs})")

    def neighbours(self, tile_id: str, directions=((1, 0), (0, -1), (1, -1))) -> list[str]:
        """Ids of the tiles of this grid at lattice offsets ``directions`` (dx, dy in tiles; +x east, +y north)
        from ``tile_id``, in that order; offsets falling outside the grid's tiles are left out.

        The default is the east, south and south-east neighbours: the tiles a chip whose top-left pixel lies
        in ``tile_id`` can reach into when chips overlap (stride < chip size).
        """
        x, y = parse_lattice_id(tile_id)
        ids = {t.id for t in self.tiles()}
        span = self.tile_span
        out = [lattice_id(x + dx * span, y + dy * span) for dx, dy in directions]
        return [t for t in out if t in ids]

    def footprint(self, bounds, crs, densify: int = 16):
        """A raster's ``bounds`` (x_min, y_min, x_max, y_max in ``crs``) as a polygon in the grid CRS.

        The edges are densified (``densify`` segments a side) so they bend as they should after
        reprojection; the one place where footprints of inputs meet the grid.
        """
        from pyproj import CRS, Transformer

        to_grid = Transformer.from_crs(CRS.from_user_input(crs), self.crs, always_xy=True)
        step = max((bounds[2] - bounds[0]) / densify, 1e-9)
        poly = shapely.segmentize(box(*bounds), step)
        return shapely.transform(poly, lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])))

    def project(self, geom, crs, densify: float | None = None):
        """A shapely geometry from ``crs`` into the grid CRS, its edges densified (``densify``: the longest
        segment kept, in ``crs`` units; default 1/64 of the geometry's extent)."""
        from pyproj import CRS, Transformer

        to_grid = Transformer.from_crs(CRS.from_user_input(crs), self.crs, always_xy=True)
        x0, y0, x1, y1 = geom.bounds
        step = densify or max(max(x1 - x0, y1 - y0) / 64, 1e-9)
        return shapely.transform(shapely.segmentize(geom, step),
                                 lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])))

    def aoi_covered_by(self, footprints) -> float:
        """Share of the AOI inside the union of ``footprints`` (polygons in the grid CRS)."""
        aoi = self.aoi
        return aoi.intersection(shapely.union_all(list(footprints))).area / aoi.area

    def window_transform(self, window: Window) -> Affine:
        """Affine transform of a (possibly halo-extended) window of this grid."""
        return self.transform @ Affine.translation(window.col_off, window.row_off)

    def halo_window(self, window: Window, halo: int) -> Window:
        """A window of this grid grown by ``halo`` pixels on every side (may reach past the grid)."""
        return Window(window.col_off - halo, window.row_off - halo, window.width + 2 * halo,
                      window.height + 2 * halo)

    def first_chip_origin(self, tile: Tile, stride: int) -> tuple[int, int]:
        """(row, col) grid pixel of the first chip origin in a tile: origins lie every ``stride`` px, counted
        from the global CRS origin (so overlapping AOIs share their chips)."""
        x0_px = round(self.x_min / self.resolution)
        y1_px = round(self.y_max / self.resolution)
        return tile.row_off + ((y1_px - tile.row_off) % stride), tile.col_off + (-(x0_px + tile.col_off)) % stride

    def reach(self, tile_id: str, stride: int) -> Window:
        """The window of this grid the chips starting in a tile cover: the tile, grown east and south by what
        they reach into the neighbours (only when ``stride`` < chip size), within the grid."""
        tile = self.tile(tile_id)
        first_row, first_col = self.first_chip_origin(tile, stride)
        last_col = first_col + (tile.col_off + tile.width - 1 - first_col) // stride * stride
        last_row = first_row + (tile.row_off + tile.height - 1 - first_row) // stride * stride
        col_end = max(tile.col_off + tile.width, min(self.width, last_col + self.chip_size))
        row_end = max(tile.row_off + tile.height, min(self.height, last_row + self.chip_size))
        return Window(tile.col_off, tile.row_off, col_end - tile.col_off, row_end - tile.row_off)

    # -- serialisation ------------------------------------------------------
    def to_json(self) -> str:
        doc = asdict(self)
        doc["tiles"] = [asdict(t) for t in self.tiles()]
        return json.dumps(doc, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str) -> "Grid":
        doc = json.loads(text)
        doc.pop("tiles", None)
        return cls(**doc)

    @classmethod
    def read(cls, path: str | Path) -> "Grid":
        try:
            return cls.from_json(Path(path).read_text(encoding="utf-8"))
        except (OSError, ValueError, TypeError) as exc:
            raise GosBuildError(f"{path}: not a gos-build grid file ({exc})") from None


def _aoi_polygon(bbox=None, geometry_path=None):
    """The AOI as (polygon, its CRS, its WGS84 centroid lon/lat), from a bbox or an OGR vector file."""
    from pyproj import CRS, Transformer

    if bbox is not None:
        problem = bbox_problem(bbox)
        if problem:
            raise GosBuildError(f"aoi.bbox: {problem}")
        lon0, lat0, lon1, lat1 = (float(v) for v in bbox)
        poly = box(lon0, lat0, lon1, lat1)
        # densify: a bbox edge is straight in lon/lat, curved in the grid CRS
        poly = shapely.segmentize(poly, max_segment_length=max(lon1 - lon0, lat1 - lat0) / 64)
        return poly, CRS.from_epsg(4326), ((lon0 + lon1) / 2, (lat0 + lat1) / 2)
    if geometry_path is None:
        raise GosBuildError("aoi: give either 'bbox' or 'geometry'")
    import pyogrio

    try:
        gdf = pyogrio.read_dataframe(geometry_path)
    except Exception as exc:  # pyogrio raises several DataSource errors
        raise GosBuildError(f"aoi.geometry: cannot read {geometry_path}: {exc}") from None
    if gdf.crs is None:
        raise GosBuildError(f"aoi.geometry: {geometry_path} has no CRS; define one (e.g. ogr2ogr -a_srs)")
    geom = shapely.union_all(shapely.make_valid(gdf.geometry.values))
    if geom.is_empty or geom.area == 0:
        raise GosBuildError(f"aoi.geometry: {geometry_path} holds no polygon with an area")
    to_ll = Transformer.from_crs(gdf.crs, "EPSG:4326", always_xy=True)
    c = geom.centroid
    return geom, CRS.from_user_input(gdf.crs), to_ll.transform(c.x, c.y)


def build_grid(
    bbox=None,
    geometry_path=None,
    crs: str = "auto",
    resolution: float = 10.0,
    chip_size: int = 64,
    tile_chips: int = 32,
) -> Grid:
    """Build the reference grid for an AOI given as a WGS84 bbox or an OGR vector file.

    The CRS is the UTM zone of the AOI centroid unless ``crs`` names one; it
    must be projected with metre units.
    """
    from pyproj import CRS, Transformer

    aoi_src, src_crs, (clon, clat) = _aoi_polygon(bbox, geometry_path)
    if crs in (None, "auto"):
        crs = utm_crs_for(clon, clat)
    try:
        crs_obj = CRS.from_user_input(crs)
    except Exception:
        raise GosBuildError(f"aoi.crs: '{crs}' is not a CRS PROJ knows (try 'EPSG:32652')") from None
    if not crs_obj.is_projected or crs_obj.axis_info[0].unit_name not in ("metre", "meter"):
        raise GosBuildError(f"aoi.crs: {crs} is not a projected CRS in metres")
    crs_str = crs_obj.to_string() if crs_obj.to_epsg() is None else f"EPSG:{crs_obj.to_epsg()}"

    to_grid = Transformer.from_crs(src_crs, crs_obj, always_xy=True)
    aoi = shapely.transform(aoi_src, lambda xy: np.column_stack(to_grid.transform(xy[:, 0], xy[:, 1])))
    if not aoi.is_valid:
        aoi = shapely.make_valid(aoi)
    if aoi.is_empty or aoi.area <= 0:
        raise GosBuildError("aoi: the AOI has zero area in the grid CRS")

    span = chip_size * resolution
    x0, y0, x1, y1 = aoi.bounds
    gx0 = math.floor(x0 / span) * span
    gy0 = math.floor(y0 / span) * span
    gx1 = math.ceil(x1 / span) * span
    gy1 = math.ceil(y1 / span) * span
    return Grid(
        crs=crs_str,
        resolution=float(resolution),
        chip_size=int(chip_size),
        tile_chips=int(tile_chips),
        x_min=float(gx0),
        y_max=float(gy1),
        width=int(round((gx1 - gx0) / resolution)),
        height=int(round((gy1 - gy0) / resolution)),
        aoi_wkt=shapely.to_wkt(aoi, rounding_precision=3),
    )


def grid_from_config(config: dict) -> Grid:
    """The grid a (validated) gos-build config describes."""
    aoi, g = config["aoi"], config["grid"]
    grid = build_grid(
        bbox=aoi.get("bbox"),
        geometry_path=aoi.get("geometry"),
        crs=aoi.get("crs", "auto"),
        resolution=g["resolution"],
        chip_size=g["chip_size"],
        tile_chips=g["tile_chips"],
    )
    extra = (config.get("terrain") or {}).get("extra") or {}
    if extra:
        from .geomorphometry import scale_problems

        problems = scale_problems(extra, grid.width * grid.resolution, grid.height * grid.resolution)
        if problems:
            raise GosBuildError("invalid config:\n  " + "\n  ".join(problems))
    return grid
