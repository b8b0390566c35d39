"""Distribution zips: one per modality, one of labels, splits and metadata, one of the packed store and one of the
Parquet form (``results/<aoi>/dist``): every file of the dataset is in exactly one, so all of them unzipped into
one folder are the dataset (it validates and loads).

A zip larger than ``publish.zips.part_gb`` is cut into parts, ``<aoi>_<name>.part01-of-03.zip`` ..., each a zip
of its own holding whole files (in the tree's order), none larger than the limit unless one file alone is; a zip
within it keeps its one name, ``<aoi>_<name>.zip``. A form the dataset does not have gets no zip.

The work per file is done beside the tiles: each publishing group zips its files into a segment per zip
(:func:`write_segments`, ``publish/groups/<k>/zips``: its text deflated, its store chunks and Parquet shards by
reference -- their CRC-32 and size, not a second copy of their bytes), and the package job joins the segments
(:mod:`gos_build.zipjoin`), copying the referenced files from the dataset and zipping only the few files the
last job wrote; the bytes are those of zipping the dataset in one job, whatever the grouping."""

from __future__ import annotations

import heapq
import itertools
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Iterable

from ..errors import GosBuildError
from ..layout import CLASSES_FILE, FOLDS_FILE, LABELS_FILE, LAYERS_FILE, SPLITS, dataset_layers, split_file
from ..readers import PACKED as PACKED_DIR, PARQUET as PARQUET_DIR
from ..zipjoin import segment_files
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


def cut_parts(files: Iterable[tuple[str, int]], limit: int | None, deflated=lambda name: False) -> list[int]:
    """``files`` (name, size in bytes, in the zip's order) cut into runs whose zips hold at most ``limit`` bytes
    each (a file larger than that alone in its part): the number of files in each run; one run when ``limit``
    is None."""
    counts, n, used = [], 0, ZIP_END
    for name, size in files:
        cost = 0 if limit is None else _member_bytes(name, size, deflated(name))
        if n and limit is not None and used + cost > limit:
            counts.append(n)
            n, used = 0, ZIP_END
        n += 1
        used += cost
    return counts + ([n] if n else [])


# members compressed in the zips: text. GeoTIFFs and the store's chunks are compressed already, so they
# are stored (deflating 1 GB of Zstandard chunks gains nothing and costs half a minute)
TEXT_SUFFIXES = (".txt", ".json", ".geojson", ".md", ".csv", ".sha256", ".zarray", ".zattrs", ".zgroup")


def text(name: str) -> bool:
    """Whether member ``name`` is deflated in the zips (:data:`TEXT_SUFFIXES`)."""
    return name.endswith(TEXT_SUFFIXES)


_METADATA_RANK = {n: i for i, n in enumerate(METADATA_FILES)}
SEGMENTS_DIR = "zips"  # in a publishing group's folder: its files' zip entries, a segment per zip (zipjoin)


def zip_of(rel: str, layers) -> str | None:
    """The zip holding the dataset's file ``rel`` (posix path in it): a layer's GeoTIFFs its layer's,
    the metadata files and the catalogues ``labels``, the packed store and the Parquet form their own; None for
    a file of no zip. ``layers``: the dataset's layer names."""
    if rel in _METADATA_RANK:
        return "labels"
    top = rel.split("/", 1)[0]
    if top in CATALOGUE_DIRS:
        return "labels"
    if top in (PACKED_DIR, PARQUET_DIR):
        return top
    if top in layers and rel.endswith(".tif"):
        return top
    return None


def zip_order(rel: str) -> tuple:
    """The order of the members of a zip: the metadata files in :data:`METADATA_FILES`' order, then every other
    file by its path's components (the tree's, the manifest's)."""
    return _METADATA_RANK.get(rel, len(METADATA_FILES)), rel.split("/")


# a publishing group's stored files from this size on are zipped by reference: the package job copies them from the
# dataset instead of from a second copy in the group's segment. Smaller ones (the chip GeoTIFFs, a few kB) are
# copied into the segment: for them the package job's work per file -- open, local header, copy: 10-40 us, most
# of it reading the file back from disk at 19 000 km2 -- would outweigh copying their bytes twice
REFERENCE_BYTES = 64 << 10


