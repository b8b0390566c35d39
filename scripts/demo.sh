#!/usr/bin/env bash
# Build the dataset of the embedded demo AOI (config.yaml) from scratch:
# virtual environment, install (the package alone: no test tools, no PyTorch), generated inputs, every
# stage. Idempotent: a second run finds everything up to date. Extra flags go to Snakemake.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
GOS_BUILD_EXTRAS="" . scripts/setup.sh
snakemake --cores all "$@"
case " $* " in
  *" -n "*|*" --dry-run "*) exit 0 ;;
esac
cat <<MSG

gos-build demo: done.
  dataset   $ROOT/results/demo/dataset   (check it: .venv/bin/gos-build validate results/demo/dataset)
  downloads $ROOT/results/demo/dist      (every zip unzipped into one folder is the dataset)
  figures   $ROOT/results/demo/figures   (and: .venv/bin/snakemake --report report.html)
  next      your own area (README.md, "Quickstart"):
              . scripts/setup.sh
              gos-build init my_area.yaml --bbox LON_MIN LAT_MIN LON_MAX LAT_MAX --sentinel2 'GLOB' --dem 'GLOB' \\
                  --polygons FILE --class-field FIELD      (checks the inputs, says what is missing)
              gos-build check-config my_area.yaml; snakemake --cores all --configfile my_area.yaml
MSG
