"""Publishing: a group's files (:func:`publish_group`), then the dataset folder (:func:`build_dataset`).

After the plan (:mod:`gos_build.archive.plan`: the split, the statistics, the groups of tiles), each group's
job lets every writer place the files of the group's chips (``publish/groups/<k>/files/``, with their sha256 in
``sums.txt``, and with ``publish.zips`` their zip entries in ``zips/``: :mod:`gos_build.archive.package`); the
last job writes what spans the dataset (index files, datacard, the forms' catalogues and metadata) under a
temporary name, links the groups' files in, merges the manifest from the groups' sums and renames the folder
into place when complete. Nothing in the last job reads a chip.
"""

from __future__ import annotations

import json
import logging
import math
import os
import time
from pathlib import Path

from .. import parallel
from ..errors import GosBuildError
from ..io import atomic_folder, files_under, link_or_copy, sha256_file
from ..layout import (CLASSES_FILE, FOLDS_FILE, LABELS_FILE, LAYERS_FILE, SPLITS, classes_from_config, classes_text,
                      folds_text, labels_text, layers_from_config, layers_text, split_file)
from .writers import writers_of

log = logging.getLogger(__name__)

MANIFEST_FILE = "MANIFEST.sha256"
STATS_FILE = "stats.json"
DATACARD_FILE = "datacard.md"


class Digests(dict):
    """sha256 of the files of a dataset being written, by posix path in it: the writers add those of the
    files they write from the bytes in hand, any other is read once when first asked for; the STAC
    writer and the manifest share them."""

    def __init__(self, folder: Path):
        super().__init__()
        self.folder = folder

    def __missing__(self, rel: str) -> str:
        self[rel] = sha256_file(self.folder / rel)
        return self[rel]


SUMS_FILE = "sums.txt"  # in a group: "<sha256>  <path in the dataset>" of each of its files, in the manifest's order
PARTS_FILE = "parts.json"  # in a group: what its writers tell the last job (e.g. the STAC items' extent)
PARTS_DIR = "parts"  # in a group: the writers' files for the last job (not the dataset's)


def _context(plan: dict, config: dict, grid) -> dict:
    """What the writers share in every publishing job: the layers, classes, grid, config, provenance and
    statistics."""
    return {"layers": layers_from_config(config), "classes": classes_from_config(config["classes"]),
            "crs": grid.crs, "chip_size": grid.chip_size, "resolution": grid.resolution, "config": config,
            "provenance": plan["provenance"], "stats": plan["stats"], "parquet": plan["parquet"]}


def manifest_path(line: str) -> str:
    """The path of a manifest's (or a group's ``sums.txt``) ``"<sha256>  <path>"`` line."""
    return line[66:].rstrip("\n")


def _key(line: str) -> list[str]:
    """The manifest's order of a ``"<sha256>  <path>"`` line: its path's components (:func:`files_under`)."""
    return manifest_path(line).split("/")