def write_segments(folder: str | Path, files: Iterable[str], out: str | Path, layers,
                   by_reference: int | None = None) -> None:
    """Zip ``files`` (posix paths under ``folder``) into one segment per zip at ``out/<zip name>``
    (:func:`gos_build.zipjoin.write_segment`; text deflated), in the zip's order. A publishing group writes its
    files' segments, its stored files of at least ``by_reference`` bytes (:data:`REFERENCE_BYTES`) by reference
    (their CRC-32 and size: the package job copies them from the dataset); the package job joins the groups'
    segments."""
    from ..zipjoin import write_segment

    folder, out = Path(folder), Path(out)
    by_zip: dict[str, list[str]] = {}
    for rel in files:
        name = zip_of(rel, layers)
        if name is None:  # a form added to the dataset but to no zip: the downloads would not be the dataset
            raise RuntimeError(f"package: {folder / rel} is in no zip")
        by_zip.setdefault(name, []).append(rel)
    out.mkdir(parents=True, exist_ok=True)
    for name, rels in by_zip.items():
        # paths joined by hand: pathlib costs 10 us a file
        write_segment(out / name, [(rel, os.path.join(folder, rel)) for rel in sorted(rels, key=zip_order)], text,
                      by_reference)


def own_files(dataset: Path, groups: list[Path], segments: list[frozenset], layers) -> list[str]:
    """The files of ``dataset`` the package job zips itself: those no group wrote (those spanning it, written
    by the last job; the manifest itself), and a group's whose zip it has no segment of (``segments``: per
    group, the zips it has segments of). From ``MANIFEST.sha256`` and the groups' ``sums.txt`` (both in the
    manifest's order, read a line at a time). Checks that every file the dataset holds is in its manifest (by
    count) and every group's file too."""
    from .gather import SUMS_FILE, manifest_path

    manifest = dataset / MANIFEST_FILE
    streams = [open(Path(g) / SUMS_FILE, encoding="utf-8") for g in groups]
    own, listed = [], 0
    try:
        theirs = heapq.merge(*(zip(map(manifest_path, s), itertools.repeat(k)) for k, s in enumerate(streams)),
                             key=lambda item: item[0].split("/"))
        nxt = next(theirs, None)
        with open(manifest, encoding="utf-8") as f:
            for rel in map(manifest_path, f):
                listed += 1
                if nxt is not None and rel == nxt[0]:
                    if zip_of(rel, layers) not in segments[nxt[1]]:
                        own.append(rel)
                    nxt = next(theirs, None)
                else:
                    own.append(rel)
        if nxt is not None:
            raise GosBuildError(f"package: {nxt[0]} of a publishing group is not in {manifest}; the groups are not "
                                "this dataset's (rerun: snakemake --forcerun publish_plan)")
    finally:
        for s in streams:
            s.close()
    held = _count_files(dataset) - 1  # the manifest is not in itself
    if held != listed:
        raise GosBuildError(f"package: {dataset} holds {held} files besides {MANIFEST_FILE}, which lists {listed}; "
                            "validate the dataset (gos-build validate) or rebuild it")
    return own + [MANIFEST_FILE]


def _segment(stem: Path) -> bool:
    """Whether segment ``stem`` is there whole: its zip and its index (written last)."""
    return all(p.is_file() for p in segment_files(stem))


def _remove_segment(stem: Path) -> int:
    """Remove segment ``stem``, its index first (a segment without an index is none): the bytes freed."""
    seg, idx = segment_files(stem)
    size = seg.stat().st_size + idx.stat().st_size
    idx.unlink()
    seg.unlink()
    return size


def _count_files(folder: Path) -> int:
    """The files under ``folder`` but Snakemake's ``.snakemake_timestamp`` (a directory at a time, no list)."""
    n, todo = 0, [folder]
    while todo:
        with os.scandir(todo.pop()) as it:
            for e in it:
                if e.is_dir(follow_symlinks=False):
                    todo.append(e.path)
                elif e.name != ".snakemake_timestamp":
                    n += 1
    return n


