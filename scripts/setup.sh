#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install gos-build with the extras in
# GOS_BUILD_EXTRAS (default "test,ml": pytest, the SLURM plugin, PyTorch for the baseline -- what the checks
# need; scripts/demo.sh sets it empty: the demo needs the package alone). Idempotent: a second run installs
# nothing new. Source it (". scripts/setup.sh") to get .venv/bin on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"
EXTRAS="${GOS_BUILD_EXTRAS-test,ml}"

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "gos-build setup: creating $ROOT/.venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.gos-build-installed${EXTRAS:+-$EXTRAS}"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "gos-build setup: installing gos-build${EXTRAS:+[$EXTRAS]} and its dependencies into .venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT${EXTRAS:+[$EXTRAS]}"
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
