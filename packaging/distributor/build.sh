#!/usr/bin/env bash
# Writes the Distributor package from the .deb and .rpm files that
# packaging/build.sh made (one or both architectures) into target/distributor/:
# one zip per package format and architecture (the package, install.sh,
# uninstall.sh) and manifest.json in the format AWS documents for Distributor
# ("Create a package", advanced: schemaVersion 2.0, packages per platform,
# version and architecture, files with their SHA-256).
#
#   packaging/build.sh [aarch64-unknown-linux-gnu] && packaging/distributor/build.sh
#
# The zips are reproducible (fixed dates and modes): the same packages give
# the same checksums.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec python3 - "$@" <<'PY'
import glob, hashlib, json, os, re, sys, zipfile

src, out = "target/packages", "target/distributor"
here = "packaging/distributor"
# Distributor's platform names for the distributions the packages serve.
PLATFORMS = {
    "deb": ["debian", "ubuntu"],
    "rpm": ["amazon", "redhat", "centos", "oracle", "suse", "opensuse", "opensuseleap"],
}
ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "arm64", "aarch64": "arm64"}
NAME = re.compile(r"ssm-preflight(?:_|-)(?P<version>[0-9][^_]*?)(?:_|\.)(?P<arch>amd64|arm64|x86_64|aarch64)\.(?P<format>deb|rpm)$")

found = []
for path in sorted(glob.glob(f"{src}/ssm-preflight*.deb") + glob.glob(f"{src}/ssm-preflight*.rpm")):
    m = NAME.search(os.path.basename(path))
    if m:
        found.append((path, m["version"], ARCH[m["arch"]], m["format"]))
if not found:
    sys.exit(f"distributor/build.sh: no ssm-preflight .deb or .rpm in {src}: run packaging/build.sh first")
versions = {v for _, v, _, _ in found}
if len(versions) != 1:
    sys.exit(f"distributor/build.sh: {src} holds packages of several versions ({', '.join(sorted(versions))}): remove the old ones")
version = versions.pop()

os.makedirs(out, exist_ok=True)
for old in glob.glob(f"{out}/*"):
    os.remove(old)

def add(z, path, name, mode):
    info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
    info.external_attr = (0o100000 | mode) << 16
    info.compress_type = zipfile.ZIP_DEFLATED
    with open(path, "rb") as f:
        z.writestr(info, f.read())

packages, files = {}, {}
for path, _, arch, fmt in found:
    zip_name = f"ssm-preflight-{fmt}-{arch}.zip"
    with zipfile.ZipFile(f"{out}/{zip_name}", "w") as z:
        add(z, path, os.path.basename(path), 0o644)
        add(z, f"{here}/install.sh", "install.sh", 0o755)
        add(z, f"{here}/uninstall.sh", "uninstall.sh", 0o755)
    with open(f"{out}/{zip_name}", "rb") as f:
        files[zip_name] = {"checksums": {"sha256": hashlib.sha256(f.read()).hexdigest()}}
    for platform in PLATFORMS[fmt]:
        packages.setdefault(platform, {}).setdefault("_any", {})[arch] = {"file": zip_name}

manifest = {
    "schemaVersion": "2.0",
    "publisher": "ssm-preflight",
    "description": "ssm-preflight: checks each node before its Patch Manager window, reports to SSM compliance, and gates the install",
    "version": version,
    "packages": packages,
    "files": files,
}
with open(f"{out}/manifest.json", "w") as f:
    json.dump(manifest, f, indent=2, sort_keys=True)
    f.write("\n")
for name in sorted(os.listdir(out)):
    print(f"{os.path.getsize(f'{out}/{name}'):>10} {out}/{name}")
PY
