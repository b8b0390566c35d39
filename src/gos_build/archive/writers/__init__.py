"""Output writers: each turns the gathered chips into one published format.

A writer module offers up to two steps:

* ``shard_members(grid, kept)`` -- per tile, in the tile job: ``(relative path, bytes)``
  of the files it makes for the tile's kept chips (``kept`` as returned by
  :func:`gos_build.chips.cut_tile`), written into the tile's shard folder
  (``tiles/<id>/shard/``; paths of different writers must not collide);
* ``gather(shards, chips, dest, context)`` -- once, in the dataset job (``shards``: the shard folders): write the
  dataset's files for ``chips`` (records with id, label, class, split, x, y; sorted by id)
  under ``dest``; ``context`` holds the classes, the grid's CRS and chip size, the config, the
  inputs' provenance, ``digests`` (:class:`gos_build.archive.gather.Digests`: a writer adds the
  sha256 of what it writes, from the bytes in hand) and ``pool`` (the job's worker processes,
  :mod:`gos_build.parallel`). Writers run in the order of :data:`WRITERS`, so a
  later one may read what an earlier one wrote (the STAC items and the Parquet shards read the tree);
* ``after_datacard(dest, context, datacard)`` -- once, after the datacard is written (its text in
  ``datacard``): files that carry it (the Parquet form's dataset card, ``README.md``).
"""

from __future__ import annotations

from . import croissant, packed, parquet, stac, stac_table, tree

WRITERS = {"tree": tree, "packed": packed, "stac": stac, "stac-geoparquet": stac_table, "croissant": croissant,
           "parquet": parquet}


def writers_of(config: dict) -> dict:
    """The writers of the forms a (validated) config publishes (``publish.forms``), by form, in :data:`WRITERS`'
    order."""
    from ...config import published_forms

    forms = set(published_forms(config))
    return {name: w for name, w in WRITERS.items() if name in forms}
