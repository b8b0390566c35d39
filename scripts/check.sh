#!/usr/bin/env bash
# The whole check suite: set-up, reference tools, pytest, `snakemake --lint`,
# and a dry run of config.yaml and of every config in configs/.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh

# Debian packages the checks use: GDAL's command-line tools (gdaldem, gdalinfo) and GRASS are
# the references the terrain tests compare against; Chromium renders the report;
# SLURM and munge make the one-node cluster the profile is tested on (the figures' CJK font
# comes with the Python package mplfonts). Installed where we can.
need=()
command -v gdaldem >/dev/null 2>&1 || need+=(gdal-bin)
# GRASS GIS (r.slope.aspect's curvatures, r.geomorphon): the reference of the extra terrain layers' tests
command -v grass >/dev/null 2>&1 || need+=(grass-core)
command -v chromium >/dev/null 2>&1 || need+=(chromium)
# a one-node SLURM cluster for tests/test_slurm.py (scripts/slurm-local.sh)
command -v slurmctld >/dev/null 2>&1 || need+=(slurm-wlm)
command -v munged >/dev/null 2>&1 || need+=(munge)
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
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for cfg in configs/*.yaml; do
  echo "== snakemake -n --configfile $cfg"
  if [ "$(basename "$cfg")" = gos10m.yaml ]; then
    # GOS10m reads its imagery and DEM from STAC (a job, not the dry run); the polygons are the user's:
    # stand-ins from the demo generator over the same bbox
    gos-build -q demo-inputs --format polygons --bbox 128.35 43.75 129.25 44.35 --out "$work/gos10m"
    snakemake -n --quiet rules --configfile "$cfg" --config "inputs={\"polygons\": \"$work/gos10m/polygons.gpkg\"}"
  else
    snakemake -n --quiet rules --configfile "$cfg"
  fi
done
echo "== pytest"
python -m pytest -q "$@"

# gos_build.torchgeo in an environment of its own: the [torchgeo] extra needs PyPI's torch/torchvision pair,
# which does not install beside [ml]'s pinned CPU torch (docs/torchgeo.md)
TG="$ROOT/.venv-torchgeo"
if [ ! -x "$TG/bin/python" ]; then
  echo "check: creating $TG for the TorchGeo tests"
  "${PYTHON:-python3}" -m venv "$TG"
fi
want="$(sha256sum "$ROOT/pyproject.toml" | cut -d' ' -f1)"
if [ "$(cat "$TG/.gos-build-installed" 2>/dev/null)" != "$want" ]; then
  echo "check: installing gos-build[torchgeo] into $TG"
  "$TG/bin/python" -m pip install --quiet --upgrade pip
  "$TG/bin/python" -m pip install --quiet -e "$ROOT[torchgeo]"
  echo "$want" > "$TG/.gos-build-installed"
fi
echo "== pytest tests/test_torchgeo.py (.venv-torchgeo)"
PATH="$TG/bin:$PATH" "$TG/bin/python" -m pytest -q tests/test_torchgeo.py "$@"
