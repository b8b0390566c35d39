# Helpers shared by the workflow files: config check, output paths, the tiles
# (from the grid at parse time), input dependencies, config for jobs.
# No geospatial logic here: it lives in the gos_build package.

import json
import os

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gos_build.config import check_config, demo_conflict
from gos_build.errors import GosBuildError
from gos_build.grid import grid_from_config
from gos_build.layout import ID_PATTERN
from gos_build.inputs import as_patterns
from gos_build.inputs import expand as expand_globs
from gos_build.inputs.stac import is_stac
from gos_build.layout import INPUT_KINDS, layers_from_config
from gos_build.config import zip_part_bytes
from gos_build.archive.plan import publish_groups
from gos_build.config import group_tiles

# -- config: friendly messages first, then Snakemake's validator fills defaults
try:
    check_config(config)
except GosBuildError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, "../schemas/config.schema.yaml", set_default=True)

AOI = config["aoi"]["name"]
_PART_BYTES = zip_part_bytes(config)
ZIP_PART_GB = None if _PART_BYTES is None else _PART_BYTES / 1e9  # publish.zips: the largest part of a zip, GB
LAYERS = layers_from_config(config)  # the dataset's layers: GOS10m's nine and the config's extra ones
CLASS_NAMES = [c["name"] for _, c in sorted(config["classes"].items(), key=lambda kv: int(kv[0]))]
OUT = f"results/{AOI}"
LOGS = f"logs/{AOI}"
BENCH = f"benchmarks/runs/{AOI}"
ENV = "../../envs/gos-build.yaml"
# sentinel2.composite: median, sentinel2.periods -- the datacard summarises the tiles' valid observations
# (tiles/<tile>/sentinel2.json)
OBSERVATIONS = (config.get("sentinel2", {}).get("composite", "mosaic") == "median"
                or bool(config.get("sentinel2", {}).get("periods")))

# -- the reference grid and its processing tiles (known at parse time: tiles are
#    the only wildcard, so ~12 000 chips never become DAG nodes)
try:
    GRID = grid_from_config(config)
except GosBuildError as exc:
    raise WorkflowError(str(exc)) from None
TILES = [t.id for t in GRID.tiles()]
if not TILES:
    raise WorkflowError(f"aoi: the AOI of '{AOI}' covers no processing tile")
# the publishing jobs' groups of whole tile columns or strips of tall ones (publish.group_tiles), by number:
# publish/groups/<k>
GROUPS = [str(k) for k in range(len(publish_groups(GRID, group_tiles(config))))]
_TILE_CHIPS = {t.id: t.width * t.height // GRID.chip_size**2 for t in GRID.tiles()}


def tile_priority(wildcards):
    """A tile job's priority: its area in chips, so the largest tiles start first and the partial tiles at the
    AOI's edges fill the cores at the end (instead of one full tile running alone)."""
    return _TILE_CHIPS[wildcards.tile]


def manifest(kind):
    """results/<aoi>/inputs/<kind>.json: the manifest the resolver of inputs.<kind> writes."""
    return f"{OUT}/inputs/{kind}.json"


def granules_under_tile(manifest_path, tile):
    """Keys of the Sentinel-2 granules a tile's job reads (under the tile and what its chips reach:
    gos_build.sentinel2.granule_keys_by_tile), for every tile at once and once per version of the manifest."""
    from gos_build.inputs import read_manifest
    from gos_build.sentinel2 import granule_keys_by_tile

    stat = os.stat(manifest_path)
    key = (manifest_path, stat.st_mtime_ns, stat.st_size)
    if key not in _GRANULES:
        _GRANULES[key] = granule_keys_by_tile(read_manifest(manifest_path, "sentinel2"), GRID,
                                              config["grid"]["stride"])
    return _GRANULES[key][tile]


_GRANULES = {}


def s2_granules(wildcards):
    """The decoded granules under a tile (from the manifest, once the checkpoint has written it)."""
    path = checkpoints.inputs_sentinel2.get().output[0]
    keys = granules_under_tile(path, wildcards.tile)
    return expand(rules.s2_granule.output[0], granule=keys)


def config_json(*keys):
    """The validated config, or the keys of it a job uses (dotted, e.g. "inputs.dem"), as one JSON argument.

    Rules pass only the keys they use, so editing one stage's keys reruns that stage only.
    """
    if not keys:
        return json.dumps(config, ensure_ascii=False, sort_keys=True)
    part = {}
    for key in keys:
        *parents, last = key.split(".")
        src = config
        for name in parents:
            src = src[name]
        if last not in src:  # optional keys may be absent (and then add nothing, not even their section)
            continue
        dst = part
        for name in parents:
            dst = dst.setdefault(name, {})
        dst[last] = src[last]
    return json.dumps(part, ensure_ascii=False, sort_keys=True)


# -- inputs: files a resolver depends on. Inputs may also be made by a rule of
#    this workflow (a producer: the demo generator, a download stage); such a
#    rule registers the folder it writes and the file that marks it done.
PRODUCERS = {}


def _producer_of(pattern):
    path = os.path.normpath(pattern)
    for folder, done in PRODUCERS.items():
        if os.path.commonpath([os.path.abspath(path), os.path.abspath(folder)]) == os.path.abspath(folder):
            return done
    return None


def input_sources(kind):
    """Files the resolver of inputs.<kind> depends on: what its globs match, or the producer's marker.

    Returns an input function: evaluated when the DAG is built, after every producer registered.
    """
    return lambda wildcards: _input_sources(kind)


def _input_sources(kind):
    if is_stac(config["inputs"][kind]):
        return []  # a catalogue: nothing on disk to depend on; the resolver's params carry the query
    deps = []
    for pattern in as_patterns(config["inputs"][kind]):
        done = _producer_of(pattern)
        deps += [done] if done else expand_globs(pattern, kind)
    return sorted(set(deps))


def check_input_globs():
    """Stop before any job when a glob matches nothing (all such globs named at once)."""
    lines = []
    for kind in INPUT_KINDS:
        if is_stac(config["inputs"][kind]):
            continue
        for pattern in as_patterns(config["inputs"][kind]):
            if _producer_of(pattern) is None:
                try:
                    expand_globs(pattern, kind)
                except GosBuildError as exc:
                    lines.append(str(exc))
    if lines:
        raise WorkflowError("\n".join(lines))


def all_targets():
    """The default target: the dataset folder, its distribution zips (unless ``publish.zips: false``), the imagery
    preview and the figures."""
    return [
        f"{OUT}/dataset",
        *([f"{OUT}/dist"] if ZIP_PART_GB is not None else []),
        f"{OUT}/sentinel2/visual.tif",
        f"{OUT}/figures/overview.png",
    ]
