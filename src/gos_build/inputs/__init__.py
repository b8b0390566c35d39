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
import hashlib
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
    """What a local input is, by content: its ``path`` (where this machine reads it; never published), ``name``
    (the file or folder name), ``bytes`` and ``sha256`` -- of the file; for a folder (a ``.SAFE`` or ``.zarr``
    product) or a Shapefile (``.shp`` with its ``.dbf``, ``.shx``, ``.prj``, ``.cpg`` ...), the sha256 of the
    listing ``"<sha256>  <relative path>\n"`` of its files in path order, like a dataset's MANIFEST.sha256.
    Each file is read once, here, in the resolver; the manifest carries the result to the datacard."""
    from ..io import files_under, sha256_file

    if os.path.isdir(path):
        members = [(rel, os.path.join(path, rel)) for rel in files_under(path)]
    elif path.lower().endswith(".shp"):
        stem = os.path.splitext(os.path.basename(path))[0]
        folder = os.path.dirname(path) or "."
        members = sorted((n, os.path.join(folder, n)) for n in os.listdir(folder)
                         if os.path.splitext(n)[0] == stem and os.path.isfile(os.path.join(folder, n)))
    else:
        return {"path": path, "name": os.path.basename(path), "bytes": os.path.getsize(path),
                "sha256": sha256_file(path)}
    listing = "".join(f"{sha256_file(full)}  {rel}\n" for rel, full in members)
    return {"path": path, "name": os.path.basename(os.path.normpath(path)),
            "bytes": sum(os.path.getsize(full) for _, full in members),
            "sha256": hashlib.sha256(listing.encode("utf-8")).hexdigest()}


def identity(facts: dict) -> dict:
    """The published part of :func:`file_facts`: name, bytes, sha256 (no path of the builder's machine)."""
    return {k: facts[k] for k in ("name", "bytes", "sha256") if k in facts}


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
