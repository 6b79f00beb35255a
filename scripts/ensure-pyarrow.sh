#!/usr/bin/env bash
# Prints the path of a Python that can import the given modules (default: pyarrow), for tests
# that check our Parquet files with external readers (pyarrow, polars). Uses $WST_PYTHON (the
# project venv, see scripts/setup.sh), else that venv in the cache, else python3; installs the
# missing modules with pip the first time (then cached). `MODULE==VERSION` pins a version (the
# distribution of that name must have exactly it; pip installs it otherwise).
#   scripts/ensure-pyarrow.sh [MODULE[==VERSION] ...]
set -euo pipefail
cache=${WST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wst}
py=${WST_PYTHON:-$cache/venv-torch-2.11.0/bin/python}
[ -x "$py" ] || py=$(command -v python3)
mods=("$@")
[ ${#mods[@]} -gt 0 ] || mods=(pyarrow)
missing() {
  local m out=()
  for m in "${mods[@]}"; do
    case "$m" in
      *==*) "$py" -c "import importlib.metadata as md, sys; sys.exit(md.version('${m%%==*}') != '${m#*==}')" \
              2>/dev/null || out+=("$m") ;;
      *) "$py" -c "import $m" 2>/dev/null || out+=("$m") ;;
    esac
  done
  echo "${out[@]:-}"
}
if [ -n "$(missing)" ]; then
  mkdir -p "$cache"
  exec 9>"$cache/.pyarrow.lock"
  flock 9
  todo=$(missing)
  if [ -n "$todo" ]; then
    printf '[ensure-pyarrow] installing %s for %s\n' "$todo" "$py" >&2
    # shellcheck disable=SC2086
    "$py" -m pip install --quiet $todo >&2
  fi
fi
echo "$py"
