"""Output writers: each turns the gathered chips into one published format.

A writer module offers up to two steps:

* ``shard_members(grid, kept)`` -- per tile, in the tile job: ``(relative path, bytes)``
  of the files it makes for the tile's kept chips (``kept`` as returned by
  :func:`gos_build.chips.cut_tile`), stored in the tile's shard zip
  (``tiles/<id>/chips.zip``; paths of different writers must not collide);
* ``gather(shard_zips, keep, dest)`` -- once, in the dataset job: write the
  dataset's files for the chips in ``keep`` (chip id -> split) under ``dest``.

:data:`WRITERS` lists the writers the dataset is built with, in order.
"""

from __future__ import annotations

from . import tree

WRITERS = {"tree": tree}
