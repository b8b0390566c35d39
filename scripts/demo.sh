#!/usr/bin/env bash
# Build the dataset of the embedded demo AOI (config.yaml) from scratch:
# virtual environment, install, generated inputs, every stage. Idempotent:
# a second run finds everything up to date.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
. scripts/setup.sh
snakemake --cores all "$@"
