# Shared by scripts/test-packages and scripts/test-systemd: sourced, not run.
# shellcheck shell=bash

# One line per check ("ok", "FAIL", "skip"), counted for the closing line.
passed=0 failed=0 skipped=0
ok() { echo "ok   - $1"; passed=$((passed + 1)); }
fail() {
  echo "FAIL - $1"
  shift
  if (($#)); then printf '       %s\n' "$@"; fi
  failed=$((failed + 1))
}
# Under CI (CI=true) a check that cannot run fails the run: a tier that
# skips would let CI pass without looking. Elsewhere it skips with the reason.
skip() {
  if [ "${CI:-}" = true ]; then
    fail "$1" "CI=true: a check that cannot run fails CI instead of skipping"
  else
    echo "skip - $1"
    skipped=$((skipped + 1))
  fi
}
# expect DESCRIPTION COMMAND...: ok when the command succeeds.
expect() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then ok "$what"; else fail "$what" "$out"; fi
}

# The packages of Cargo.toml's version in target/packages/, not older ones:
# sets cargo_version, deb and rpm (empty when that file is missing).
find_packages() {
  cargo_version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
  deb=target/packages/ssm-preflight_${cargo_version}-1_amd64.deb
  rpm=target/packages/ssm-preflight-${cargo_version}-1.x86_64.rpm
  [ -f "$deb" ] || deb=
  [ -f "$rpm" ] || rpm=
}

# debian_tree NAME: prints the path of a debootstrapped Debian tree with
# systemd, dbus and (on Debian 12) rpm, made once and kept in target/nspawn/;
# NAME is debian12 or debian11. Several scripts may ask at once: the first
# builds it, the others wait on target/nspawn/NAME.lock (our own file). A
# tree made for another package list is made again. Prints why on stderr
# and returns 1 when debootstrap cannot make it.
debian_tree() {
  local name=$1 suite extra=""
  case $name in
    debian12) suite=bookworm extra=",rpm" ;;
    debian11) suite=bullseye ;;
    *) echo "debian_tree: unknown tree $name" >&2; return 1 ;;
  esac
  local packages="systemd,systemd-sysv,dbus,adduser,procps$extra"
  local root=target/nspawn/$name stamp="$suite minbase $packages"
  mkdir -p target/nspawn
  (
    flock 9
    if [ "$(cat "$root.complete" 2>/dev/null)" != "$stamp" ]; then
      rm -rf "$root" "$root.complete"
      local log=target/nspawn/$name.debootstrap.log
      if ! debootstrap --variant=minbase --include="$packages" "$suite" "$root" http://deb.debian.org/debian >"$log" 2>&1; then
        # An older release moves to the archive when its support ends.
        rm -rf "$root"
        debootstrap --variant=minbase --include="$packages" "$suite" "$root" http://archive.debian.org/debian >>"$log" 2>&1 ||
          { rm -rf "$root"; tail -5 "$log" >&2; exit 1; }
      fi
      # The tree's apt lists are of no use offline; the package cache is
      # large and not needed again.
      rm -rf "$root"/var/cache/apt/archives/*.deb
      echo "$stamp" >"$root.complete"
    fi
  ) 9>"target/nspawn/$name.lock" || return 1
  echo "$root"
}
