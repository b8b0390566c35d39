# gos-build: GOS10m-style geomorphology scene-classification datasets from raw
# public inputs. Thin on purpose: every rule calls one `gos-build` command; all
# logic lives in the installed `gos_build` package (src/gos_build/).
#
#   snakemake --cores all                          # the embedded demo AOI (config.yaml)
#   snakemake --cores all --configfile my_aoi.yaml # your own AOI
#
# A --configfile replaces config.yaml instead of being merged into it, so a
# new AOI never inherits the demo's inputs or bbox.

import os

from snakemake.utils import min_version

min_version("9.1")


report: "workflow/report/workflow.rst"


if not workflow.config_settings.configfiles:

    configfile: os.path.join(workflow.basedir, "config.yaml")


include: "workflow/rules/common.smk"


wildcard_constraints:
    tile=ID_PATTERN,
    group=r"\d+",



include: "workflow/rules/demo.smk"
include: "workflow/rules/grid.smk"
include: "workflow/rules/sentinel2.smk"
include: "workflow/rules/terrain.smk"
include: "workflow/rules/labels.smk"
include: "workflow/rules/tile.smk"
include: "workflow/rules/chips.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/baseline.smk"


check_input_globs()


rule all:
    default_target: True
    input:
        all_targets(),
