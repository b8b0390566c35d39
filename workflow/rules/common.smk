# Helpers shared by the workflow files -- config checks, the grid and its tiles,
# input resolution, GDAL settings per job. No geospatial logic here.

import glob

from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from gos_build.config import check_config
from gos_build.errors import GosBuildError
import os

from gos_build.chips import MODALITIES
from gos_build.grid import ID_PATTERN, grid_from_config, lattice_id, parse_lattice_id

# -- config: friendly messages first, then Snakemake's validator fills defaults
try:
    check_config(config)
except GosBuildError as exc:
    raise WorkflowError(str(exc)) from None
validate(config, "../schemas/config.schema.yaml", set_default=True)

AOI = config["aoi"]["name"]
DIST_NAMES = [*MODALITIES, "labels"]
CLASS_NAMES = [c["name"] for _, c in sorted(config["classes"].items(), key=lambda kv: int(kv[0]))]
OUT = f"results/{AOI}"
LOGS = f"logs/{AOI}"
BENCH = f"benchmarks/runs/{AOI}"
ENV = "../../envs/gos-build.yaml"
DEMO = config.get("demo")

# -- the reference grid and its processing tiles (known at parse time: tiles are
#    the only wildcard, so ~12 000 chips never become DAG nodes)
try:
    GRID = grid_from_config(config)
except GosBuildError as exc:
    raise WorkflowError(str(exc)) from None
TILES = [t.id for t in GRID.tiles()]
if not TILES:
    raise WorkflowError(f"aoi: the AOI of '{AOI}' covers no processing tile")


def grid_args():
    """`gos-build grid` arguments for this config's AOI and grid keys."""
    aoi, g = config["aoi"], config["grid"]
    where = f"--bbox {' '.join(str(v) for v in aoi['bbox'])}" if "bbox" in aoi else f"--geometry '{aoi['geometry']}'"
    return (
        f"{where} --crs {aoi['crs']} --resolution {g['resolution']} "
        f"--chip-size {g['chip_size']} --tile-chips {g['tile_chips']}"
    )


def demo_manifest():
    return f"{DEMO['out']}/demo-inputs.json"


def missing_inputs():
    """One line per `inputs` glob that matches no file (none with a `demo:` section)."""
    if DEMO:
        return []
    lines = []
    for key in ("sentinel2", "dem", "polygons"):
        patterns = config["inputs"][key]
        for pattern in [patterns] if isinstance(patterns, str) else patterns:
            if not glob.glob(pattern):
                lines.append(f"inputs.{key}: '{pattern}' matches no file")
    return lines


if missing_inputs():
    raise WorkflowError("\n".join(missing_inputs()))


def input_files(key):
    """Files of `inputs.<key>` a rule depends on.

    With a `demo:` section the inputs do not exist before the demo rule runs, so
    rules depend on its manifest; otherwise every glob must match something now.
    """
    if DEMO:
        return [demo_manifest()]
    patterns = config["inputs"][key]
    patterns = [patterns] if isinstance(patterns, str) else patterns
    files = []
    for pattern in patterns:
        hits = sorted(glob.glob(pattern))
        if not hits:
            raise WorkflowError(f"inputs.{key}: '{pattern}' matches no file")
        files += hits
    return files


def quoted(patterns):
    """Glob patterns as one shell-quoted argument list (expanded by gos-build, not the shell)."""
    patterns = [patterns] if isinstance(patterns, str) else patterns
    return " ".join(f"'{p}'" for p in patterns)


# GDAL's block cache and thread pool follow each job's threads/resources
# (`gos-build --threads {threads} --gdal-cache-mb {resources.gdal_cache_mb}`),
# so N parallel jobs never oversubscribe memory (GDAL's default is 5 % of RAM each).


def all_targets():
    """The default target: the dataset folder, its distribution zips and the imagery preview."""
    return [
        f"{OUT}/dataset",
        *expand(f"{OUT}/dist/{AOI}_{{name}}.zip", name=DIST_NAMES),
        f"{OUT}/sentinel2/visual.tif",
        f"{OUT}/figures/overview.png",
    ]


def chip_tile_dirs(wildcards):
    """This tile's folder, plus its east/south neighbours when chips overlap (stride < chip size)."""
    dirs = [f"{OUT}/tiles/{wildcards.tile}"]
    if config["grid"]["stride"] < config["grid"]["chip_size"]:
        x, y = parse_lattice_id(wildcards.tile)
        span = GRID.tile_span
        for dx, dy in ((span, 0), (0, -span), (span, -span)):
            tid = lattice_id(x + dx, y + dy)
            if tid in TILES:
                dirs.append(f"{OUT}/tiles/{tid}")
    return dirs


def chip_inputs(wildcards):
    return [f"{d}/{name}" for d in chip_tile_dirs(wildcards) for name in ("labels.tif", "valid.tif", "rgb.tif", "terrain.tif")]
