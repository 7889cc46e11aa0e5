//! yum/dnf `exclude=` (also `excludepkgs=`): package patterns the package
//! manager hides from every transaction, set in `[main]` of `dnf.conf` /
//! `yum.conf` or in one repository's section. Issue #27 item 4.

use crate::host::ini::ini_sections;
use crate::host::Root;

/// Patterns one section excludes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exclude {
    pub file: String,
    /// `main`, or the repository's ID.
    pub section: String,
    pub patterns: Vec<String>,
}

/// What the yum/dnf configuration excludes.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Excludes {
    /// Whether there is a yum/dnf configuration at all.
    pub configured: bool,
    pub found: Vec<Exclude>,
    /// Files that could not be read, with why.
    pub unreadable: Vec<String>,
}

/// The main file dnf (or yum) reads: the first of these present, as
/// `repo_tls::rpm_main` chooses it (on RHEL 8 and later, yum.conf is a
/// link to dnf.conf).
const MAIN: &[&str] = &["/etc/dnf/dnf.conf", "/etc/yum.conf"];
const REPOS: &str = "/etc/yum.repos.d";

pub fn gather(root: &Root) -> Excludes {
    let mut out = Excludes::default();
    let read = |file: &str, out: &mut Excludes, only_main: bool| -> bool {
        match std::fs::read_to_string(root.path(file)) {
            Ok(text) => {
                out.configured = true;
                out.found.extend(excludes_in(&text, file, only_main));
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => false,
            Err(e) => {
                out.configured = true;
                out.unreadable.push(format!("{file} ({e})"));
                true
            }
        }
    };
    for file in MAIN {
        if read(file, &mut out, true) {
            break;
        }
    }
    let mut files: Vec<String> = std::fs::read_dir(root.path(REPOS))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| n.ends_with(".repo"))
                .map(|n| format!("{REPOS}/{n}"))
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    for file in files {
        read(&file, &mut out, false);
    }
    out
}

/// The `exclude=`/`excludepkgs=` of a file's sections: `[main]` only for
/// the main file; every enabled repository for a `.repo` file.
pub fn excludes_in(text: &str, file: &str, only_main: bool) -> Vec<Exclude> {
    ini_sections(text)
        .into_iter()
        .filter(|(section, keys)| {
            if only_main {
                return section == "main";
            }
            keys.get("enabled")
                .is_none_or(|v| !matches!(v.trim(), "0" | "false" | "no"))
        })
        .filter_map(|(section, keys)| {
            let patterns: Vec<String> = ["exclude", "excludepkgs"]
                .iter()
                .filter_map(|k| keys.get(*k))
                .flat_map(|v| v.split([' ', ',', '\t']))
                .filter(|p| !p.is_empty())
                .map(str::to_string)
                .collect();
            (!patterns.is_empty()).then(|| Exclude {
                file: file.to_string(),
                section,
                patterns,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn main_and_enabled_repositories_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        assert!(!gather(&root).configured, "no yum/dnf here");
        std::fs::create_dir_all(dir.path().join("etc/dnf")).unwrap();
        std::fs::create_dir_all(dir.path().join("etc/yum.repos.d")).unwrap();
        std::fs::write(
            dir.path().join("etc/dnf/dnf.conf"),
            "[main]\ngpgcheck=1\nexclude=kernel* php-*,\n  nginx\n[other]\nexclude=ignored\n",
        )
        .unwrap();
        // yum.conf is not read when dnf.conf is there (dnf reads one).
        std::fs::write(
            dir.path().join("etc/yum.conf"),
            "[main]\nexclude=also-ignored\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("etc/yum.repos.d/remi.repo"),
            "[remi]\nbaseurl=https://r.example/\nexcludepkgs=mysql*\n[remi-test]\nenabled=0\nexclude=all*\n",
        )
        .unwrap();
        let found = gather(&root);
        assert!(found.configured);
        assert_eq!(
            found.found,
            vec![
                Exclude {
                    file: "/etc/dnf/dnf.conf".into(),
                    section: "main".into(),
                    patterns: vec!["kernel*".into(), "php-*".into(), "nginx".into()],
                },
                Exclude {
                    file: "/etc/yum.repos.d/remi.repo".into(),
                    section: "remi".into(),
                    patterns: vec!["mysql*".into()],
                },
            ]
        );
    }
}
