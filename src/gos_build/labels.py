"""Geomorphic interpretation polygons -> class raster (uint8, 0 = unlabelled) on the grid.

Two steps, so the per-tile work stays small:

1. :func:`prepare_labels` (once per AOI) reads any OGR vector in any CRS,
   maps ``class_field`` values to class ids, repairs invalid geometries
   (``make_valid``), skips empty and non-polygon ones, reprojects to the grid
   CRS, applies the overlap rule and writes ``polygons.gpkg`` (grid CRS,
   fields ``src_fid``, ``class_id``, ``burn_order``) plus ``prepare.json``.
2. :func:`rasterize_tile` burns the features touching one tile, pixel-centre
   rule, in ``burn_order`` (later wins).

Overlaps between polygons of different classes (``labels.overlap``):

* ``error``: stop, listing the overlapping feature ids (OGR FIDs of the
  input file) and the overlap areas (m^2); overlaps under 1 m^2 (digitising
  slivers) are ignored;
* ``first``: the feature that comes first in the file wins;
* ``priority``: the class listed first in ``classes`` wins (then file order).
"""

from __future__ import annotations

import json
import logging
import math
import unicodedata
from collections import Counter
from pathlib import Path

import numpy as np
import shapely

from .errors import GosBuildError
from .grid import Grid
from .layout import LABEL_DESCRIPTION, classes_from_config

log = logging.getLogger(__name__)

SLIVER_M2 = 1.0
_POLYGONAL = ("Polygon", "MultiPolygon")


def _value_key(v) -> str:
    """Class values compare as trimmed, NFKC-normalised text: 2, 2.0, '2' and ' 2 ' are the same value,
    and so are '构造地貌', '　构造地貌　' (full-width spaces) and its decomposed or compatibility forms."""
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    return unicodedata.normalize("NFKC", str(v)).strip()


# what a Shapefile without .cpg often really holds, tried in this order when its values match no class
LIKELY_ENCODINGS = ("utf-8", "gbk", "gb18030", "big5", "shift_jis")


def encoding_hint(values, lookup: dict[str, int]) -> str:
    """'' or ``values look like GBK-encoded text read as Latin-1 ('构造地貌', ...): set inputs.polygons_encoding: gbk``.

    ``values``: attribute values OGR decoded as Latin-1 that match no class; re-decoded with each likely
    encoding, the first under which some of them become configured class values is named.
    """
    for enc in LIKELY_ENCODINGS:
        decoded = []
        try:
            decoded = [_value_key(v.encode("latin-1").decode(enc)) for v in values]
        except (UnicodeEncodeError, UnicodeDecodeError):
            continue
        known = [d for d in decoded if d in lookup]
        if known:
            shown = ", ".join(f"'{d}'" for d in sorted(set(known)))
            return (f"values look like {enc.upper().replace('_', '-')}-encoded text read as Latin-1 ({shown}): "
                    f"set inputs.polygons_encoding: {enc}")
    return ""


def class_lookup(classes: dict) -> dict[str, int]:
    """Attribute value (as text) -> class id, from the config's ``classes`` section."""
    out = {}
    for cid, spec in classes.items():
        for v in spec["values"]:
            out[_value_key(v)] = int(cid)
    return out


def _polygonal(geom):
    """The polygonal part of a (repaired) geometry, or None."""
    if geom is None or geom.is_empty:
        return None
    if geom.geom_type in _POLYGONAL:
        return geom
    if geom.geom_type == "GeometryCollection":
        parts = [g for g in shapely.get_parts(geom) if g.geom_type in _POLYGONAL and not g.is_empty]
        return shapely.union_all(parts) if parts else None
    return None


