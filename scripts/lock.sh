#!/usr/bin/env bash
# Re-resolve requirements.lock: exact pins for everything in pyproject.toml (with [dev]).
# Run on Python 3.11 (the version the lock is resolved for); commit the result.
# Today's pins are kept (as constraints), so adding a dependency adds its pins and upgrades
# nothing else; LOCK_UPGRADE=1 re-resolves everything to the newest versions.
set -euo pipefail
cd "$(dirname "$0")/.."
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
constraints=()
if [[ -z "${LOCK_UPGRADE:-}" && -f requirements.lock ]]; then
  grep -v '^#' requirements.lock > "$tmp/constraints.txt"
  constraints=(-c "$tmp/constraints.txt")
fi
python3.11 -m venv "$tmp/venv"
"$tmp/venv/bin/python" -m pip install --quiet --upgrade pip
"$tmp/venv/bin/python" -m pip install --quiet ".[dev]" "${constraints[@]}"
"$tmp/venv/bin/python" -m pip check
{
  echo "# Exact pins resolved on Python $("$tmp/venv/bin/python" -c 'import platform; print(platform.python_version())') by scripts/lock.sh; do not edit by hand."
  # pip freeze drops environment markers: uvloop has no Windows build (pyproject.toml).
  "$tmp/venv/bin/python" -m pip freeze --exclude-editable | grep -v '^labkit' |
    sed 's/^\(uvloop==.*\)$/\1 ; sys_platform != "win32"/'
} > requirements.lock
echo "wrote requirements.lock ($(grep -vc '^#' requirements.lock) packages)"
