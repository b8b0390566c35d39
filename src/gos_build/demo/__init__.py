"""``gos-build demo-inputs``: deterministic raw inputs in the real formats, for any bbox.

The demo generator is one more producer of input files: the workflow's
``demo_inputs`` rule (``demo:`` in the config) runs it before the input
resolvers, which then find its files like any user's.

Writes, under ``out``:

* ``srtm/N43E128.hgt`` ...: SRTM1 tiles (1 arc-second, 3601 x 3601,
  big-endian int16 metres, WGS84, a few -32768 voids inside the bbox);
* ``sentinel2/S2B_MSIL2A_..._N0509_..._T52TCP_....SAFE``: a Sentinel-2 L2A
  product with one granule over the bbox (JP2 B02 B03 B04 B08 in ``R10m``,
  SCL in ``R20m``, ``MTD_MSIL2A.xml`` carrying processing baseline,
  quantification value and -- from baseline 04.00 -- BOA_ADD_OFFSET per band,
  ``MTD_TL.xml`` with the tile geocoding GDAL's SENTINEL2 driver reads);
* ``polygons.gpkg``: interpretation polygons in EPSG:4326, field ``genesis``
  holding Chinese class names;
* ``demo-inputs.json``: what was written, written last (a run that died
  leaves no such file, and the folder is rebuilt).

Same arguments -> byte-identical files.
"""


from __future__ import annotations

import json
import logging
import os
import shutil
from pathlib import Path

from ..config import bbox_problem
from ..errors import GosBuildError
from ..io import writing
from .landscape import Landscape
from .polygons import write_polygons
from .safe import _write_text, mgrs_tile, write_safe
from .srtm import write_hgt_tiles

__all__ = ["demo_inputs", "demo_polygons", "mgrs_tile", "BASELINES"]

log = logging.getLogger(__name__)

BASELINES = ("05.09", "02.14")


def _check_bbox(bbox) -> tuple[float, float, float, float]:
    problem = bbox_problem(bbox, lat_range=(-60.0, 60.0))  # SRTM's coverage
    if problem:
        raise GosBuildError(f"--bbox: {problem}")
    return tuple(float(b) for b in bbox)


def demo_inputs(bbox, out: str | Path, seed: int = 0, baseline: str = "05.09", cloud_fraction: float = 0.05,
                granules: int = 1) -> dict:
    """Write the demo inputs for ``bbox`` into ``out`` and return the manifest (also in demo-inputs.json)."""
    bbox = _check_bbox(bbox)
    if baseline not in BASELINES:
        raise GosBuildError(f"--baseline: expected one of {', '.join(BASELINES)}, got '{baseline}'")
    if not 0.0 <= cloud_fraction <= 0.9:
        raise GosBuildError(f"--cloud-fraction: expected a value in [0, 0.9], got {cloud_fraction}")
    if not 1 <= granules <= 8:
        raise GosBuildError(f"--granules: expected 1 to 8, got {granules}")
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        tmp = out / ".demo-inputs.tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    except OSError as exc:
        raise GosBuildError(f"{out}: cannot write the demo inputs here ({exc.strerror})") from None
    land = Landscape(seed)
    with writing(out):
        hgts = write_hgt_tiles(land, bbox, tmp / "srtm", seed)
        safes = [write_safe(land, bbox, tmp / "sentinel2", baseline, cloud_fraction, i, granules)
                 for i in range(granules)]
        n_poly = write_polygons(land, bbox, tmp / "polygons.gpkg")

    # move the finished pieces into place, then write the manifest last
    (out / "demo-inputs.json").unlink(missing_ok=True)
    for name in ("srtm", "sentinel2", "polygons.gpkg"):
        dest = out / name
        if dest.is_dir():
            shutil.rmtree(dest)
        elif dest.exists():
            dest.unlink()
        os.replace(tmp / name, dest)
    shutil.rmtree(tmp, ignore_errors=True)
    manifest = {
        "generator": "gos-build demo-inputs",
        "bbox": list(bbox),
        "seed": seed,
        "baseline": baseline,
        "cloud_fraction": cloud_fraction,
        "granules": granules,
        "dem": [f"srtm/{p.name}" for p in hgts],
        "sentinel2": [f"sentinel2/{safe.name}" for safe in safes],
        "polygons": "polygons.gpkg",
        "polygon_count": n_poly,
    }
    _write_text(out / "demo-inputs.json", json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def demo_polygons(bbox, out: str | Path, seed: int = 0) -> Path:
    """Only the interpretation polygons of the demo landscape over ``bbox``: ``out/polygons.gpkg`` (cheap;
    e.g. stand-ins for a user's polygons when dry-running ``configs/gos10m.yaml``)."""
    path = Path(out) / "polygons.gpkg"
    with writing(out):
        n = write_polygons(Landscape(seed), _check_bbox(bbox), path)
    log.info("demo polygons: %d in %s", n, path)
    return path
