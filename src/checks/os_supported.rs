//! `os.supported`: the distribution and version against the list Patch
//! Manager supports (shared/reference/patch-manager-guide.txt).

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::os_release::OsRelease;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "os.supported",
    group: Group::Host,
    title: "Operating system supported by Patch Manager",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "`/etc/os-release` (or `/usr/lib/os-release`) against Patch Manager's supported list: Amazon Linux 2 and 2023; RHEL 7–10; Ubuntu 16.04–24.04 LTS; Debian 9–12; SLES 12 and 15; CentOS 7; Oracle Linux 7–9; AlmaLinux and Rocky Linux 8–9",
        warns: "—",
        fails: "the distribution or its version is not supported (the message names the supported versions)",
        fix: "upgrade, or take the host out of its patch group",
        cannot_see: "no readable `os-release`",
        reports: "`error`",
    },
};

/// Which `VERSION_ID`s of a distribution are supported.
enum Versions {
    /// The version string exactly (Amazon Linux `2`, Ubuntu `22.04`).
    Exact(&'static [&'static str]),
    /// The major version (before the first dot) in this range.
    Major(u32, u32),
}

struct Supported {
    id: &'static str,
    /// How the guide lists it, for the message.
    listed: &'static str,
    versions: Versions,
}

const SUPPORTED: &[Supported] = &[
    Supported {
        id: "amzn",
        listed: "Amazon Linux 2 and 2023",
        versions: Versions::Exact(&["2", "2023"]),
    },
    Supported {
        id: "rhel",
        listed: "Red Hat Enterprise Linux 7, 8, 9 and 10",
        versions: Versions::Major(7, 10),
    },
    Supported {
        id: "ubuntu",
        listed: "Ubuntu Server 16.04, 18.04, 20.04, 22.04 and 24.04 LTS",
        versions: Versions::Exact(&["16.04", "18.04", "20.04", "22.04", "24.04"]),
    },
    Supported {
        id: "debian",
        listed: "Debian Server 9, 10, 11 and 12",
        versions: Versions::Major(9, 12),
    },
    Supported {
        id: "sles",
        listed: "SUSE Linux Enterprise Server 12 and 15",
        versions: Versions::Exact(&[]),
    },
    Supported {
        id: "centos",
        listed: "CentOS 7",
        versions: Versions::Major(7, 7),
    },
    Supported {
        id: "ol",
        listed: "Oracle Linux 7, 8 and 9",
        versions: Versions::Major(7, 9),
    },
    Supported {
        id: "almalinux",
        listed: "AlmaLinux 8 and 9",
        versions: Versions::Major(8, 9),
    },
    Supported {
        id: "rocky",
        listed: "Rocky Linux 8 and 9",
        versions: Versions::Major(8, 9),
    },
];

fn major(version: &str) -> Option<u32> {
    version.split('.').next()?.parse().ok()
}

fn version_supported(id: &str, versions: &Versions, version: &str) -> bool {
    match versions {
        // SLES: 12.x and 15.x, any service pack.
        Versions::Exact(_) if id == "sles" => matches!(major(version), Some(12 | 15)),
        Versions::Exact(list) => list.contains(&version),
        Versions::Major(lo, hi) => major(version).is_some_and(|m| (*lo..=*hi).contains(&m)),
    }
}

fn all_listed() -> String {
    SUPPORTED
        .iter()
        .map(|s| s.listed)
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    crate::checks::blocking(ctx, &ENTRY, ENTRY.id, move || {
        match OsRelease::read(&root) {
        Ok(Some((os, path))) => judge(&os).detail("source", path),
        Ok(None) => Outcome::error(
            "cannot tell the distribution: neither /etc/os-release nor /usr/lib/os-release exists",
            "Restore /etc/os-release from your distribution's base package (`base-files` on Debian and Ubuntu, `system-release` or `redhat-release` on rpm systems).",
        ),
        Err(e) => Outcome::error(
            format!("cannot read /etc/os-release: {e}"),
            "Check its permissions: `ls -l /etc/os-release` should show it readable by everyone.",
        ),
    }
    })
}