def prepare_labels(
    polygons: str | Path,
    class_field: str,
    classes: dict,
    grid: Grid,
    out_gpkg: str | Path,
    out_json: str | Path,
    overlap: str = "error",
    unknown_values: str = "error",
    encoding: str | None = None,
    source_file: dict | None = None,
) -> dict:
    """Validate, map, repair, reproject and order the polygons; see the module docstring.

    ``source_file``: the input's name, bytes and sha256 (:func:`gos_build.inputs.identity`) for the summary,
    which the datacard publishes instead of the path.

    ``encoding``: the attributes' text encoding where the file declares none (``inputs.polygons_encoding``).
    """
    import geopandas as gpd
    import pyogrio

    from .inputs.polygons import read_polygons
    from .io import atomic_path, atomic_write_text

    polygons = str(polygons)
    classes = classes_from_config(classes)
    gdf, info = read_polygons(polygons, encoding)
    has_z = bool(gdf.geometry.has_z.any())
    if has_z:  # PolygonZ / MultiPolygonZ: labels are 2-D
        gdf = gdf.set_geometry(shapely.force_2d(gdf.geometry.values), crs=gdf.crs)
    if class_field not in gdf.columns:
        raise GosBuildError(f"inputs.class_field: {polygons} has no field '{class_field}' "
                            f"(fields: {', '.join(map(str, gdf.columns.drop('geometry')))})")
    lookup = class_lookup(classes)
    keys = gdf[class_field].map(lambda v: None if v is None or (isinstance(v, float) and np.isnan(v)) else _value_key(v))
    unknown = Counter(k for k in keys if k not in lookup)
    # as written in the file (normalising would garble text that was decoded with the wrong encoding)
    raw = {}
    for value, key in zip(gdf[class_field], keys):
        if key not in lookup and key is not None:
            raw.setdefault(key, str(value))
    hint = encoding_hint(sorted(set(raw.values())), lookup) if unknown and not info["encoding_declared"] else ""
    if unknown and unknown_values == "error":
        listing = ", ".join(f"'{raw.get(k, k).strip()}' ({n} feature{'s' if n > 1 else ''})"
                            for k, n in sorted(unknown.items(), key=str))
        advice = hint or "map them in classes[*].values or set labels.unknown_values: ignore"
        raise GosBuildError(f"inputs.polygons: {polygons}: values of '{class_field}' not in classes: {listing}; "
                            f"{advice}")
    if hint:
        log.warning("labels: %s: %s", polygons, hint)
    stats = Counter()
    stats["features"] = len(gdf)
    stats["unknown_value"] = sum(unknown.values())
    keep, cids, fids = [], [], []
    for fid, key, geom in zip(gdf.index, keys, gdf.geometry.values):
        if key not in lookup:
            continue
        if geom is None or geom.is_empty:
            stats["empty"] += 1
            continue
        if not geom.is_valid:
            stats["repaired"] += 1
            geom = shapely.make_valid(geom)
        geom = _polygonal(geom)
        if geom is None:
            stats["not_polygon"] += 1
            continue
        keep.append(geom)
        cids.append(lookup[key])
        fids.append(int(fid))
    if not keep:
        raise GosBuildError(f"inputs.polygons: {polygons}: no polygon with a known class value")
    feats = gpd.GeoDataFrame({"src_fid": fids, "class_id": cids}, geometry=keep, crs=gdf.crs)
    # overlaps are judged in the file's own CRS, where shared edges coincide exactly; reprojected, two
    # copies of an edge digitised with different vertices bend apart and fake slivers of square metres
    frame = shapely.box(*grid.bounds)
    near = shapely.segmentize(frame.buffer(1000.0, join_style="mitre"), 500.0)  # a prefilter: generous, dense
    frame_src = gpd.GeoSeries([near], crs=grid.crs).to_crs(gdf.crs).iloc[0].buffer(0)
    feats = feats[feats.intersects(frame_src)]
    overlaps = _class_overlaps(feats, grid.crs)
    if overlaps and overlap == "error":
        listing = "; ".join(f"features {a} and {b}: {area:.0f} m2" for a, b, area in overlaps[:10])
        more = f" (and {len(overlaps) - 10} more)" if len(overlaps) > 10 else ""
        raise GosBuildError(f"inputs.polygons: {polygons}: polygons of different classes overlap: {listing}{more}; "
                            "fix them or set labels.overlap: first | priority")
    feats = feats.to_crs(grid.crs)
    # reprojection can make a ring self-touch again: repair once more, quietly
    feats["geometry"] = [g if g.is_valid else _polygonal(shapely.make_valid(g)) for g in feats.geometry.values]
    feats = feats[~feats.geometry.isna()]
    aoi = grid.aoi
    feats = feats[feats.intersects(frame)].copy()
    if not feats.intersects(aoi).any():
        raise GosBuildError(f"inputs.polygons: {polygons}: no polygon touches the AOI")

    order = list(classes)  # config order = priority
    if overlap == "priority":
        # burn the lowest priority first; within a class, file order
        rank = feats["class_id"].map(lambda c: -order.index(c))
        feats = feats.assign(_r=rank.values).sort_values(["_r", "src_fid"], kind="stable").drop(columns="_r")
    else:  # first (and error, where no overlap remains): later burns win, so burn in reverse file order
        feats = feats.sort_values("src_fid", ascending=False, kind="stable")
    feats["burn_order"] = np.arange(len(feats), dtype=np.int32)

    per_class = {}
    for cid in order:
        sub = feats[feats["class_id"] == cid]
        per_class[str(cid)] = {
            "name": classes[cid]["name"],
            "features": int(len(sub)),
            "area_m2": float(sum(g.area for g in sub.geometry.values)),
            "area_in_aoi_m2": float(sum(g.intersection(aoi).area for g in sub.geometry.values)),
        }
    summary = {
        "source": str(polygons),
        "source_file": source_file or {"name": Path(polygons).name},
        "layer": info["layer"],
        "source_crs": gdf.crs.to_string(),
        "class_field": class_field,
        "overlap_rule": overlap,
        "overlaps_resolved": len(overlaps),
        "features_read": stats["features"],
        "skipped": {"unknown_value": stats["unknown_value"], "empty": stats["empty"], "not_polygon": stats["not_polygon"]},
        "repaired": stats["repaired"],
        "z_dropped": has_z,
        "encoding": info["encoding"],
        "unknown_values": dict(sorted(unknown.items(), key=str)),
        "classes": per_class,
    }
    log.info("labels: %d features read from %s; %d repaired (make_valid), skipped %d empty, %d not polygonal, "
             "%d unknown value", stats["features"], polygons, stats["repaired"], stats["empty"],
             stats["not_polygon"], stats["unknown_value"])
    for cid, c in per_class.items():
        log.info("labels: class %s %s: %d features, %.3f km2 (%.3f km2 in the AOI)", cid, c["name"], c["features"],
                 c["area_m2"] / 1e6, c["area_in_aoi_m2"] / 1e6)
    with atomic_path(out_gpkg) as tmp:
        Path(tmp).unlink()
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": "2000-01-01T00:00:00Z"})
        try:
            pyogrio.write_dataframe(feats, tmp, layer="labels", driver="GPKG", dataset_options={"VERSION": "1.2"},
                                    layer_options={"SPATIAL_INDEX": "YES"})
        finally:
            pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
    atomic_write_text(out_json, json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    return summary


def _class_overlaps(feats, area_crs) -> list[tuple[int, int, float]]:
    """(fid_a, fid_b, area m^2 in ``area_crs``) of overlapping polygons of different classes, largest first."""
    from pyproj import Transformer

    to_m = Transformer.from_crs(feats.crs, area_crs, always_xy=True)
    geoms = feats.geometry.values
    tree = shapely.STRtree(geoms)
    left, right = tree.query(geoms, predicate="intersects")
    cls = feats["class_id"].to_numpy()
    fid = feats["src_fid"].to_numpy()
    out = []
    for i, j in zip(left, right):
        if i < j and cls[i] != cls[j]:
            inter = geoms[i].intersection(geoms[j])
            if inter.is_empty or inter.area == 0:
                continue
            area = shapely.transform(inter, lambda xy: np.column_stack(to_m.transform(xy[:, 0], xy[:, 1]))).area
            if area >= SLIVER_M2:
                a, b = sorted((int(fid[i]), int(fid[j])))
                out.append((a, b, area))
    return sorted(out, key=lambda t: (-t[2], t[0], t[1]))


def read_prepared(path: str | Path, bounds) -> list[tuple]:
    """(geometry, class id) of the prepared polygons whose envelope meets ``bounds`` (grid CRS), in burn order.

    ``polygons.gpkg`` is a GeoPackage -- an SQLite database -- that :func:`prepare_labels` wrote: read here
    with SQLite and its R-tree (the GeoPackage spatial index), so the per-tile jobs need neither OGR nor
    pandas (half a second of start-up each).
    """
    import sqlite3

    x0, y0, x1, y1 = bounds
    try:
        db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        raise GosBuildError(f"{path}: cannot be read ({exc})") from None
    try:
        rows = db.execute(
            "SELECT l.geom, l.class_id FROM labels AS l JOIN rtree_labels_geom AS r ON r.id = l.fid "
            "WHERE r.maxx >= ? AND r.minx <= ? AND r.maxy >= ? AND r.miny <= ? ORDER BY l.burn_order, l.fid",
            (x0, x1, y0, y1)).fetchall()
    except sqlite3.Error as exc:
        raise GosBuildError(f"{path}: not a polygons.gpkg of labels-prepare ({exc})") from None
    finally:
        db.close()
    out = []
    for blob, cid in rows:
        geom = _gpkg_geometry(blob)
        if geom is not None:
            out.append((geom, int(cid)))
    return out


def class_boundaries(features: list[tuple]):
    """The lines where the class changes -- between two classes, or a class and unlabelled ground -- of
    ``features`` ``[(polygon, class id)]`` in burn order (later wins, as :func:`rasterize_tile` burns them):
    the union of the boundaries of each class's region; an edge between two polygons of one class is none.

    A polygon's part of its class's region is itself less the later polygons of other classes whose interiors
    it shares (found through an R-tree; prepared polygons rarely overlap, so most take no difference)."""
    if not features:
        return shapely.GeometryCollection()
    geoms = np.array([g for g, _ in features], dtype=object)
    ids = np.array([c for _, c in features])
    tree = shapely.STRtree(geoms)
    pieces: dict = {}
    for i, (geom, cid) in enumerate(features):
        near = tree.query(geom, predicate="intersects")
        near = near[(near > i) & (ids[near] != cid)]
        if len(near):
            near = near[shapely.relate_pattern(geoms[near], geom, "2********")]  # interiors meet: an overlap
        pieces.setdefault(cid, []).append(geom.difference(shapely.union_all(geoms[near])) if len(near) else geom)
    return shapely.union_all([shapely.union_all(p).boundary for _, p in sorted(pieces.items())])


def _extent(path: str | Path) -> tuple[float, float, float, float] | None:
    """The envelope of every prepared polygon (from the GeoPackage's R-tree), or None when there is none."""
    import sqlite3

    db = sqlite3.connect(f"file:{Path(path).resolve()}?mode=ro", uri=True)
    try:
        row = db.execute("SELECT min(minx), min(miny), max(maxx), max(maxy) FROM rtree_labels_geom").fetchone()
    except sqlite3.Error as exc:
        raise GosBuildError(f"{path}: not a polygons.gpkg of labels-prepare ({exc})") from None
    finally:
        db.close()
    return None if row is None or row[0] is None else tuple(float(v) for v in row)


def boundary_distances(prepared: str | Path, bounds, footprints) -> list[float]:
    """Distance (m, grid CRS) from each footprint (shapely polygons inside ``bounds``: a tile's chips) to the
    nearest class boundary (:func:`class_boundaries`) of the prepared polygons; 0 where one crosses it.

    Exact: the boundaries are read within ``bounds`` widened by a margin r (one tile's width to start);
    a distance found <= r cannot be beaten by a line farther out, and the margin doubles for the chips
    whose nearest line is not yet within it, up to the whole layer. ``inf`` if there is no boundary at all.
    """
    out = [math.inf] * len(footprints)
    todo = list(range(len(footprints)))
    if not todo:
        return out
    extent = _extent(prepared)
    if extent is None:
        return out
    x0, y0, x1, y1 = bounds
    r = max(x1 - x0, y1 - y0) / 8
    while todo:
        q = (x0 - r, y0 - r, x1 + r, y1 + r)
        whole = q[0] <= extent[0] and q[1] <= extent[1] and q[2] >= extent[2] and q[3] >= extent[3]
        # the polygons clipped a metre beyond q (the clip's own edges fall outside q, and are cut away below):
        # the class boundaries inside q are those of the whole polygons, for a fraction of the vertices
        wider = shapely.box(q[0] - 1, q[1] - 1, q[2] + 1, q[3] + 1)
        clipped = [(shapely.intersection(g, wider), c) for g, c in read_prepared(prepared, q)]
        lines = shapely.intersection(class_boundaries([(g, c) for g, c in clipped if not g.is_empty]),
                                     shapely.box(*q))
        if not lines.is_empty:
            # the lines as two-point segments in an R-tree: each footprint's nearest one, exactly, without
            # measuring every footprint against every vertex
            coords = [shapely.get_coordinates(part) for part in shapely.get_parts(shapely.line_merge(lines))
                      if not part.is_empty]
            segments = shapely.linestrings(np.concatenate([np.stack([c[:-1], c[1:]], axis=1) for c in coords
                                                           if len(c) > 1]))
            tree = shapely.STRtree(segments)
            _, d = tree.query_nearest(np.array([footprints[i] for i in todo], dtype=object), return_distance=True,
                                      all_matches=False)
            for i, di in zip(list(todo), d):
                if di <= r or whole:
                    out[i] = float(di)
            todo = [i for i in todo if out[i] == math.inf]
        if whole:
            break
        r *= 2
    return out


_ENVELOPE_BYTES = {0: 0, 1: 32, 2: 48, 3: 48, 4: 64}


def _gpkg_geometry(blob: bytes):
    """A GeoPackage geometry blob (header ``GP``, version, flags, SRS id, envelope; then WKB) as shapely."""
    if blob is None or blob[:2] != b"GP":
        return None
    flags = blob[3]
    if flags & 0x10:  # the empty-geometry flag
        return None
    size = 8 + _ENVELOPE_BYTES[(flags >> 1) & 0x07]
    return shapely.from_wkb(blob[size:])


def rasterize_window(prepared: str | Path, grid: Grid, window) -> np.ndarray:
    """Burn the prepared polygons onto a window of the grid: uint8 (h, w), class ids, 0 = unlabelled."""
    from rasterio.features import rasterize

    h, w = int(window.height), int(window.width)
    transform = grid.window_transform(window)
    x0, y1 = transform.c, transform.f
    bounds = (x0, y1 - h * grid.resolution, x0 + w * grid.resolution, y1)
    box = shapely.box(*bounds)
    shapes = [(g.intersection(box) if not g.within(box) else g, c) for g, c in read_prepared(prepared, bounds)]
    shapes = [(g, c) for g, c in shapes if not g.is_empty]
    if not shapes:
        return np.zeros((h, w), dtype=np.uint8)
    return rasterize(shapes, out_shape=(h, w), transform=transform, fill=0, dtype="uint8", all_touched=False)


def label_counts(tile_id: str, labels: np.ndarray) -> dict[str, int]:
    """Pixels per class id (``"0"``: unlabelled) of a tile's labels, logged: the tile's ``labels.json``."""
    ids, counts = np.unique(labels, return_counts=True)
    result = {str(int(i)): int(n) for i, n in zip(ids, counts)}
    log.info("labels tile %s: %s", tile_id, ", ".join(f"class {k}: {v} px" for k, v in result.items()))
    return result


def rasterize_tile(prepared: str | Path, grid: Grid, tile_id: str, out: str | Path) -> dict[str, int]:
    """Burn the prepared polygons onto one tile (uint8, 0 = unlabelled); return pixel counts per class id."""
    from .tiles import write_tile

    tile = grid.tile(tile_id)
    arr = rasterize_window(prepared, grid, tile.window)
    write_tile(out, grid, tile, arr, None, [LABEL_DESCRIPTION])
    return label_counts(tile_id, arr)


def summarize(prepare_json: str | Path, tile_counts: list[str | Path], out_json: str | Path) -> dict:
    """Add labelled pixel counts (summed over tile sidecars) to the prepare summary."""
    from .io import atomic_write_text

    summary = json.loads(Path(prepare_json).read_text(encoding="utf-8"))
    total = Counter()
    for p in tile_counts:
        total.update(json.loads(Path(p).read_text(encoding="utf-8")))
    for cid, c in summary["classes"].items():
        c["pixels"] = int(total.get(cid, 0))
    summary["unlabelled_pixels"] = int(total.get("0", 0))
    atomic_write_text(out_json, json.dumps(summary, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
    for cid, c in summary["classes"].items():
        log.info("labels: class %s %s: %d labelled pixels", cid, c["name"], c["pixels"])
    return summary
