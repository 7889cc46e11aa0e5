#!/usr/bin/env bash
# Builds the .deb and the .rpm into target/packages/.
#
#   packaging/build.sh                              # x86_64, glibc 2.17 and later
#   packaging/build.sh aarch64-unknown-linux-gnu    # Graviton (rustup target add aarch64-unknown-linux-gnu)
#
# The binary is linked by cargo-zigbuild against glibc 2.17 (CentOS 7, RHEL 7,
# Amazon Linux 2), so one package serves every supported distribution. The
# tools are installed when missing: cargo-zigbuild and ziglang from PyPI,
# cargo-deb and cargo-generate-rpm from crates.io.
set -euo pipefail
cd "$(dirname "$0")/.."

target=${1:-x86_64-unknown-linux-gnu}
glibc=2.17
out=target/packages

# Python's user-level scripts directory, where `pip install --user` puts
# cargo-zigbuild when pip is not allowed to write the system's.
PATH="$PATH:$(python3 -c 'import site; print(site.USER_BASE)')/bin"

# The versions these packages were built and tested with; a tool already
# installed is used whatever its version.
need_pip=()
command -v cargo-zigbuild >/dev/null 2>&1 || need_pip+=(cargo-zigbuild==0.24.1)
python3 -c 'import ziglang' >/dev/null 2>&1 || need_pip+=(ziglang==0.17.1)
if ((${#need_pip[@]})); then
  echo "build.sh: installing ${need_pip[*]} from PyPI" >&2
  python3 -m pip install --quiet --disable-pip-version-check "${need_pip[@]}" \
    || python3 -m pip install --quiet --disable-pip-version-check --user --break-system-packages "${need_pip[@]}"
fi
for tool in cargo-deb@3.8.0 cargo-generate-rpm@0.21.1; do
  if ! command -v "${tool%@*}" >/dev/null 2>&1; then
    echo "build.sh: installing $tool from crates.io (a minute or two, once)" >&2
    # --debug: compiles in a third of the time (2 min instead of 6 for both,
    # here); the tools then run for seconds either way (5 s and 10 s).
    cargo install --locked --quiet --debug "$tool"
  fi
done

# The man page and the completions come from the CLI's own definition.
cargo run --quiet --locked --example gen-docs -- target/docs >/dev/null
gzip -9nf target/docs/ssm-preflight.1

# The `dist` profile (fat LTO, one codegen unit, opt-level "s"): the
# packaged binary stays as small and as lean at idle as it is measured.
cargo zigbuild --profile dist --locked --bin ssm-preflight --target "$target.$glibc"

# Both tools read target/<triple>/release/ssm-preflight for the assets'
# target/release/ssm-preflight when given --target: the dist binary goes there.
mkdir -p "target/$target/release"
cp "target/$target/dist/ssm-preflight" "target/$target/release/ssm-preflight"
mkdir -p "$out"
cargo deb --no-build --no-strip --target "$target" --output "$out/"
cargo generate-rpm --target "$target" --payload-compress gzip --output "$out/"
ls -l "$out"