def publish_group(plan_dir: str | Path, k: int, shards: list[str | Path], config: dict, grid, out_dir: str | Path,
                  workers: int = 1) -> int:
    """Write group ``k`` of the plan (atomically, at ``out_dir``): every writer's files of the group's chips,
    their sha256 and the writers' notes for the last job. ``shards``: the tile shard folders
    (``tiles/<tile>/shard``) -- the group's, and those of the tiles whose chips end its packed chunks and
    Parquet shards. Returns the group's chip count."""
    from .package import REFERENCE_BYTES, SEGMENTS_DIR, write_segments
    from .plan import FILES_DIR, read_chips, read_plan
    from ..config import chunk_chips, zip_part_bytes

    plan = read_plan(plan_dir)
    if not 0 <= k < len(plan["groups"]):
        raise GosBuildError(f"publish: no group {k} in {plan_dir} ({len(plan['groups'])} groups)")
    ranges, n, cut = plan["groups"][k]["range"], plan["n"], plan["parquet"]
    chunk = chunk_chips(config)
    need = {}  # per split: the chips [start, end) of the group, those that end its chunks, and its Parquet shards'
    for s in SPLITS:
        start, end = ranges[s]
        lo, hi = start, end
        if start < end:
            hi = max(hi, math.ceil(end / chunk) * chunk)
        per = cut[s]["per"]
        for j, writer in enumerate(cut[s]["writers"]):
            if writer == k:  # a shard holding some of the group's chips (or an empty split's): one run with them
                lo, hi = min(lo, j * per), max(hi, (j + 1) * per)
        need[s] = (lo, min(hi, n[s]))
    runs = {s: [] for s in SPLITS}
    own = []
    index = {s: 0 for s in SPLITS}
    for c in read_chips(plan_dir):  # the dataset's order
        s = c["split"]
        i = index[s]
        index[s] += 1
        if need[s][0] <= i < need[s][1]:
            runs[s].append(c)
            if ranges[s][0] <= i < ranges[s][1]:
                own.append(c)
    shard_of = {Path(p).parent.name: str(p) for p in shards}
    missing = sorted({c["tile"] for run in runs.values() for c in run} - set(shard_of))
    if missing:
        raise GosBuildError(f"publish: group {k} needs the shard of tile {missing[0]} ({len(missing)} missing)")
    context = _context(plan, config, grid)
    context["folds"] = {c["id"]: c["fold"] for run in runs.values() for c in run if c["fold"] is not None}
    context["part"] = {"group": k, "range": ranges, "n": n, "parquet": cut, "runs": runs,
                       "offset": {s: need[s][0] for s in SPLITS}, "shard_of": shard_of,
                       "plan_files": str(Path(plan_dir) / FILES_DIR)}
    with atomic_folder(out_dir) as tmp:
        dest = tmp / FILES_DIR
        dest.mkdir()
        (tmp / PARTS_DIR).mkdir()
        context["parts_dir"] = tmp / PARTS_DIR
        digests = context["digests"] = Digests(dest)
        notes = {}
        with parallel.workers(workers) as pool:  # started before any writer starts a thread (zarr does)
            context["pool"] = pool
            for name, writer in writers_of(config).items():
                if hasattr(writer, "place"):
                    t0 = time.perf_counter()
                    notes[name] = writer.place(own, dest, context)
                    log.info("publish group %d: writer %s %.1f s", k, name, time.perf_counter() - t0)
        files = files_under(dest)
        with open(tmp / SUMS_FILE, "w", encoding="utf-8") as f:
            f.writelines(f"{digests[rel]}  {rel}\n" for rel in files)
        (tmp / PARTS_FILE).write_text(json.dumps(notes, sort_keys=True) + "\n", encoding="utf-8")
        if zip_part_bytes(config) is not None:  # the zips' entries of its files, joined by the package job
            t0 = time.perf_counter()
            write_segments(dest, files, tmp / SEGMENTS_DIR, list(context["layers"]), by_reference=REFERENCE_BYTES)
            log.info("publish group %d: zip segments %.1f s", k, time.perf_counter() - t0)
    log.info("publish group %d: %d chips (%s) of %d tiles -> %s", k, len(own),
             ", ".join(f"{s} {ranges[s][0]}..{ranges[s][1]}" for s in SPLITS), len(plan["groups"][k]["tiles"]),
             out_dir)
    return len(own)


