"""The publishing plan: the split of the chips and how the work of writing the dataset is shared.

Publishing runs in three steps (``workflow/rules/chips.smk``):

1. :func:`make_plan` (job ``publish_plan``, once): reads the tiles' small records (``tiles/<id>/chips.json``,
   never a chip's pixels), splits the chips, sums the statistics, and writes ``publish/plan/``:
   ``plan.json`` (summary, statistics, provenance, the groups and where each starts in each split) and
   ``chips.jsonl`` (one line per chip of the dataset, in the dataset's order: id, tile, class, split, ...);
2. :func:`gos_build.archive.gather.publish_group` (job ``publish_group``, one per group of tiles): the files
   of the group's chips (tree, STAC items, packed chunks, Parquet shards) with their sha256;
3. :func:`gos_build.archive.gather.build_dataset` (job ``dataset``, once, light): the files spanning the
   dataset, then the groups' files linked in, and the manifest merged from the groups' sums.

A group is one or more whole tile columns, or a strip of a tall column, west to east (:func:`publish_groups`).
Chip ids name the south-west corner, easting first (``E0500480N4880000``), so the chips of an interval of
eastings -- a tile column, a strip, a group -- are one run of the dataset's order, in every split. What a group
writes is cut by the dataset's order, not by the groups: a packed chunk that starts in a group is written by
it, reading the few chips it holds of the next group from their tiles' shards; a Parquet shard (thousands of
chips, spanning groups) by a group that holds some of its chips, chosen to even out the groups' work
(:func:`shard_writers`). The files therefore do not depend on the grouping.
"""

from __future__ import annotations

import bisect
import json
import logging
import math
from collections import Counter
from pathlib import Path
from sys import intern

from ..config import group_tiles
from ..errors import GosBuildError
from ..grid import parse_lattice_id
from ..io import atomic_folder
from ..layout import SPLITS, Registry, classes_from_config, layers_from_config
from ..splits import block_folds, class_balance, splits_from_config, weak_data

log = logging.getLogger(__name__)

PLAN_FILE = "plan.json"
CHIPS_FILE = "chips.jsonl"
FILES_DIR = "files"  # in the plan and in each group: files of the dataset, at their paths in it
# what the writers read of a chip (chips.jsonl's fields, in this order)
FIELDS = ("id", "tile", "class", "class_id", "split", "fold", "x", "y", "purity", "boundary_m", "bytes")


