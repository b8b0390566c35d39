"""Input resolvers: config -> ``results/<aoi>/inputs/<kind>.json``, the manifest of one input kind.

This package is the only place where the globs of ``inputs.*`` are expanded
(and, later, where catalogues are searched). A resolver checks its inputs
against the AOI once -- readable, georeferenced, covering -- and writes a
manifest: the files (GDAL paths), their sizes, CRS, footprints and product
metadata. The stages read manifests, never globs; the datacard lists them.

Kinds (:data:`gos_build.layout.INPUT_KINDS`): ``sentinel2``
(:mod:`.sentinel2`), ``dem`` (:mod:`.dem`), ``polygons`` (:mod:`.polygons`).
"""

from __future__ import annotations

import glob
import json
import os
from pathlib import Path

from ..errors import GosBuildError
from ..layout import INPUT_KINDS

MANIFEST_VERSION = 1


def as_patterns(value) -> list[str]:
    """A config value of ``inputs.<kind>`` (one string or a list) as a list of patterns."""
    return [value] if isinstance(value, str) else list(value)


def expand(patterns, key: str) -> list[str]:
    """Paths matched by the glob ``patterns`` of ``inputs.<key>``, sorted per pattern.

    Every pattern must match: all patterns that match nothing are named in one error.
    """
    out, missing = [], []
    for pattern in as_patterns(patterns):
        hits = sorted(glob.glob(pattern))
        if not hits:
            missing.append(f"inputs.{key}: '{pattern}' matches no file")
        out += hits
    if missing:
        raise GosBuildError("\n".join(missing))
    return out


def file_facts(path: str) -> dict:
    """Size of a local file or folder (bytes, all files below it), for the manifest."""
    if os.path.isdir(path):
        size = sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)
    else:
        size = os.path.getsize(path)
    return {"path": path, "bytes": size}


def resolve(kind: str, config: dict, grid) -> dict:
    """The manifest of ``inputs.<kind>`` for this config and grid (raises GosBuildError on bad inputs)."""
    if kind == "sentinel2":
        from .sentinel2 import resolve as run
    elif kind == "dem":
        from .dem import resolve as run
    elif kind == "polygons":
        from .polygons import resolve as run
    else:
        raise GosBuildError(f"inputs: unknown input kind '{kind}' (expected one of {', '.join(INPUT_KINDS)})")
    doc = run(config, grid)
    return {"kind": kind, "manifest_version": MANIFEST_VERSION, **doc}


def write_manifest(path: str | Path, doc: dict) -> None:
    from ..io import atomic_write_text

    atomic_write_text(path, json.dumps(doc, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def read_manifest(path: str | Path, kind: str) -> dict:
    """A manifest written by :func:`write_manifest`; raises GosBuildError if it is not one of ``kind``."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GosBuildError(f"{path}: not a gos-build inputs manifest ({exc})") from None
    if doc.get("kind") != kind:
        raise GosBuildError(f"{path}: an inputs manifest of '{doc.get('kind')}', expected '{kind}'")
    return doc
