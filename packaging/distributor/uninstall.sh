#!/bin/sh
# Removes ssm-preflight, keeping /etc/ssm-preflight: dpkg keeps the
# configuration of a removed (not purged) package; rpm keeps an edited
# config.toml as config.toml.rpmsave. AWS-ConfigureAWSPackage runs it as
# root, from the unzipped folder, with no terminal. Safe to run again: a
# host without the package is left as it is. A package manager at work is
# waited for (SSM_PREFLIGHT_LOCK_WAIT seconds, 600), never interrupted.
set -u
cd "$(dirname "$0")" || exit 1

bound=${SSM_PREFLIGHT_LOCK_WAIT:-600}
deadline=$(($(date +%s) + bound))
say() { echo "ssm-preflight uninstall.sh: $*"; }
die() {
  echo "ssm-preflight uninstall.sh: $*" >&2
  exit 1
}

if command -v dpkg-query >/dev/null 2>&1 && [ "$(dpkg-query -W -f '${Status}' ssm-preflight 2>/dev/null)" = "install ok installed" ]; then
  command="apt-get remove -y -q ssm-preflight"
elif command -v rpm >/dev/null 2>&1 && rpm -q ssm-preflight >/dev/null 2>&1; then
  if command -v dnf >/dev/null 2>&1; then
    command="dnf remove -y -q ssm-preflight"
  elif command -v yum >/dev/null 2>&1; then
    command="yum remove -y -q ssm-preflight"
  elif command -v zypper >/dev/null 2>&1; then
    command="zypper --non-interactive --quiet remove ssm-preflight"
  else
    command="rpm -e ssm-preflight"
  fi
else
  say "ssm-preflight is not installed"
  exit 0
fi

export DEBIAN_FRONTEND=noninteractive
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while :; do
  # shellcheck disable=SC2086 # the command's words are split on purpose
  $command >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    say "removed ssm-preflight (its configuration in /etc/ssm-preflight is kept)"
    exit 0
  fi
  if grep -Eq 'Could not get lock|Unable to acquire the dpkg|dpkg frontend lock|System management is locked|is locked by another' "$log" && [ "$(date +%s)" -lt "$deadline" ]; then
    say "a package manager holds the package lock; waiting"
    sleep 2
    continue
  fi
  tail -20 "$log" >&2
  die "${command%% *} exited $rc removing ssm-preflight (its last lines are above)"
done
