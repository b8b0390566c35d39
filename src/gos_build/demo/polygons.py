"""Demo interpretation polygons: a GeoPackage in EPSG:4326 with Chinese class names in ``genesis``."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
from affine import Affine

from .landscape import CLASS_NAMES_ZH, Landscape

_GPKG_DATE = "2020-10-26T00:00:00Z"


def write_polygons(land: Landscape, bbox, path: Path) -> int:
    """Interpretation polygons (EPSG:4326, field ``genesis``) over bbox + margin; returns the feature count."""
    import geopandas as gpd
    import pyogrio
    from rasterio.features import shapes
    from shapely.geometry import shape

    res = 1.0 / 7200.0  # 0.5 arc-second, ~15 m
    m = 0.01
    lon0 = math.floor((bbox[0] - m) / res) * res
    lat1 = math.ceil((bbox[3] + m) / res) * res
    ncols = int(math.ceil((bbox[2] + m - lon0) / res))
    nrows = int(math.ceil((lat1 - (bbox[1] - m)) / res))
    transform = Affine(res, 0, lon0, 0, -res, lat1)
    cls = np.zeros((nrows, ncols), dtype=np.uint8)
    for r0 in range(0, nrows, 512):
        rows = np.arange(r0, min(nrows, r0 + 512))
        glon, glat = np.meshgrid(lon0 + (np.arange(ncols) + 0.5) * res, lat1 - (rows + 0.5) * res)
        cls[rows] = land.classes(glon, glat)
    records = [(shape(geom), CLASS_NAMES_ZH[int(val)]) for geom, val in shapes(cls, transform=transform)]
    gdf = gpd.GeoDataFrame(
        {"id": np.arange(1, len(records) + 1, dtype=np.int32), "genesis": [r[1] for r in records]},
        geometry=[r[0] for r in records],
        crs="EPSG:4326",
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": _GPKG_DATE})
    try:
        pyogrio.write_dataframe(gdf, path, layer="landforms", driver="GPKG", dataset_options={"VERSION": "1.2"})
    finally:
        pyogrio.set_gdal_config_options({"OGR_CURRENT_DATE": None})
    return len(gdf)

