#!/usr/bin/env bash
# CI for the rrqkit Python package: create/update the repository virtualenv, install the package
# with its dev, fast and otel extras, then lint, check formatting and run the test suite (the
# tests also run the paths without the fast extra: RRQKIT_EVENT_LOOP=asyncio, RRQKIT_JSON=stdlib).
# Usable from any directory. Extra arguments are passed to pytest.
#
#   runners/python/ci.sh                 # everything
#   runners/python/ci.sh -k vectors      # a subset
#   runners/python/ci.sh --install-only  # only create/update the venv (used by `npm start`)
#
# Environment: PYTHON (interpreter used to create the venv, default: the first of python3.13,
# python3.12, python3.11, python3 that is >= 3.11), RRQKIT_VENV (default: <repo>/.venv).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
venv="${RRQKIT_VENV:-$root/.venv}"

find_python() {
  local candidate
  for candidate in ${PYTHON:-} python3.13 python3.12 python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
      echo "$candidate"
      return 0
    fi
  done
  echo "ci.sh: Python >= 3.11 is required" >&2
  return 1
}

if [ ! -x "$venv/bin/python" ] ||
  ! "$venv/bin/python" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  "$(find_python)" -m venv "$venv"
fi
py="$venv/bin/python"
export PIP_DISABLE_PIP_VERSION_CHECK=1

echo "==> installing rrqkit[dev,fast,otel] into $venv"
if ! "$py" -m pip install --quiet -e "$here[dev,fast,otel]"; then
  # RRQ's wheel (the test oracle) may not exist for this platform: install without it; the
  # oracle tests then skip themselves.
  echo "ci.sh: warning: installing without the rrq==0.11.1 oracle" >&2
  "$py" -m pip install --quiet -e "$here[fast,otel]" "pytest>=8,<10" "pytest-asyncio>=0.24,<2" \
    "ruff>=0.17,<0.18" "build>=1.2"
fi

if [ "${1:-}" = "--install-only" ]; then
  exit 0
fi

cd "$here"
echo "==> ruff check"
"$py" -m ruff check .
echo "==> ruff format --check"
"$py" -m ruff format --check .
echo "==> mypy (strict)"
"$py" -m mypy
echo "==> pytest"
"$py" -m pytest -q "$@"