pub fn judge(os: &OsRelease) -> Outcome {
    let outcome = if os.id.is_empty() {
        Outcome::error(
            "os-release has no ID= line, so the distribution is unknown",
            "Restore /etc/os-release from your distribution's base package.",
        )
    } else {
        match SUPPORTED.iter().find(|s| s.id == os.id) {
            Some(s) if version_supported(s.id, &s.versions, &os.version_id) => {
                Outcome::pass(format!("{} is supported by Patch Manager", os.pretty_name))
            }
            Some(s) => Outcome::fail(
                format!(
                    "{} (version {}) is not a version Patch Manager supports; it supports {}",
                    os.pretty_name,
                    if os.version_id.is_empty() { "unknown" } else { &os.version_id },
                    s.listed
                ),
                format!(
                    "Upgrade this host to a supported release of {}, or take it out of its patch group and patch it another way, so it does not count against the window's error threshold.",
                    s.listed
                ),
            ),
            None => Outcome::fail(
                format!("{} is not a distribution Patch Manager supports", os.pretty_name),
                format!(
                    "Patch Manager supports {}. Take this host out of its patch group and patch it another way, so it does not count against the window's error threshold.",
                    all_listed()
                ),
            ),
        }
    };
    outcome
        .detail("id", &os.id)
        .detail("version_id", &os.version_id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn os(id: &str, version: &str) -> OsRelease {
        OsRelease {
            id: id.into(),
            id_like: vec![],
            version_id: version.into(),
            pretty_name: format!("{id} {version}"),
            platform_id: None,
        }
    }

    #[test]
    fn every_supported_release_in_the_guide_passes() {
        for (id, v) in [
            ("amzn", "2"),
            ("amzn", "2023"),
            ("rhel", "7.9"),
            ("rhel", "8.10"),
            ("rhel", "9.4"),
            ("rhel", "10.0"),
            ("ubuntu", "16.04"),
            ("ubuntu", "18.04"),
            ("ubuntu", "20.04"),
            ("ubuntu", "22.04"),
            ("ubuntu", "24.04"),
            ("debian", "9"),
            ("debian", "10"),
            ("debian", "11"),
            ("debian", "12"),
            ("sles", "12.5"),
            ("sles", "15.6"),
            ("centos", "7"),
            ("ol", "7.9"),
            ("ol", "8.9"),
            ("ol", "9.3"),
            ("almalinux", "8.9"),
            ("almalinux", "9.4"),
            ("rocky", "8.9"),
            ("rocky", "9.4"),
        ] {
            assert_eq!(judge(&os(id, v)).status, Status::Pass, "{id} {v}");
        }
    }

    #[test]
    fn unsupported_versions_name_the_supported_ones() {
        let o = judge(&os("ubuntu", "23.10"));
        o.assert_says(Status::Fail, "16.04, 18.04, 20.04, 22.04 and 24.04 LTS");
        for (id, v) in [
            ("amzn", "2018.03"),
            ("debian", "13"),
            ("centos", "9"),
            ("rhel", "6.10"),
            ("sles", "11.4"),
            ("rocky", "10"),
        ] {
            assert_eq!(judge(&os(id, v)).status, Status::Fail, "{id} {v}");
        }
    }

    #[test]
    fn unsupported_distributions_fail() {
        for id in ["fedora", "arch", "alpine", "opensuse-leap", "gentoo"] {
            let o = judge(&os(id, "1"));
            assert_eq!(o.status, Status::Fail, "{id}");
            assert!(o.remedy.unwrap().contains("Amazon Linux 2 and 2023"));
        }
        assert_eq!(judge(&os("", "")).status, Status::Error);
    }
}
