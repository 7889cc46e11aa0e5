#!/usr/bin/env bash
# Builds the packages into target/packages/. Work in progress (issue #7):
# the .deb is built; the .rpm and the glibc 2.17 build are not yet.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked

cargo build --release --locked
cargo run --quiet --locked --example gen-docs -- target/docs >/dev/null
gzip -9nf target/docs/ssm-preflight.1

mkdir -p target/packages
cargo deb --no-build --no-strip --output target/packages/
ls -l target/packages/