def package(dataset: str | Path, dist: str | Path, aoi: str, part_bytes: int | None = None,
            groups: list[str | Path] = ()) -> list[Path]:
    """Write the zips (fixed timestamps, sorted entries; text deflated, the rest stored), each at most
    ``part_bytes`` (``publish.zips.part_gb``), else cut into parts (:func:`cut_parts`).

    ``groups``: the publishing groups' folders (``publish/groups/<k>``), whose jobs zipped their files into
    segments (``zips/``, :func:`write_segments`: the text deflated, the large stored files by reference --
    their CRC-32 and size): the zips are joined from those (the referenced files copied from ``dataset``) and
    from a segment of the other files zipped here (:mod:`gos_build.zipjoin`: copied, not zipped again), and
    each zip's segments are removed once it is written. A group's files whose segment is gone (removed by an
    earlier run, or published without zips) are zipped here; without groups every file is. The bytes are the
    same either way. Memory does not grow with the files: the segments' indexes and the manifest are read a
    line at a time."""
    from ..zipjoin import join, read_index

    dataset, dist = Path(dataset), Path(dist)
    if not (dataset / MANIFEST_FILE).is_file():
        raise GosBuildError(f"package: {dataset / MANIFEST_FILE} is missing; is {dataset} a finished dataset?")
    layers = list(dataset_layers(dataset))
    names = [*layers, "labels", PACKED_DIR, PARQUET_DIR]
    groups = [Path(g) for g in groups]
    segments = [frozenset(n for n in names if _segment(g / SEGMENTS_DIR / n)) for g in groups]
    t0 = time.perf_counter()
    own = own_files(dataset, groups, segments, layers)  # before dist exists: a refused dataset leaves nothing behind
    dist.mkdir(parents=True, exist_ok=True)
    written, freed = [], 0
    with tempfile.TemporaryDirectory(prefix=".package.", suffix=".tmp", dir=dist) as scratch:
        write_segments(dataset, own, scratch, layers)
        log.info("package: %d files zipped here in %.1f s; joining them with %d segments of %d groups", len(own),
                 time.perf_counter() - t0, sum(map(len, segments)), sum(1 for z in segments if z))
        for name in names:
            stems = [g / SEGMENTS_DIR / name for g, z in zip(groups, segments) if name in z]
            if _segment(Path(scratch) / name):
                stems.append(Path(scratch) / name)

            def entries():
                return heapq.merge(*(read_index(s, dataset) for s in stems), key=lambda e: zip_order(e.name))

            counts = cut_parts(((e.name, e.size) for e in entries()), part_bytes, text)
            if len(counts) == 1 and stems == [Path(scratch) / name]:  # zipped here whole: the segment is the zip
                out = package_path(dist, aoi, name)
                os.replace(segment_files(Path(scratch) / name)[0], out)
                written.append(out)
                continue
            members = entries()
            for k, n in enumerate(counts, start=1):
                out = package_path(dist, aoi, name, k, len(counts))
                first = next(members)
                join(out, itertools.chain([first], itertools.islice(members, n - 1)))
                written.append(out)
                if part_bytes is not None and out.stat().st_size > part_bytes:
                    log.warning("package: %s is %.2f GB, above publish.zips.part_gb: %s alone is larger", out.name,
                                out.stat().st_size / 1e9, first.name)
            if len(counts) > 1:
                log.info("package: %s in %d parts of at most %g GB", name, len(counts), part_bytes / 1e9)
            # this zip is whole: its segments are done with (removed zip by zip; a rerun zips here what a removed
            # segment held)
            for stem in stems:
                if stem.parent != Path(scratch):
                    freed += _remove_segment(stem)
    for g in groups:  # what is left there: a segment a killed run had begun to remove
        shutil.rmtree(g / SEGMENTS_DIR, ignore_errors=True)
    log.info("package: %d archives in %s in %.1f s; the groups' zip segments removed (%.2f GB)", len(written),
             dist, time.perf_counter() - t0, freed / 1e9)
    return written
