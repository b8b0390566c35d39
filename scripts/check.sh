#!/usr/bin/env bash
# The whole check suite: set-up, reference tools, pytest, `snakemake --lint`,
# and a dry run of config.yaml and of every config in configs/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh

# GDAL's command-line tools (gdaldem, gdalinfo) are the reference the terrain
# tests compare against; install Debian's gdal-bin where we can.
if ! command -v gdaldem >/dev/null 2>&1; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "check: installing Debian gdal-bin (reference gdaldem/gdalinfo)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq gdal-bin >/dev/null
  else
    echo "check: gdaldem not found and cannot install gdal-bin here; reference tests will be skipped" >&2
  fi
fi

echo "== snakemake --lint"
snakemake --lint
echo "== snakemake -n (config.yaml)"
snakemake -n --quiet rules
for cfg in configs/*.yaml; do
  echo "== snakemake -n --configfile $cfg"
  snakemake -n --quiet rules --configfile "$cfg"
done
echo "== pytest"
python -m pytest -q "$@"
