# The two commands of the README: `make test` (everything CI checks) and `make demo`.
# Both provision libtorch and the demo model on first use (scripts/setup.sh, cached).

SHELL := /bin/bash
ENV := scripts/with-env.sh

.PHONY: test setup build release fmt clippy unit

## Everything: format check, clippy with warnings as errors, and every test of the workspace.
test:
	$(ENV) cargo fmt --all -- --check
	$(ENV) cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	$(ENV) cargo test --workspace --all-features --locked

## Provision libtorch (torch==2.11.0 venv) and the SmolLM2 GGUF into the cache.
setup:
	$(ENV) true

## Debug and release builds of the `wst` binary.
build:
	$(ENV) cargo build --workspace --all-features --locked
release:
	$(ENV) cargo build --release -p wst-cli --locked
