#!/usr/bin/env bash
# The whole check suite: set-up, reference tools, pytest, `snakemake --lint`,
# and a dry run of config.yaml and of every config in configs/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh

# Debian packages the checks use: GDAL's command-line tools (gdaldem, gdalinfo) are
# the reference the terrain tests compare against; Chromium renders the report;
# a CJK font draws the Chinese class names in the figures. Installed where we can.
need=()
command -v gdaldem >/dev/null 2>&1 || need+=(gdal-bin)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
fc-list 2>/dev/null | grep -qi "wenquanyi\|wqy" || need+=(fonts-wqy-microhei)
if [ ${#need[@]} -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
    echo "check: installing Debian ${need[*]}"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "check: missing ${need[*]} and cannot install them here; the tests needing them are skipped" >&2
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