def build_dataset(plan_dir: str | Path, groups: list[str | Path], config: dict, grid, out_dir: str | Path) -> dict:
    """The dataset folder at ``out_dir`` (atomically) from the plan and its groups' folders (in the plan's
    order): the files spanning the dataset, the groups' files linked in (a copy where links cannot be made),
    and ``MANIFEST.sha256`` merged from the groups' sums. Returns the plan's summary."""
    import heapq

    from .datacard import write_datacard
    from .plan import FILES_DIR, read_chips, read_plan

    plan = read_plan(plan_dir)
    if len(groups) != len(plan["groups"]):
        raise GosBuildError(f"dataset: {len(groups)} group folders given, the plan in {plan_dir} has "
                            f"{len(plan['groups'])}")
    chips = list(read_chips(plan_dir))
    summary, stats = plan["summary"], plan["stats"]
    context = _context(plan, config, grid)
    context["folds"] = {c["id"]: c["fold"] for c in chips if c["fold"] is not None}
    notes = []
    for g in groups:
        try:
            notes.append(json.loads((Path(g) / PARTS_FILE).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise GosBuildError(f"{g}: not a finished publishing group ({exc})") from None
    context["group_parts"] = [str(Path(g) / PARTS_DIR) for g in groups]  # the writers' files for this job
    layers, classes = context["layers"], context["classes"]
    with atomic_folder(out_dir) as tmp:  # a full disk is the user's to fix, not a bug: one line naming the folder
        digests = context["digests"] = Digests(tmp)
        link_files(Path(plan_dir) / FILES_DIR, tmp)
        for name, writer in writers_of(config).items():
            if hasattr(writer, "finish"):
                t0 = time.perf_counter()
                writer.finish(chips, tmp, context, [n.get(name) for n in notes])
                log.info("dataset: writer %s %.1f s", name, time.perf_counter() - t0)
        (tmp / CLASSES_FILE).write_text(classes_text(classes), encoding="utf-8")
        (tmp / LABELS_FILE).write_text(labels_text(chips), encoding="utf-8")
        for s in SPLITS:
            (tmp / split_file(s)).write_text("".join(f"{c['id']}\n" for c in chips if c["split"] == s),
                                             encoding="utf-8")
        if context["folds"]:
            (tmp / FOLDS_FILE).write_text(folds_text(context["folds"]), encoding="utf-8")
        text = layers_text(layers)
        if text:  # a dataset with layers beyond GOS10m's nine says which
            (tmp / LAYERS_FILE).write_text(text, encoding="utf-8")
        (tmp / STATS_FILE).write_text(json.dumps(stats, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        write_datacard(tmp / DATACARD_FILE, classes, summary, stats, {"config": config, **plan["provenance"]},
                       layers)
        datacard = (tmp / DATACARD_FILE).read_text(encoding="utf-8")
        for writer in writers_of(config).values():
            if hasattr(writer, "after_datacard"):
                writer.after_datacard(tmp, context, datacard)
        own = [f"{digests[rel]}  {rel}\n" for rel in files_under(tmp)]  # the files spanning the dataset
        for g in groups:
            link_files(Path(g) / FILES_DIR, tmp)
        streams = [own] + [open(Path(g) / SUMS_FILE, encoding="utf-8") for g in groups]
        try:
            with open(tmp / MANIFEST_FILE, "w", encoding="utf-8") as f:
                f.writelines(heapq.merge(*streams, key=_key))
        finally:
            for s in streams[1:]:
                s.close()
    for cid, c in sorted(classes.items()):
        log.info("dataset: class %d %s: %s", cid, c["name"], summary["counts"][str(cid)])
    for w in summary["warnings"]:
        log.warning("dataset: %s", w)
    log.info("dataset: %d chips (%d candidates; rejected %s; %d dropped by the split buffer) from %d groups -> %s",
             len(chips), summary["candidates"], summary["rejected"], summary["dropped_by_buffer"], len(groups),
             out_dir)
    return summary


def link_files(src: Path, dest: Path) -> int:
    """Hard-link every file under ``src`` into ``dest`` at the same paths -- a copy where the file system makes
    no link; an existing file is an error (two writers of one path). The count."""
    n = 0
    link = [True]
    for top, _, names in os.walk(src):
        rel_top = os.path.relpath(top, src)
        target = dest if rel_top == "." else os.path.join(dest, rel_top)
        os.makedirs(target, exist_ok=True)
        for name in names:
            link_or_copy(os.path.join(top, name), os.path.join(target, name), link)
            n += 1
    return n


def publish(records: list[str | Path], shards: list[str | Path], config: dict, grid, provenance: dict,
            out_dir: str | Path, work_dir: str | Path) -> dict:
    """The three publishing steps in one process, as the workflow's jobs run them: the plan and the groups under
    ``work_dir`` (``plan``, ``groups/<k>``), then the dataset at ``out_dir``. Returns the summary."""
    from .plan import make_plan, read_plan

    work_dir = Path(work_dir)
    summary = make_plan(records, config, grid, provenance, work_dir / "plan")
    groups = [work_dir / "groups" / str(k) for k in range(len(read_plan(work_dir / "plan")["groups"]))]
    for k, g in enumerate(groups):
        publish_group(work_dir / "plan", k, shards, config, grid, g)
    build_dataset(work_dir / "plan", groups, config, grid, out_dir)
    return summary

