#!/usr/bin/env bash
# Prints the path of a Python that can `import pyarrow`, for tests that check our Parquet files
# with an external reader. Uses $WST_PYTHON (the project venv, see scripts/setup.sh), else that
# venv in the cache, else python3; installs pyarrow with pip the first time (then cached).
set -euo pipefail
cache=${WST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wst}
py=${WST_PYTHON:-$cache/venv-torch-2.11.0/bin/python}
[ -x "$py" ] || py=$(command -v python3)
if ! "$py" -c 'import pyarrow' 2>/dev/null; then
  mkdir -p "$cache"
  exec 9>"$cache/.pyarrow.lock"
  flock 9
  if ! "$py" -c 'import pyarrow' 2>/dev/null; then
    printf '[ensure-pyarrow] installing pyarrow for %s\n' "$py" >&2
    "$py" -m pip install --quiet pyarrow >&2
  fi
fi
echo "$py"
