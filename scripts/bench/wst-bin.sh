# Sourced by the comparison scripts: sets WST_BIN, when it is not set, to the `wst` binary of
# profile $1 (`debug`, the default, or `release`), built first with cargo.
wst_bin() {
  local profile=${1:-debug}
  [ -n "${WST_BIN:-}" ] && return 0
  if [ "$profile" = release ]; then
    cargo build --release -p wst-cli --locked >&2
  else
    cargo build -p wst-cli --locked >&2
  fi
  WST_BIN=$(cargo metadata --format-version 1 --no-deps |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/$profile/wst
}
