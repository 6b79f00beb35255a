# The two commands of the README: `make test` (everything CI checks) and `make demo`.
# Both provision libtorch and the demo model on first use (scripts/setup.sh, cached).

SHELL := /bin/bash
ENV := scripts/with-env.sh

.PHONY: test demo demo-quick setup build release fmt clippy unit

## Everything: format check, clippy with warnings as errors, and every test of the workspace.
## Tests run dtype `auto` as f32 on every CPU (WST_CPU_BF16=0): their numbers do not depend on
## whether the CPU has bf16 instructions.
test:
	$(ENV) cargo fmt --all -- --check
	$(ENV) cargo clippy --workspace --all-targets --all-features --locked -- -D warnings
	WST_CPU_BF16=$${WST_CPU_BF16:-0} $(ENV) cargo test --workspace --all-features --locked

## The main job: WST on the embedded arithmetic task with SmolLM2 as teacher and student, on
## the CPU (3.0 minutes on 2 AMD Zen 5 cores with AVX512-BF16, up to about 9 on slower ones; longer in f32), ending with the held-out evaluation table.
## DEMO_ARGS passes flags through, e.g. `make demo DEMO_ARGS=--quick`. It runs the dev build
## (the one `make test` compiles; our crates at opt-level 1): the time goes to libtorch, and a
## newcomer does not pay a second, 15-minute release build of the dependencies.
demo:
	$(ENV) cargo build -p wst-cli --locked
	$(ENV) target/debug/wst demo $(DEMO_ARGS)

## A 1-minute smoke run of the demo (3 steps: too few to show the effect).
demo-quick:
	$(MAKE) demo DEMO_ARGS=--quick

## Provision libtorch (torch==2.11.0 venv) and the SmolLM2 GGUF into the cache.
setup:
	$(ENV) true

## Debug and release builds of the `wst` binary.
build:
	$(ENV) cargo build --workspace --all-features --locked
release:
	$(ENV) cargo build --release -p wst-cli --locked
