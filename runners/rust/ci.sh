#!/usr/bin/env bash
# CI for the Rust runner/producer crate. Runs from any working directory.
#
#   fmt --check, clippy -D warnings (default features and with otel), cargo test (with otel:
#   every test, the telemetry test included), and the example binaries the conformance harness
#   launches (target/debug/examples/{conformance_runner,producer_adapter}, built with otel).
#
# One target dir is reused for every step: runners/rust/target, where the conformance harness
# looks for the examples (RRQKIT_RUST_TARGET_DIR overrides it; CARGO_TARGET_DIR is ignored).
# The producer tests need redis-server (REDIS_SERVER=/path overrides PATH); when it is missing
# and we are root, it is installed with apt-get.
#
#   ci.sh --build-only   only build the example binaries (used by `npm start`)
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${RRQKIT_RUST_TARGET_DIR:-$here/target}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

step() {
  echo
  echo "==> $*"
}

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo not found on PATH" >&2
  exit 1
fi
for component in rustfmt clippy; do
  sub=${component/rustfmt/fmt}
  if ! cargo "$sub" --version >/dev/null 2>&1; then
    if command -v rustup >/dev/null 2>&1; then
      step "rustup component add $component"
      rustup component add "$component"
    else
      echo "cargo $sub is missing and rustup is not available" >&2
      exit 1
    fi
  fi
done
if [ "${1:-}" = "--build-only" ]; then
  step "cargo build --examples --features otel"
  cargo build --locked --examples --features otel
  exit 0
fi
# The producer tests start their own redis-server (Debian package redis-server).
if ! command -v "${REDIS_SERVER:-redis-server}" >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    step "apt-get install redis-server"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server not found: install it (apt-get install redis-server) or set REDIS_SERVER" >&2
    exit 1
  fi
fi

start=$SECONDS

step "cargo fmt --check"
cargo fmt --check

step "cargo clippy --all-targets -- -D warnings"
cargo clippy --all-targets --locked -- -D warnings

step "cargo clippy --all-targets --features otel -- -D warnings"
cargo clippy --all-targets --locked --features otel -- -D warnings

# One test build with otel on runs every test (the telemetry test included); a second build
# with default features would only recompile the crate for the same tests (clippy above still
# checks the default-feature code).
step "cargo test --features otel"
cargo test --locked --features otel

step "cargo build --examples --features otel"
cargo build --locked --examples --features otel

echo
echo "runners/rust CI passed in $((SECONDS - start)) s"
