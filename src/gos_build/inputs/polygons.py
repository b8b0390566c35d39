"""Interpretation polygons: any OGR vector (GeoPackage, Shapefile, GeoJSON) -> the ``polygons`` manifest.

The file must be readable, carry a CRS and hold features with the configured
class field; the manifest records its path, size, layer, CRS, feature count,
fields and geometry type. Classes are mapped and geometries checked by the
labels stage (:mod:`gos_build.labels`), which reads the file through
:func:`read_polygons`.
"""

from __future__ import annotations

import logging

from ..errors import GosBuildError
from ..grid import Grid
from . import expand, file_facts

log = logging.getLogger(__name__)


def describe(path: str) -> dict:
    """Layer, CRS, feature count, fields and geometry type of a vector file (OGR's own metadata)."""
    import pyogrio

    try:
        info = pyogrio.read_info(path, force_feature_count=True)
    except Exception as exc:  # pyogrio's DataSourceError and friends
        raise GosBuildError(f"inputs.polygons: {path}: not a readable vector file ({exc})") from None
    if info.get("crs") is None:
        raise GosBuildError(f"inputs.polygons: {path} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    if not info.get("features"):
        raise GosBuildError(f"inputs.polygons: {path} holds no feature")
    return {"layer": info.get("layer_name"), "crs": info["crs"], "features": int(info["features"]),
            "fields": [str(f) for f in info["fields"]], "geometry_type": info.get("geometry_type"),
            "encoding": info.get("encoding")}


def read_polygons(path: str):
    """The features of a vector file as a GeoDataFrame indexed by OGR FID, and its :func:`describe` facts."""
    import pyogrio

    facts = describe(path)
    try:
        gdf = pyogrio.read_dataframe(path, fid_as_index=True)
    except Exception as exc:
        raise GosBuildError(f"inputs.polygons: {path}: not a readable vector file ({exc})") from None
    return gdf, facts


def resolve(config: dict, grid: Grid) -> dict:
    """The ``polygons`` manifest: the one file ``inputs.polygons`` names, described."""
    hits = expand(config["inputs"]["polygons"], "polygons")
    if len(hits) != 1:
        raise GosBuildError(f"inputs.polygons: '{config['inputs']['polygons']}' matches {len(hits)} files; "
                            "name one vector file")
    path = hits[0]
    facts = describe(path)
    field = config["inputs"]["class_field"]
    if field not in facts["fields"]:
        raise GosBuildError(f"inputs.class_field: {path} has no field '{field}' (fields: {', '.join(facts['fields'])})")
    log.info("polygons: %s (layer %s, %d features, %s)", path, facts["layer"], facts["features"],
             facts["geometry_type"])
    return {**file_facts(path), **facts, "class_field": field}
