//! `/etc/os-release` (falling back to `/usr/lib/os-release`, as the format's
//! specification says). The format is a handful of shell-style assignments;
//! parsing it here keeps the root-directory parameter that a crate would not.

use super::{read_optional, Root};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
    /// `PLATFORM_ID` (`platform:el9`): dnf's module platform.
    pub platform_id: Option<String>,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            fields.insert(key.trim().to_string(), unquote(value.trim()));
        }
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let id = get("ID").to_ascii_lowercase();
        let version_id = get("VERSION_ID");
        let pretty_name = match get("PRETTY_NAME") {
            p if !p.is_empty() => p,
            _ => format!("{} {}", get("NAME"), version_id).trim().to_string(),
        };
        OsRelease {
            id,
            id_like: get("ID_LIKE")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            version_id,
            pretty_name,
            platform_id: fields.get("PLATFORM_ID").cloned().filter(|p| !p.is_empty()),
        }
    }

    /// The first os-release found under `root`, with the path it came from.
    pub fn read(root: &Root) -> std::io::Result<Option<(OsRelease, String)>> {
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            // A FIFO is refused at once; a hung mount is bounded by the caller
            // (a check's timeout, or `host::within`).
            if let Some(text) = read_optional(&root.path(path))? {
                return Ok(Some((OsRelease::parse(&text), path.to_string())));
            }
        }
        Ok(None)
    }
}

impl OsRelease {
    /// Patch Manager's `OperatingSystem` value for this distribution (the
    /// one a patch group registers a baseline for), or `None` for one Patch
    /// Manager does not patch.
    pub fn patch_manager_os(&self) -> Option<&'static str> {
        let major = self.version_id.split('.').next().unwrap_or_default();
        Some(match self.id.as_str() {
            "amzn" => match major {
                "2" => "AMAZON_LINUX_2",
                "2022" => "AMAZON_LINUX_2022",
                "2023" => "AMAZON_LINUX_2023",
                // Amazon Linux 1 (2018.03 and earlier) carries its date.
                _ => "AMAZON_LINUX",
            },
            "rhel" => "REDHAT_ENTERPRISE_LINUX",
            "ubuntu" => "UBUNTU",
            "debian" => "DEBIAN",
            "raspbian" => "RASPBIAN",
            "sles" | "sles_sap" | "sled" => "SUSE",
            "centos" => "CENTOS",
            "ol" => "ORACLE_LINUX",
            "almalinux" => "ALMA_LINUX",
            "rocky" => "ROCKY_LINUX",
            _ => return None,
        })
    }
}

fn unquote(value: &str) -> String {
    let inner = match value.as_bytes() {
        [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => &value[1..value.len() - 1],
        _ => value,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_values() {
        let os = OsRelease::parse(
            "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n# comment\ngarbage line\n",
        );
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id, "22.04");
        assert_eq!(os.id_like, vec!["debian"]);
        assert_eq!(os.pretty_name, "Ubuntu 22.04.4 LTS");
    }

    #[test]
    fn escapes_and_missing_pretty_name() {
        let os = OsRelease::parse("NAME='Foo \\\"Linux\\\"'\nID=Foo\nVERSION_ID=3\n");
        assert_eq!(os.id, "foo");
        assert_eq!(os.pretty_name, "Foo \"Linux\" 3");
    }

    #[test]
    fn each_distribution_in_the_guide_maps_to_its_operating_system_value() {
        // The guide's list: Amazon Linux 2 and 2023, RHEL 7-10, Ubuntu LTS,
        // Debian 9-12, SLES 12 and 15, CentOS 7, Oracle Linux 7-9,
        // AlmaLinux and Rocky Linux 8-9; and the older Amazon Linux.
        for (id, version, want) in [
            ("amzn", "2", Some("AMAZON_LINUX_2")),
            ("amzn", "2023", Some("AMAZON_LINUX_2023")),
            ("amzn", "2018.03", Some("AMAZON_LINUX")),
            ("rhel", "7.9", Some("REDHAT_ENTERPRISE_LINUX")),
            ("rhel", "9.4", Some("REDHAT_ENTERPRISE_LINUX")),
            ("ubuntu", "22.04", Some("UBUNTU")),
            ("debian", "12", Some("DEBIAN")),
            ("debian", "9", Some("DEBIAN")),
            ("sles", "15.5", Some("SUSE")),
            ("sles", "12.5", Some("SUSE")),
            ("centos", "7", Some("CENTOS")),
            ("ol", "8.9", Some("ORACLE_LINUX")),
            ("almalinux", "9.3", Some("ALMA_LINUX")),
            ("rocky", "8.9", Some("ROCKY_LINUX")),
            ("raspbian", "11", Some("RASPBIAN")),
            ("arch", "", None),
            ("fedora", "40", None),
        ] {
            let os = OsRelease {
                id: id.into(),
                version_id: version.into(),
                ..Default::default()
            };
            assert_eq!(os.patch_manager_os(), want, "{id} {version}");
        }
    }
}
