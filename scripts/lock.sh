#!/usr/bin/env bash
# Re-resolve requirements.lock: exact pins for everything in pyproject.toml (with [dev]).
# Run on Python 3.11 (the version the lock is resolved for); commit the result.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet ".[dev]"
"$tmp/venv/bin/python" -m pip check
{
  echo "# Exact pins resolved on Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())') by scripts/lock.sh; do not edit by hand."
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^labkit'
} > requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
