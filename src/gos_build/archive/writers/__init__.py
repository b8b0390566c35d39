"""Output writers: each turns the gathered chips into one published format.

A writer module offers some of these steps (:mod:`gos_build.archive.plan` tells how publishing runs):

* ``shard_members(grid, kept, layers)`` -- per tile, in the tile job: ``(relative path, bytes)``
  of the files it makes for the tile's kept chips (``kept`` as returned by
  :func:`gos_build.chips.cut_tile`), written into the tile's shard folder
  (``tiles/<id>/shard/``; paths of different writers must not collide);
* ``prepare(chips, dest, context)`` -- once, in the plan job: files spanning the dataset that the groups'
  files refer to (the STAC table's shared label file), under ``dest`` at their paths in the dataset;
* ``place(chips, dest, context)`` -- per group of tiles: the files of the group's ``chips`` (records with id,
  tile, class, class_id, split, fold, x, y, purity, boundary_m; in the dataset's order) under ``dest`` (the
  group's files, at their paths in the dataset); ``context["part"]`` holds the group's run of each split
  (``range``, ``runs``: its chips, then those that end its chunks and shards), the tile shard folders
  (``shard_of``) and the plan's Parquet cut; ``digests`` (:class:`gos_build.archive.gather.Digests`: a
  writer adds the sha256 of what it writes, from the bytes in hand) and ``pool`` (the job's worker
  processes, :mod:`gos_build.parallel`). Writers run in the order of :data:`WRITERS`, so a later one may
  read what an earlier one wrote (the STAC items read the tree's files). What it returns (JSON) reaches
  ``finish`` as that group's note;
* ``finish(chips, dest, context, notes)`` -- once, in the last job: the files spanning the dataset (every
  chip's record in ``chips``, the groups' ``notes``); it reads no chip;
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
