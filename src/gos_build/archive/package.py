"""Distribution zips: one per modality, one of labels, splits and metadata, one of the packed store and one of the
Parquet form (``results/<aoi>/dist``): every file of the dataset is in exactly one, so all of them unzipped into
one folder are the dataset (it validates and loads).

A zip larger than ``publish.zips.part_gb`` is cut into parts, ``<aoi>_<name>.part01-of-03.zip`` ..., each a zip
of its own holding whole files (in the tree's order), none larger than the limit unless one file alone is; a zip
within it keeps its one name, ``<aoi>_<name>.zip``. A form the dataset does not have gets no zip."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from ..io import files_under, write_zip
from ..layout import CLASSES_FILE, FOLDS_FILE, LABELS_FILE, LAYERS_FILE, SPLITS, dataset_layers, split_file
from ..readers import PACKED as PACKED_DIR, PARQUET as PARQUET_DIR
from .gather import DATACARD_FILE, MANIFEST_FILE, STATS_FILE
from .writers import stac, stac_table

log = logging.getLogger(__name__)

# folds.txt only with split.folds, layers.json only with layers beyond GOS10m's nine
METADATA_FILES = (CLASSES_FILE, LABELS_FILE, *(split_file(s) for s in SPLITS), FOLDS_FILE, LAYERS_FILE, STATS_FILE,
                  DATACARD_FILE, "README.md", "chips.csv", "croissant.json", MANIFEST_FILE)
CATALOGUE_DIRS = (stac.NAME, stac_table.NAME)  # in the labels zip, beside the metadata files


def package_path(dist: str | Path, aoi: str, name: str, part: int = 1, parts: int = 1) -> Path:
    """``<dist>/<aoi>_<name>.zip`` (name: a layer, ``labels``, ``packed`` or ``parquet``), or of part ``part``
    (1-based) of ``parts``: ``<dist>/<aoi>_<name>.part01-of-03.zip``."""
    if parts == 1:
        return Path(dist) / f"{aoi}_{name}.zip"
    width = max(2, len(str(parts)))
    return Path(dist) / f"{aoi}_{name}.part{part:0{width}d}-of-{parts:0{width}d}.zip"


ZIP_END = 22 + 56 + 20  # end of central directory, with zip64's record and locator, bytes
# what a member costs in a zip beside its data: local header, data descriptor and central directory entry (zip64
# extras included), the name twice; a deflated member may grow by 5 bytes a 16 kB block of data
def _member_bytes(name: str, size: int, deflated: bool) -> int:
    return size + 30 + 24 + 46 + 2 * 20 + 2 * len(name.encode("utf-8")) + (5 * (size // 16000 + 1) if deflated else 0)


def cut_parts(files: list[tuple[str, int]], limit: int | None, deflated=lambda name: False) -> list[list[str]]:
    """``files`` (name, size in bytes, in the zip's order) cut into runs whose zips hold at most ``limit`` bytes
    each (a file larger than that alone in its part); one run when ``limit`` is None."""
    if limit is None:
        return [[n for n, _ in files]] if files else []
    parts, run, used = [], [], ZIP_END
    for name, size in files:
        cost = _member_bytes(name, size, deflated(name))
        if run and used + cost > limit:
            parts.append(run)
            run, used = [], ZIP_END
        run.append(name)
        used += cost
    return parts + ([run] if run else [])


# members compressed in the zips: text. GeoTIFFs and the store's chunks are compressed already, so they
# are stored (deflating 1 GB of Zstandard chunks gains nothing and costs half a minute)
TEXT_SUFFIXES = (".txt", ".json", ".geojson", ".md", ".csv", ".sha256", ".zarray", ".zattrs", ".zgroup")


def package(dataset: str | Path, dist: str | Path, aoi: str, part_bytes: int | None = None) -> list[Path]:
    """Write the zips (fixed timestamps, sorted entries; text deflated, the rest stored), streaming each file;
    each at most ``part_bytes`` (``publish.zips.part_gb``), else cut into parts (:func:`cut_parts`)."""
    dataset = Path(dataset)
    groups = {m: [f"{m}/{r}" for r in files_under(dataset / m) if r.endswith(".tif")] for m in dataset_layers(dataset)}
    groups["labels"] = [n for n in METADATA_FILES if (dataset / n).exists()]
    for form in CATALOGUE_DIRS:  # the catalogues (Croissant's files are METADATA_FILES)
        groups["labels"] += [f"{form}/{r}" for r in files_under(dataset / form)]
    groups[PACKED_DIR] = [f"{PACKED_DIR}/{r}" for r in files_under(dataset / PACKED_DIR)]
    groups[PARQUET_DIR] = [f"{PARQUET_DIR}/{r}" for r in files_under(dataset / PARQUET_DIR)]
    missing = sorted(set(files_under(dataset)) - {f for files in groups.values() for f in files} - {".snakemake_timestamp"})
    if missing:  # a form added to the dataset but to no zip: the downloads would not be the dataset
        raise RuntimeError(f"package: {len(missing)} file(s) of {dataset} in no zip (first: {missing[0]})")
    def text(name: str) -> bool:
        return name.endswith(TEXT_SUFFIXES)

    written = []
    for name, files in groups.items():
        parts = cut_parts([(rel, os.stat(dataset / rel).st_size) for rel in files], part_bytes, text)
        for k, part in enumerate(parts, start=1):
            out = package_path(dist, aoi, name, k, len(parts))
            write_zip(out, [(rel, dataset / rel) for rel in part], deflate=text)
            written.append(out)
            if part_bytes is not None and out.stat().st_size > part_bytes:
                log.warning("package: %s is %.2f GB, above publish.zips.part_gb: %s alone is larger", out.name,
                            out.stat().st_size / 1e9, part[0])
        if len(parts) > 1:
            log.info("package: %s in %d parts of at most %g GB", name, len(parts), part_bytes / 1e9)
    log.info("package: %d archives in %s", len(written), dist)
    return written
