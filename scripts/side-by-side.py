#!/usr/bin/env python3
"""Two builds of ssm-preflight, run alternately on the same checks.

    scripts/side-by-side.py OLD_BINARY NEW_BINARY [RUNS]

Runs `check --only <the five checks the host group had before the cloud
half> --json` on the clean fixture root and on the real root, RUNS times
each (default 100), alternating which build goes first, and prints for
each build the median wall time, the median CPU time (user + system, from
wait4) and the median count of minor page faults. Both binaries are
copied first and dropped from the page cache, so that the first run reads
each back from the disk, as it would an installed package's: how a file
entered the page cache changes how a run faults it in (BENCHMARKS.md, "How
the binary's file was written"; a fresh copy of the old build measured 22
faults fewer than the same bytes read back), and the two must be in the
same state. Peak RSS is not printed: a child forked from Python
starts with Python's own pages counted in its high-water mark; `cargo
bench --bench check_cli` measures it from a spawned child.
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

ONLY = "disk.root,pkg.lock,pkg.state,reboot.pending,os.supported"
ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def run(binary, root, config):
    env = dict(
        os.environ,
        AWS_EC2_METADATA_DISABLED="true",
        DBUS_SYSTEM_BUS_ADDRESS="unix:path=/nonexistent/system_bus_socket",
        AWS_ENDPOINT_URL="http://127.0.0.1:9",
    )
    started = time.perf_counter()
    child = subprocess.Popen(
        [binary, "check", "--only", ONLY, "--json", "--root", root, "--config", config],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    _, status, usage = os.wait4(child.pid, 0)
    if os.waitstatus_to_exitcode(status) > 2:
        sys.exit(f"{binary} could not run the checks")
    return time.perf_counter() - started, usage.ru_utime + usage.ru_stime, usage.ru_minflt


def drop_from_page_cache(path):
    """Written out first (a dirty page cannot be dropped), then dropped."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def main():
    runs = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    with tempfile.TemporaryDirectory() as scratch, tempfile.NamedTemporaryFile("w", suffix=".toml") as config:
        old, new = (shutil.copy(sys.argv[i], os.path.join(scratch, name)) for i, name in ((1, "old"), (2, "new")))
        for copy in (old, new):
            drop_from_page_cache(copy)
        for root, label in [(os.path.join(ROOT, "tests/fixtures/debian12-clean"), "fixture root"), ("/", "real root")]:
            times = {"old": [], "new": []}
            for i in range(runs):
                order = [("old", old), ("new", new)]
                for name, binary in order if i % 2 == 0 else reversed(order):
                    times[name].append(run(binary, root, config.name))
            for name in ("old", "new"):
                wall = sorted(t[0] for t in times[name])[runs // 2] * 1000
                cpu = sorted(t[1] for t in times[name])[runs // 2] * 1000
                faults = sorted(t[2] for t in times[name])[runs // 2]
                print(f"{label:12} {name}: wall median {wall:.2f} ms, CPU median {cpu:.2f} ms, {faults} minor faults")


main()
