"""Distribution zips: one per modality, one of labels, splits and metadata, one of the packed store and one of the
Parquet form (``results/<aoi>/dist``): every file of the dataset is in exactly one, so all of them unzipped into
one folder are the dataset (it validates and loads)."""

from __future__ import annotations

import logging
from pathlib import Path

from ..io import files_under, write_zip
from ..layout import CLASSES_FILE, FOLDS_FILE, LABELS_FILE, LAYERS_FILE, SPLITS, Registry, dataset_layers, split_file
from .gather import DATACARD_FILE, MANIFEST_FILE, STATS_FILE

log = logging.getLogger(__name__)

# folds.txt only with split.folds, layers.json only with layers beyond GOS10m's nine
METADATA_FILES = (CLASSES_FILE, LABELS_FILE, *(split_file(s) for s in SPLITS), FOLDS_FILE, LAYERS_FILE, STATS_FILE,
                  DATACARD_FILE, "README.md", "chips.csv", "croissant.json", MANIFEST_FILE)
PACKED_DIR = "packed"
PARQUET_DIR = "parquet"


def package_names(layers: Registry) -> tuple[str, ...]:
    """The zips of a dataset with these layers: one a layer, ``labels`` (metadata, STAC), the packed store and the
    Parquet form (its shards and GeoParquet index; its dataset card ``README.md`` is in ``labels``)."""
    return (*layers, "labels", PACKED_DIR, PARQUET_DIR)


def package_path(dist: str | Path, aoi: str, name: str) -> Path:
    """``<dist>/<aoi>_<name>.zip``: name is a modality or ``labels``."""
    return Path(dist) / f"{aoi}_{name}.zip"


# members compressed in the zips: text. GeoTIFFs and the store's chunks are compressed already, so they
# are stored (deflating 1 GB of Zstandard chunks gains nothing and costs half a minute)
TEXT_SUFFIXES = (".txt", ".json", ".geojson", ".md", ".csv", ".sha256", ".zarray", ".zattrs", ".zgroup")


def package(dataset: str | Path, dist: str | Path, aoi: str) -> list[Path]:
    """Write the zips (fixed timestamps, sorted entries; text deflated, the rest stored), streaming each file."""
    dataset = Path(dataset)
    groups = {m: [f"{m}/{r}" for r in files_under(dataset / m) if r.endswith(".tif")] for m in dataset_layers(dataset)}
    groups["labels"] = [n for n in METADATA_FILES if (dataset / n).exists()]
    groups["labels"] += [f"stac/{r}" for r in files_under(dataset / "stac")]  # STAC + Croissant
    groups[PACKED_DIR] = [f"{PACKED_DIR}/{r}" for r in files_under(dataset / PACKED_DIR)]
    groups[PARQUET_DIR] = [f"{PARQUET_DIR}/{r}" for r in files_under(dataset / PARQUET_DIR)]
    missing = sorted(set(files_under(dataset)) - {f for files in groups.values() for f in files} - {".snakemake_timestamp"})
    if missing:  # a form added to the dataset but to no zip: the downloads would not be the dataset
        raise RuntimeError(f"package: {len(missing)} file(s) of {dataset} in no zip (first: {missing[0]})")
    written = []
    for name, files in groups.items():
        out = package_path(dist, aoi, name)
        write_zip(out, [(rel, dataset / rel) for rel in files], deflate=lambda n: n.endswith(TEXT_SUFFIXES))
        written.append(out)
    log.info("package: %d archives in %s", len(written), dist)
    return written
