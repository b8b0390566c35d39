#!/usr/bin/env bash
# Create (or update) the project's virtual environment in .venv and install
# gos-build with its test and ml (PyTorch CPU) extras. Idempotent: a second run installs nothing new.
# Source it (". scripts/setup.sh") to get .venv/bin on PATH.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PYTHON="${PYTHON:-python3}"

if [ ! -x "$ROOT/.venv/bin/python" ]; then
  echo "gos-build setup: creating $ROOT/.venv with $($PYTHON --version)"
  "$PYTHON" -m venv "$ROOT/.venv"
fi
stamp="$ROOT/.venv/.gos-build-installed"
want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "gos-build setup: installing gos-build and its dependencies into .venv"
  "$ROOT/.venv/bin/python" -m pip install --quiet --upgrade pip
  "$ROOT/.venv/bin/python" -m pip install --quiet -e "$ROOT[test,ml]"
  echo "$want" > "$stamp"
fi
export PATH="$ROOT/.venv/bin:$PATH"
