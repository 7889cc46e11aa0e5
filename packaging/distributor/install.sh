#!/bin/sh
# Installs or upgrades ssm-preflight from the package beside this script.
# AWS-ConfigureAWSPackage runs it as the agent runs any Distributor
# script: as root, from the unzipped folder, with no terminal. Safe to run
# again: the same version installed is left as it is.
#
# A package manager at work (unattended-upgrades, a patch run) is waited
# for, up to SSM_PREFLIGHT_LOCK_WAIT seconds (600): its lock is never taken
# by this script nor broken. A config under /etc/ssm-preflight that was
# edited is kept. Exits non-zero with the reason when it cannot install.
set -u
cd "$(dirname "$0")" || exit 1

bound=${SSM_PREFLIGHT_LOCK_WAIT:-600}
deadline=$(($(date +%s) + bound))

say() { echo "ssm-preflight install.sh: $*"; }
die() {
  echo "ssm-preflight install.sh: $*" >&2
  exit 1
}

pkg=
for f in ssm-preflight*.deb ssm-preflight*.rpm; do
  [ -f "$f" ] && pkg=$f
done
[ -n "$pkg" ] || die "no ssm-preflight .deb or .rpm beside this script in $(pwd): the zip is incomplete"

# The pid holding a package-manager lock, found by asking, never by locking:
# a pid file naming a live process, or /proc/locks' holder of a lock file's
# inode (matched by inode alone: the lock files are few and far apart).
lock_holder() {
  for pidfile in /var/run/yum.pid /var/lib/dnf/rpmdb_lock.pid /run/zypp.pid; do
    if [ -s "$pidfile" ]; then
      pid=$(tr -cd '0-9' <"$pidfile")
      if [ -n "$pid" ] && [ -d "/proc/$pid" ]; then
        echo "$pid ($pidfile)"
        return
      fi
    fi
  done
  for lock in /var/lib/dpkg/lock-frontend /var/lib/dpkg/lock /var/lib/rpm/.rpm.lock /usr/lib/sysimage/rpm/.rpm.lock; do
    [ -e "$lock" ] || continue
    inode=$(stat -c %i "$lock") || continue
    pid=$(awk -v inode="$inode" '{ n = split($6, dev, ":"); if (dev[n] == inode && $5 > 0) { print $5; exit } }' /proc/locks 2>/dev/null)
    if [ -n "$pid" ]; then
      echo "$pid ($lock)"
      return
    fi
  done
}

# Waits while a lock is held; fails once the bound has passed.
wait_for_locks() {
  while holder=$(lock_holder) && [ -n "$holder" ]; do
    [ "$(date +%s)" -lt "$deadline" ] || die "a package manager still holds its lock after ${bound}s: pid $holder. Let it finish (\`ps -o pid,etime,args -p ${holder%% *}\`), then run the association again."
    say "waiting for pid $holder, which holds the package lock"
    sleep 2
  done
}

# The command that installs or upgrades $pkg here, with its answers given.
installer() {
  case $pkg in
  *.deb)
    # confold: an edited /etc/ssm-preflight/config.toml is kept.
    echo "apt-get install -y -q -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold ./$pkg"
    ;;
  *.rpm)
    if command -v dnf >/dev/null 2>&1; then
      echo "dnf install -y -q ./$pkg"
    elif command -v yum >/dev/null 2>&1; then
      echo "yum install -y -q ./$pkg"
    elif command -v zypper >/dev/null 2>&1; then
      echo "zypper --non-interactive --quiet install --allow-unsigned-rpm ./$pkg"
    else
      echo "rpm -U --quiet ./$pkg"
    fi
    ;;
  esac
}

# The package's version is the one installed: nothing to do (rpm alone
# would refuse it, apt-get and dnf would say so at length).
installed_already() {
  case $pkg in
  *.deb)
    command -v dpkg-query >/dev/null 2>&1 || return 1
    [ "$(dpkg-query -W -f '${Status}' ssm-preflight 2>/dev/null)" = "install ok installed" ] || return 1
    [ "$(dpkg-query -W -f '${Version}' ssm-preflight)" = "$(dpkg-deb -f "./$pkg" Version)" ]
    ;;
  *.rpm)
    command -v rpm >/dev/null 2>&1 || return 1
    want=$(rpm -qp --queryformat '%{VERSION}-%{RELEASE}' "./$pkg" 2>/dev/null) || return 1
    have=$(rpm -q --queryformat '%{VERSION}-%{RELEASE}' ssm-preflight 2>/dev/null) || return 1
    [ "$want" = "$have" ]
    ;;
  esac
}

export DEBIAN_FRONTEND=noninteractive
if installed_already; then
  say "$pkg is installed already"
  exit 0
fi
command=$(installer)
command -v "${command%% *}" >/dev/null 2>&1 || die "${command%% *} is not on this host, so $pkg cannot be installed: is this the zip for this distribution?"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
while :; do
  wait_for_locks
  # shellcheck disable=SC2086 # the command's words are split on purpose
  $command >"$log" 2>&1
  rc=$?
  if [ "$rc" -eq 0 ]; then
    say "installed $pkg"
    if systemctl is-active --quiet ssm-preflight 2>/dev/null; then
      say "the ssm-preflight service is running"
    fi
    exit 0
  fi
  # Taken between the look and the install (apt and zypper fail at once on
  # a held lock; yum and dnf wait by themselves): look and try again.
  if grep -Eq 'Could not get lock|Unable to acquire the dpkg|dpkg frontend lock|System management is locked|is locked by another' "$log" && [ "$(date +%s)" -lt "$deadline" ]; then
    say "the package lock was taken as the install began; waiting"
    sleep 2
    continue
  fi
  tail -20 "$log" >&2
  die "${command%% *} exited $rc installing $pkg (its last lines are above)"
done
