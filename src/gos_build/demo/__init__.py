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
* with ``sentinel2_formats`` ``zarr2``/``zarr3``: the same products as EOPF Zarr products
  (:mod:`.eopf`, Zarr format 2 / 3) in ``sentinel2_zarr2/`` / ``sentinel2_zarr3/``
  (``safe``, the default, is the SAFE in ``sentinel2/``);
* with ``dates`` > 1: that many acquisitions of each granule, 5 days apart, each
  with its own clouds and a small radiometric difference (for composites);
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

from ..config import DEMO_MARKER as MARKER
from ..config import bbox_problem, demo_conflict
from ..errors import GosBuildError
from ..io import writing
from .landscape import Landscape
from .polygons import write_polygons
from .safe import _write_text, make_scene, mgrs_tile, write_safe
from .srtm import write_hgt_tiles

__all__ = ["demo_inputs", "demo_polygons", "mgrs_tile", "BASELINES"]

log = logging.getLogger(__name__)

BASELINES = ("05.09", "02.14")
S2_FORMATS = {"safe": "sentinel2", "zarr2": "sentinel2_zarr2", "zarr3": "sentinel2_zarr3"}  # -> folder


def _check_bbox(bbox) -> tuple[float, float, float, float]:
    problem = bbox_problem(bbox, lat_range=(-60.0, 60.0))  # SRTM's coverage
    if problem:
        raise GosBuildError(f"--bbox: {problem}")
    return tuple(float(b) for b in bbox)


def demo_inputs(bbox, out: str | Path, seed: int = 0, baseline: str = "05.09", cloud_fraction: float = 0.05,
                granules: int = 1, dates: int = 1, sentinel2_formats=("safe",)) -> dict:
    """Write the demo inputs for ``bbox`` into ``out`` and return the manifest (also in demo-inputs.json)."""
    bbox = _check_bbox(bbox)
    if baseline not in BASELINES:
        raise GosBuildError(f"--baseline: expected one of {', '.join(BASELINES)}, got '{baseline}'")
    if not 0.0 <= cloud_fraction <= 0.9:
        raise GosBuildError(f"--cloud-fraction: expected a value in [0, 0.9], got {cloud_fraction}")
    if not 1 <= granules <= 8:
        raise GosBuildError(f"--granules: expected 1 to 8, got {granules}")
    if not 1 <= dates <= 6:
        raise GosBuildError(f"--dates: expected 1 to 6, got {dates}")
    formats = list(dict.fromkeys(sentinel2_formats))
    unknown = [f for f in formats if f not in S2_FORMATS]
    if unknown or not formats:
        raise GosBuildError(f"--sentinel2-formats: expected some of {', '.join(S2_FORMATS)}, got "
                            f"{', '.join(unknown) or 'none'}")
    out = Path(out)
    conflict = demo_conflict(out, bbox, seed)  # never over another area's or seed's inputs
    if conflict:
        raise GosBuildError(conflict)
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
        products = {f: [] for f in formats}
        for date in range(dates):
            for i in range(granules):
                scene = make_scene(land, bbox, baseline, cloud_fraction, i, granules, date)
                for f in formats:
                    if f == "safe":
                        products[f].append(write_safe(scene, tmp / S2_FORMATS[f]))
                    else:
                        from .eopf import write_eopf

                        products[f].append(write_eopf(scene, tmp / S2_FORMATS[f], int(f[-1])))
        n_poly = write_polygons(land, bbox, tmp / "polygons.gpkg")

    # move the finished pieces into place, then write the manifest last
    (out / MARKER).unlink(missing_ok=True)
    for name in ("srtm", *S2_FORMATS.values(), "polygons.gpkg"):
        if not (tmp / name).exists():
            if (out / name).is_dir():
                shutil.rmtree(out / name)  # a form no longer asked for
            continue
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
        "dates": dates,
        "sentinel2_formats": formats,
        "dem": [f"srtm/{p.name}" for p in hgts],
        **{S2_FORMATS[f]: [f"{S2_FORMATS[f]}/{p.name}" for p in products[f]] for f in formats},
        "polygons": "polygons.gpkg",
        "polygon_count": n_poly,
    }
    _write_text(out / MARKER, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    return manifest


def demo_sentinel2(manifest: dict) -> list[str]:
    """The Sentinel-2 products a demo manifest lists, every form (paths relative to its folder)."""
    return [p for folder in S2_FORMATS.values() for p in manifest.get(folder, [])]


def demo_polygons(bbox, out: str | Path, seed: int = 0) -> Path:
    """Only the interpretation polygons of the demo landscape over ``bbox``: ``out/polygons.gpkg`` (cheap;
    e.g. stand-ins for a user's polygons when dry-running ``configs/gos10m.yaml``)."""
    path = Path(out) / "polygons.gpkg"
    with writing(out):
        n = write_polygons(Landscape(seed), _check_bbox(bbox), path)
    log.info("demo polygons: %d in %s", n, path)
    return path