def publish_groups(grid, group_tiles: int) -> list[dict]:
    """The publishing groups, west to east: each an interval of the grid's x (``x``: [west, east), metres in the
    grid CRS; a chip is in the group its south-west corner's x falls in: :func:`group_of_chips`) and the tiles
    whose chips it holds (``tiles``). Whole tile columns are gathered until a group holds at least
    ``group_tiles`` tiles (``publish.group_tiles``); a column of at least twice that many tiles is cut into
    strips of whole chip columns, ``group_tiles`` tiles' worth or a little more each, so that a group's size,
    and its job's memory, do not grow with the AOI's north-south extent."""
    columns: dict[int, list[str]] = {}
    for t in grid.tiles():
        columns.setdefault(parse_lattice_id(t.id)[0], []).append(t.id)
    span, chips = grid.tile_span, grid.tile_chips
    groups, run, west = [], [], None
    for x in sorted(columns):
        tiles = sorted(columns[x])
        strips = len(tiles) // group_tiles
        if strips >= 2:
            if run:
                groups.append({"tiles": run, "x": [west, x]})
                run = []
            edges = [x + (i * chips // strips) * grid.chip_span for i in range(strips)] + [x + span]
            groups += [{"tiles": tiles, "x": [a, b]} for a, b in zip(edges, edges[1:])]
            continue
        if not run:
            west = x
        run += tiles
        if len(run) >= group_tiles:
            groups.append({"tiles": run, "x": [west, x + span]})
            run = []
    if run:
        groups.append({"tiles": run, "x": [west, max(columns) + span]})
    return groups


def group_of_chips(groups: list[dict]):
    """The index in ``groups`` (:func:`publish_groups`) of the group holding a chip whose south-west corner lies
    at ``x`` (metres, grid CRS): a function of ``x``."""
    wests = [g["x"][0] for g in groups]
    return lambda x: max(bisect.bisect_right(wests, x) - 1, 0)


def layer_stats(acc: dict, layers: Registry) -> dict:
    """Per layer of ``layers``, per band: count/mean/std/min/max over the train chips' valid pixels, from the
    sums in ``acc`` (:func:`_add_stats`)."""
    out = {}
    for name, layer in layers.items():
        slots = acc.get(name, [])
        mean = [a["sum"] / a["n"] if a["n"] else None for a in slots]
        std = [math.sqrt(max(a["sumsq"] / a["n"] - (a["sum"] / a["n"]) ** 2, 0.0)) if a["n"] else None for a in slots]
        out[name] = {"bands": list(layer.bands), "units": layer.stored_units,
                     "count": [a["n"] for a in slots], "mean": [_r(v) for v in mean], "std": [_r(v) for v in std],
                     "min": [_r(a["min"]) if a["n"] else None for a in slots],
                     "max": [_r(a["max"]) if a["n"] else None for a in slots]}
    return out


def _add_stats(acc: dict, chip_stats: dict) -> None:
    """Add one chip's per-band sums (its record's ``stats``) to ``acc``."""
    for layer, bands in chip_stats.items():
        slots = acc.setdefault(layer, [{"n": 0, "sum": 0.0, "sumsq": 0.0, "min": math.inf, "max": -math.inf}
                                       for _ in bands])
        for a, b in zip(slots, bands):
            if b["n"]:
                a["n"] += b["n"]
                a["sum"] += b["sum"]
                a["sumsq"] += b["sumsq"]
                a["min"] = min(a["min"], b["min"])
                a["max"] = max(a["max"], b["max"])


def _r(v):
    return None if v is None else float(f"{v:.9g}")


def _read_record(path: str | Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GosBuildError(f"{path}: cannot read the tile's record ({exc})") from None


def make_plan(records: list[str | Path], config: dict, grid, provenance: dict, out_dir: str | Path) -> dict:
    """Split the chips of the tiles' ``records`` (every tile's ``chips.json``) and write the plan folder
    ``out_dir`` (atomically): see the module. ``provenance``: the inputs' (grid, sentinel2, dem, labels, ...),
    kept for the datacard and the STAC items. Returns the summary (counts, rejections, balance, warnings)."""
    from .writers import writers_of

    classes = classes_from_config(config["classes"])
    chip_span = grid.chip_span
    chips, rejected, shared = [], Counter(), {}
    candidates = partial = 0
    for path in records:  # the records without their statistics (summed below, in a second pass)
        doc = _read_record(path)
        rejected.update(doc["rejected"])
        candidates += doc["candidates"]
        partial += doc["partial_aoi"]
        tile = doc["tile"]
        if any("bytes" not in c for c in doc["chips"]):
            raise GosBuildError(f"{path}: written by an earlier gos-build (no chip sizes); rerun the tile jobs "
                                "(snakemake --forcerun tile)")
        for c in doc["chips"]:
            chips.append(_chip([tile if k == "tile" else c.get(k) for k in FIELDS], shared))
    chips.sort(key=lambda c: c.id)
    if any(a.id == b.id for a, b in zip(chips, chips[1:])):
        raise GosBuildError("chips: the same chip id came from two tiles")
    if not chips:
        raise GosBuildError(f"chips: no chip passed the filters ({candidates} candidates; rejected: "
                            f"{', '.join(f'{k} {v}' for k, v in sorted(rejected.items()))}); "
                            "check chips.min_purity / max_nodata / max_cloud")
    split_cfg = config["split"]
    split_of = splits_from_config(chips, chip_span, split_cfg)
    buffered = len(chips) - len(split_of)
    chips = [c for c in chips if c.id in split_of]
    for c in chips:
        c.split = split_of[c.id]
    block = split_cfg.get("block_chips", 8)
    balance = {"splits": class_balance(chips, split_of, chip_span, block)}
    fold_of = {}
    if split_cfg.get("folds"):
        fold_of = block_folds(chips, chip_span, split_cfg["folds"], block, split_cfg["seed"])
        balance["folds"] = class_balance(chips, fold_of, chip_span, block)
    blocked = str(split_cfg.get("method", "block")).startswith("block") or bool(fold_of)
    warnings = weak_data({cid: c["name"] for cid, c in classes.items()}, chips, chip_span if blocked else None,
                         block, fold_of)
    acc: dict = {}
    for path in records:  # the train chips' sums, a tile at a time
        for c in _read_record(path)["chips"]:
            if split_of.get(c["id"]) == "train":
                _add_stats(acc, c["stats"])
    layers = layers_from_config(config)
    stats = layer_stats(acc, layers)

    counts = {cid: {s: 0 for s in SPLITS} for cid in classes}
    for c in chips:
        c["fold"] = fold_of.get(c["id"])
        counts[c["class_id"]][c["split"]] += 1
    summary = {"candidates": candidates, "partial_aoi": partial, "rejected": dict(sorted(rejected.items())),
               "kept": len(chips) + buffered, "dropped_by_buffer": buffered, "in_dataset": len(chips),
               "counts": {str(k): v for k, v in counts.items()}, "balance": balance, "warnings": warnings}

    groups = publish_groups(grid, group_tiles(config))
    group_of = group_of_chips(groups)
    strangers = sorted({c["tile"] for c in chips} - {t.id for t in grid.tiles()})
    if strangers:
        raise GosBuildError(f"publish: tile {strangers[0]} of the records is not a tile of this grid "
                            f"({len(strangers)} such); were the records made with another grid?")
    ranges = [{s: [0, 0] for s in SPLITS} for _ in groups]
    index = {s: 0 for s in SPLITS}
    last = {s: -1 for s in SPLITS}
    for c in chips:  # each group's run of each split, checked to be one run
        s, g = c["split"], group_of(c["x"])
        if g < last[s]:
            raise GosBuildError(f"publish: chip {c['id']} (tile {c['tile']}) is out of its group's run; the chip ids "
                                "do not sort west to east in this grid")
        if g != last[s]:
            for k in range(last[s] + 1, g + 1):
                ranges[k][s] = [index[s], index[s]]
            last[s] = g
        index[s] += 1
        ranges[g][s][1] = index[s]
    for s in SPLITS:
        for k in range(last[s] + 1, len(groups)):
            ranges[k][s] = [index[s], index[s]]
    cut = parquet_cut(chips)
    shard_writers(cut, ranges, index)
    plan = {"summary": summary, "stats": stats, "provenance": provenance,
            "groups": [{**g, "range": r} for g, r in zip(groups, ranges)],
            "n": index, "parquet": cut}
    context = {"classes": classes, "layers": layers, "crs": grid.crs, "chip_size": grid.chip_size,
               "resolution": grid.resolution, "config": config, "provenance": provenance, "stats": stats}
    with atomic_folder(out_dir) as tmp:
        (tmp / FILES_DIR).mkdir()
        for writer in writers_of(config).values():
            if hasattr(writer, "prepare"):  # files spanning the dataset that the groups' files refer to
                writer.prepare(chips, tmp / FILES_DIR, context)
        with open(tmp / CHIPS_FILE, "w", encoding="utf-8") as f:
            for c in chips:
                f.write(json.dumps([c[k] for k in FIELDS], ensure_ascii=False) + "\n")
        (tmp / PLAN_FILE).write_text(json.dumps(plan, indent=1, ensure_ascii=False) + "\n",
                                     encoding="utf-8")
    log.info("publish: %d chips (%s) in %d groups of tiles -> %s", len(chips),
             ", ".join(f"{s} {index[s]}" for s in SPLITS), len(groups), out_dir)
    return summary


def parquet_cut(chips: list[dict]) -> dict:
    """Per split, the Parquet form's shards: how many and the chips in each (``per``), from the chips' GeoTIFF
    bytes (:data:`gos_build.archive.writers.parquet.SHARD_BYTES` of them at most in a shard)."""
    from .writers.parquet import SHARD_BYTES

    out = {}
    for s in SPLITS:
        mine = [c for c in chips if c["split"] == s]
        n_shards = max(1, math.ceil(sum(c["bytes"] for c in mine) / SHARD_BYTES))
        out[s] = {"shards": n_shards, "per": max(1, math.ceil(len(mine) / n_shards))}
    return out


# a Parquet shard's chip costs a group this share of what one of its own chips costs it: fitted to the scale AOI's
# five groups (default forms, one first-chip writer per shard): 0.4 s + 1.4 ms an own chip + 1.3 ms a shard's chip
SHARD_CHIP_WORK = 0.9


def shard_writers(cut: dict, ranges: list[dict], n: dict) -> None:
    """Add to the Parquet cut ``cut`` (:func:`parquet_cut`) which group writes each shard (``cut[split]
    ["writers"]``, a group index a shard): among the groups holding some of its chips, the one with the least
    work so far (its own chips, and :data:`SHARD_CHIP_WORK` a chip of the shards it writes), largest shards
    first. An empty split's one shard (the schema alone) is group 0's. ``ranges``: the groups' [start, end) in
    each split; ``n``: the chips of each split."""
    work = [sum(end - start for start, end in r.values()) for r in ranges]
    shards = []
    for i, s in enumerate(SPLITS):
        per = cut[s]["per"]
        cut[s]["writers"] = [0] * cut[s]["shards"]
        for k in range(cut[s]["shards"]):
            lo, hi = k * per, min((k + 1) * per, n[s])
            shards.append((-(hi - lo), i, k, s, lo, hi))
    for size, _, k, s, lo, hi in sorted(shards):
        holders = [g for g, r in enumerate(ranges) if r[s][0] < hi and lo < r[s][1]] or [0]
        g = min(holders, key=lambda g: (work[g], g))
        work[g] += SHARD_CHIP_WORK * -size
        cut[s]["writers"][k] = g


def read_plan(plan_dir: str | Path) -> dict:
    """``plan.json`` of a plan folder."""
    path = Path(plan_dir) / PLAN_FILE
    try:
        plan = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise GosBuildError(f"{path}: cannot read the publishing plan ({exc})") from None
    if any("writers" not in cut for cut in plan["parquet"].values()):  # a plan of an earlier gos-build
        shard_writers(plan["parquet"], [g["range"] for g in plan["groups"]], plan["n"])
    return plan


class Chip:
    """A chip's record as the writers read it (``c["id"]``, ``c.get("boundary_m")``, the fields of
    :data:`FIELDS`), in slots: the last job holds one per chip of a province (~370 bytes with its values,
    measured; as dicts about twice that)."""

    __slots__ = FIELDS

    def __init__(self, values):
        for k, v in zip(FIELDS, values):
            setattr(self, k, v)

    def __getitem__(self, key: str):
        try:
            return getattr(self, key)
        except AttributeError:
            raise KeyError(key) from None

    def __setitem__(self, key: str, value) -> None:
        setattr(self, key, value)

    def get(self, key: str, default=None):
        return getattr(self, key, default)


_NAMES = FIELDS.index("tile"), FIELDS.index("class"), FIELDS.index("split")
_COORDS = FIELDS.index("x"), FIELDS.index("y")


def _chip(values: list, seen: dict) -> Chip:
    """A :class:`Chip` of ``values`` (:data:`FIELDS`' order) with its repeated names (tile, class, split) and the
    lattice's coordinates (a tile's chips have 32 of each) shared through ``seen``, not held a chip each."""
    for i in _NAMES:
        if values[i] is not None:
            values[i] = intern(values[i])
    for i in _COORDS:
        values[i] = seen.setdefault(values[i], values[i])
    return Chip(values)


def read_chips(plan_dir: str | Path):
    """The plan's chips, in the dataset's order: :class:`Chip` records, their repeated values shared
    (:func:`_chip`)."""
    path = Path(plan_dir) / CHIPS_FILE
    seen: dict = {}
    try:
        with open(path, encoding="utf-8") as f:
            for line in f:
                yield _chip(json.loads(line), seen)
    except (OSError, ValueError) as exc:
        raise GosBuildError(f"{path}: cannot read the publishing plan's chips ({exc})") from None
