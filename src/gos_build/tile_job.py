"""One processing tile, every per-pixel stage in one process: Sentinel-2, terrain, labels, then its chips.

The workflow runs this once per tile (rule ``tile``, ``gos-build tile``). The
stages are the same functions the stage commands (``s2-tile``,
``terrain-tile``, ``labels-tile``, ``chips-tile``) run, but the layers pass
from one to the next in memory instead of through per-tile GeoTIFFs: one
process start a tile instead of four (the imports of numpy, GDAL, shapely and
PROJ cost ~0.3 CPU-s a process) and no layer is written to be read back.

The layers are computed over :meth:`gos_build.grid.Grid.reach`: the tile, grown
east and south when chips overlap (``grid.stride`` < chip size) by what its
chips reach into the neighbours. Every stage's value at a pixel depends on
the pixel's position only, so those pixels equal the neighbour's own.

Outputs: the tile's shard and record (``chips.json``), its label counts
(``labels.json``), its Sentinel-2 record (``sentinel2.json``: nodata, invalid
and, for the median composite, pixels by number of valid observations) and
two small pieces of AOI-wide maps: the visual preview's
(:func:`gos_build.sentinel2.preview_piece`) and the overview's
(:func:`gos_build.figures.overview_piece`).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from .archive.shard import write_tile_shard
from .bands import display_bands, period_bands
from .chips import arrays_reader
from .figures import overview_piece
from .grid import Grid
from .io import atomic_write_text
from .labels import label_counts, rasterize_window
from .layout import HILLSHADE, RGB, is_period
from .sentinel2 import preview_piece, s2_summary, s2_window
from .terrain import terrain_options, terrain_window

log = logging.getLogger(__name__)


def build_tile(grid: Grid, tile_id: str, config: dict, sentinel2: dict, granule_dirs, mosaic: str | Path,
               polygons: str | Path, out: dict[str, str | Path]) -> dict:
    """Run the per-pixel stages and the chips of one tile; write ``out``'s files.

    ``config``: the validated config's ``terrain``, ``grid``, ``chips`` and ``classes``; ``sentinel2``: the
    inputs manifest; ``granule_dirs``: the decoded granules under the tile (``s2-granule``); ``mosaic``: the
    DEM mosaic; ``polygons``: the prepared polygons (``labels-prepare``). ``out`` names the files:
    ``shard``, ``chips``, ``labels``, ``sentinel2``, ``preview``, ``overview``. Returns the seconds per stage.
    """
    tile = grid.tile(tile_id)
    window = grid.reach(tile_id, config["grid"]["stride"])
    own = (slice(0, tile.height), slice(0, tile.width))  # the tile's own pixels in the layers' window
    seconds = {}

    t0 = time.perf_counter()
    labels = rasterize_window(polygons, grid, window)
    counts = label_counts(tile_id, labels[own])
    seconds["labels"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    rgb, valid, observations, imagery, period_counts = s2_window(sentinel2, grid, window, granule_dirs, tile_id)
    own_obs = observations[own] if observations is not None else None
    s2_record = s2_summary(tile_id, rgb[(slice(None),) + own], valid[own], own_obs,
                           {name: pc[own] for name, pc in period_counts.items()})
    seconds["sentinel2"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    terrain = terrain_window(grid, window, mosaic, label=tile_id, **terrain_options(config["terrain"]))
    seconds["terrain"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    read = arrays_reader(window, {RGB.name: rgb, "valid": valid[None], "labels": labels[None], "terrain": terrain,
                                  **imagery})
    write_tile_shard(grid, tile_id, read, config, out["shard"], out["chips"], polygons=polygons)
    seconds["chips"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    preview_piece(grid, tile, rgb[(slice(None),) + own], valid[own], out["preview"])
    shown = display_bands(period_bands(sentinel2.get("bands")))  # each period's image in the overview
    periods = {m: arr[(list(shown),) + own] for m, arr in imagery.items() if is_period(m)}
    overview_piece(grid, tile, terrain[HILLSHADE.tile_band - 1][own], labels[own], own_obs, out["overview"], periods)
    atomic_write_text(out["labels"], json.dumps(counts, sort_keys=True) + "\n")
    atomic_write_text(out["sentinel2"], json.dumps(s2_record, sort_keys=True) + "\n")
    seconds["maps"] = time.perf_counter() - t0
    log.info("tile %s: %d x %d px (layers %d x %d); %s", tile_id, tile.width, tile.height, int(window.width),
             int(window.height), ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items()))
    return seconds
