"""Distribution zips: one per modality plus one of labels, splits and metadata (``results/<aoi>/dist``)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import write_zip
from ..layout import CLASSES_FILE, FOLDS_FILE, LABELS_FILE, MODALITIES, SPLITS, split_file
from .gather import DATACARD_FILE, MANIFEST_FILE, STATS_FILE

log = logging.getLogger(__name__)

METADATA_FILES = (CLASSES_FILE, LABELS_FILE, *(split_file(s) for s in SPLITS), FOLDS_FILE, STATS_FILE,
                  DATACARD_FILE, "chips.csv", "croissant.json", MANIFEST_FILE)  # folds.txt only with split.folds
PACKED_DIR = "packed"
PACKAGE_NAMES = (*MODALITIES, "labels", PACKED_DIR)


def package_path(dist: str | Path, aoi: str, name: str) -> Path:
    """``<dist>/<aoi>_<name>.zip``: name is a modality or ``labels``."""
    return Path(dist) / f"{aoi}_{name}.zip"


def package(dataset: str | Path, dist: str | Path, aoi: str) -> list[Path]:
    """Write the zips (fixed timestamps, sorted entries; GeoTIFFs stored, text deflated), streaming each file."""
    dataset = Path(dataset)
    groups = {m: sorted((dataset / m).rglob("*.tif")) for m in MODALITIES}
    groups["labels"] = [dataset / n for n in METADATA_FILES if (dataset / n).exists()]
    groups["labels"] += sorted(p for p in (dataset / "stac").rglob("*") if p.is_file())  # STAC + Croissant
    groups[PACKED_DIR] = sorted(p for p in (dataset / PACKED_DIR).rglob("*") if p.is_file())
    written = []
    for name, files in groups.items():
        out = package_path(dist, aoi, name)
        write_zip(out, [(f.relative_to(dataset).as_posix(), f) for f in files],
                  deflate=lambda n: not n.endswith(".tif"))
        written.append(out)
    log.info("package: %d archives in %s", len(written), dist)
    return written
