#!/usr/bin/env bash
# The test command: installs what the tests need, then runs every test of the workspace.
# The tests build the plugin libraries and the binary themselves (real `cargo build`).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/setup.sh
# End-to-end tests build the binary with this run's feature set (testkit::cargo::build_binaries).
export SHIFTSCOPE_TEST_WORKSPACE=1
cargo test --workspace --jobs "${CARGO_BUILD_JOBS:-2}" "$@"
