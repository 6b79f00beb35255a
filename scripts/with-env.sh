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
# The checkout this target folder is used from: wst-core/build.rs rebuilds the workspace crates
# (not their dependencies) when it changes, so test binaries never carry another clone's paths.
export WST_REPO_ROOT=$here
# libgomp's threads spin while they wait; when more threads than cores compete (parallel tests,
# a build next to a run) spinning slows libtorch by 3-4x (measured: 27.6 s -> 8.6 s for the same
# 16 replies with a build running). Sleeping waits cost little when the cores are free.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-PASSIVE}
exec "$@"
