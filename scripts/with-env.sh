#!/usr/bin/env bash
# Runs a command with libtorch and the demo model provisioned (scripts/setup.sh) and the cargo
# target folder kept in the cache (./target is a link to it), so a fresh clone reuses earlier
# builds and never reinstalls torch.
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
cd "$here"
eval "$(bash scripts/setup.sh)"
cache=${WST_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/wst}
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ ! -e target ]; then
  mkdir -p "$cache/target"
  ln -s "$cache/target" target
fi
exec "$@"
