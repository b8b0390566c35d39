"""Interpretation polygons: any OGR vector (GeoPackage, Shapefile, GeoJSON) -> the ``polygons`` manifest.

The file must be readable, carry a CRS and hold features with the configured
class field; the manifest records its path, size, layer, CRS, feature count,
fields, geometry type and text encoding. Classes are mapped and geometries
checked by the labels stage (:mod:`gos_build.labels`), which reads the file
through :func:`read_polygons`.

Encodings: GeoPackage and GeoJSON are UTF-8 by definition; a Shapefile
declares its encoding in a ``.cpg`` file (or the DBF's language driver byte).
Without either, OGR reads its attributes as Latin-1 (ISO-8859-1) -- common
for maps exported in GBK by older ArcGIS versions and Chinese GIS software --
and ``inputs.polygons_encoding`` says what they really are.
"""

from __future__ import annotations

import codecs
import logging
import os

from ..errors import GosBuildError
from ..grid import Grid
from . import expand, file_facts

log = logging.getLogger(__name__)


# what OGR assumes for a Shapefile that declares no encoding
UNDECLARED = "ISO-8859-1"


def encoding_declared(path: str, driver: str | None, ogr_encoding: str | None) -> bool:
    """Whether the file itself says how its text is encoded (else OGR guessed Latin-1)."""
    if driver != "ESRI Shapefile":
        return True
    return os.path.exists(os.path.splitext(path)[0] + ".cpg") or (ogr_encoding or UNDECLARED) != UNDECLARED


def check_encoding(encoding: str | None) -> str | None:
    """``inputs.polygons_encoding`` as Python's codec name, or a one-line error."""
    if encoding is None:
        return None
    try:
        return codecs.lookup(encoding).name
    except LookupError:
        raise GosBuildError(f"inputs.polygons_encoding: '{encoding}' is not a known text encoding "
                            "(e.g. gbk, gb18030, big5, utf-8)") from None


def describe(path: str, encoding: str | None = None) -> dict:
    """Layer, CRS, feature count, fields, geometry type and encoding of a vector file (OGR's own metadata).

    ``encoding``: how to decode the attributes when the file declares nothing (``inputs.polygons_encoding``).
    """
    import pyogrio

    try:
        plain = pyogrio.read_info(path, force_feature_count=True)
        info = pyogrio.read_info(path, encoding=encoding, force_feature_count=True) if encoding else plain
    except Exception as exc:  # pyogrio's DataSourceError and friends
        raise GosBuildError(f"inputs.polygons: {path}: not a readable vector file ({exc})") from None
    if info.get("crs") is None:
        raise GosBuildError(f"inputs.polygons: {path} has no CRS; assign one (e.g. ogr2ogr -a_srs EPSG:4326)")
    if not info.get("features"):
        raise GosBuildError(f"inputs.polygons: {path} holds no feature")
    declared = encoding_declared(path, plain.get("driver"), plain.get("encoding"))
    return {"layer": info.get("layer_name"), "crs": info["crs"], "features": int(info["features"]),
            "fields": [str(f) for f in info["fields"]], "geometry_type": info.get("geometry_type"),
            "driver": plain.get("driver"), "encoding": encoding or plain.get("encoding"),
            "encoding_declared": declared, "encoding_configured": encoding}


def read_polygons(path: str, encoding: str | None = None):
    """The features of a vector file as a GeoDataFrame indexed by OGR FID, and its :func:`describe` facts."""
    import pyogrio

    facts = describe(path, encoding)
    try:
        gdf = pyogrio.read_dataframe(path, fid_as_index=True, encoding=encoding)
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
    facts = describe(path, check_encoding(config["inputs"].get("polygons_encoding")))
    field = config["inputs"]["class_field"]
    if field not in facts["fields"]:
        raise GosBuildError(f"inputs.class_field: {path} has no field '{field}' (fields: {', '.join(facts['fields'])})")
    log.info("polygons: %s (layer %s, %d features, %s)", path, facts["layer"], facts["features"],
             facts["geometry_type"])
    return {**file_facts(path), **facts, "class_field": field}
