//! dnf's plan of the pending upgrade (RHEL 8–10, Amazon Linux 2023, Oracle
//! Linux, Rocky, AlmaLinux), asked so that no lock and no write lands on
//! the host's package-manager state.
//!
//! Even `dnf -C --assumeno` locks and writes: a pid-file lock in its
//! cachedir, the `.solv` caches beside it, its logs and history, and —
//! reading the rpmdb through sqlite in WAL mode — a shared lock on
//! `rpmdb.sqlite` and writes to its `-shm` and `-wal` files. So dnf is
//! pointed at a scratch directory for everything it would write:
//! - the rpmdb is copied there with plain reads (`~/.rpmmacros` in a
//!   scratch HOME sets `%_dbpath` to the copy; librpm reads it);
//! - `cachedir` is a scratch directory holding a symlink to each cached
//!   repository (read, never written with `-C`) and a copy of the `.solv`
//!   caches (so the metadata is not parsed again);
//! - `persistdir` and `logdir` are scratch directories;
//! - `-C`: the metadata already cached, nothing fetched; `--assumeno`:
//!   the transaction is never run;
//! - `--noplugins`: plugins may write (subscription-manager rewrites
//!   `redhat.repo`) or reach the network; versionlock's list is read here
//!   instead (`versionlocked`), and its packages are the only ones
//!   excluded: `excludepkgs` is emptied, then set to them, in `[main]` and
//!   every repository (`--disableexcludes=all` would drop them too), as
//!   Patch Manager's payload does not honour `exclude=` (`pkg.exclude`
//!   says so). A second run, `list --upgrades`, says which of them have
//!   an upgrade the patch run leaves;
//! - `best=False` and `skip_if_unavailable=True`: dnf prints the whole plan
//!   beside each problem, and a repository with no cached metadata is named
//!   rather than ending the plan.
//!
//! For a root other than `/`, its config, repositories, vars and platform
//! are passed explicitly, so fixture trees are planned with their own.
//! `/usr/bin/dnf` being dnf5 (Fedora 41+, which Patch Manager does not
//! patch) is not asked: its options and output differ.

use super::{copy_rpmdb, no_plan, output, rpmdb_dir, Manager, Simulation};
use crate::host::command::{self, CommandError, Finished};
use crate::host::ini::ini_sections;
use crate::host::repo_tls::rpm_main;
use crate::host::Root;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const DNF: &str = "/usr/bin/dnf";

/// Whether this host plans with dnf 4: its binary (not dnf5), an rpmdb,
/// and dnf's or yum's configuration.
pub fn present(root: &Root) -> bool {
    let dnf5 = std::fs::canonicalize(DNF)
        .ok()
        .and_then(|p| {
            p.file_name()
                .map(|n| n.to_string_lossy().starts_with("dnf5"))
        })
        .unwrap_or(false);
    let configured = ["/etc/dnf", "/etc/yum.repos.d"]
        .iter()
        .any(|d| root.path(d).is_dir());
    Path::new(DNF).exists() && !dnf5 && configured && rpmdb_dir(root).is_some()
}

/// Where dnf keeps its metadata and packages, as the host names it:
/// `cachedir=` of `[main]`, else `/var/cache/dnf`.
pub fn cache_dir(root: &Root) -> String {
    rpm_main(root)
        .0
        .get("cachedir")
        .cloned()
        .unwrap_or_else(|| "/var/cache/dnf".into())
}

fn cachedir(root: &Root) -> PathBuf {
    root.path(&cache_dir(root))
}

/// When the metadata was last refreshed: the newest `repomd.xml` among
/// the cached repositories (None: nothing cached).
pub fn metadata_refreshed(root: &Root) -> Option<SystemTime> {
    std::fs::read_dir(cachedir(root))
        .ok()?
        .flatten()
        .filter_map(|e| {
            std::fs::metadata(e.path().join("repodata/repomd.xml"))
                .ok()?
                .modified()
                .ok()
        })
        .max()
}

/// The packages versionlock holds, by name: its list when the plugin is
/// installed and enabled (`/etc/dnf/plugins/versionlock.conf`). Entries
/// are `name-[epoch:]version-release.arch` patterns, `!` marking an
/// excluded version; either way the package is held where it is.
pub fn versionlocked(root: &Root) -> Vec<String> {
    let Ok(conf) = std::fs::read_to_string(root.path("/etc/dnf/plugins/versionlock.conf")) else {
        return vec![];
    };
    let main = ini_sections(&conf)
        .into_iter()
        .find(|(name, _)| name == "main")
        .map(|(_, keys)| keys)
        .unwrap_or_default();
    if main
        .get("enabled")
        .is_some_and(|v| matches!(v.as_str(), "0" | "false" | "False" | "no"))
    {
        return vec![];
    }
    let list = main
        .get("locklist")
        .cloned()
        .unwrap_or_else(|| "/etc/dnf/plugins/versionlock.list".into());
    let Ok(text) = std::fs::read_to_string(root.path(&list)) else {
        return vec![];
    };
    let mut names: Vec<String> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| locked_name(l.trim_start_matches('!')).to_string())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// `openssl-1:3.0.7-24.el9.*` → `openssl`; `kernel-core-5.14.0-362.el9.x86_64`
/// → `kernel-core`: the name is what comes before version and release.
fn locked_name(pattern: &str) -> &str {
    let parts: Vec<&str> = pattern.rsplitn(3, '-').collect();
    if parts.len() == 3 {
        parts[2]
    } else {
        pattern
    }
}

/// dnf's plan of `upgrade` for `root` within `budget`, the packages in
/// `held` (versionlock's) excluded from it; those of them with an upgrade
/// are the kept back.
pub fn plan(root: &Root, held: &[String], budget: Duration) -> Result<Simulation, CommandError> {
    let started = std::time::Instant::now();
    let scratch = Scratch::new(root).map_err(|source| CommandError::Spawn {
        program: "dnf (its scratch directory for the rpmdb copy and caches)".into(),
        source,
    })?;
    let mut args = scratch.args(root, held);
    args.push("upgrade".into());
    let finished = scratch.run(&args, budget)?;
    let mut sim = parse_dnf(&output(&finished));
    if !sim.planned() {
        return Err(no_plan("dnf upgrade --assumeno", finished));
    }
    if !held.is_empty() {
        let mut args = scratch.args(root, &[]);
        args.extend(["list", "--upgrades"].map(String::from));
        args.extend(held.iter().cloned());
        let left = budget.saturating_sub(started.elapsed());
        sim.kept_back = parse_upgrades(&output(&scratch.run(&args, left)?));
    }
    Ok(sim)
}

/// `dnf list --upgrades`: "Available Upgrades", then `name.arch version
/// repository` lines; the names.
fn parse_upgrades(text: &str) -> Vec<String> {
    text.lines()
        .skip_while(|l| !l.starts_with("Available Upgrades"))
        .skip(1)
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|nevra| nevra.rsplit_once('.').map(|(name, _arch)| name.to_string()))
        .collect()
}

/// The scratch directory every dnf write lands in, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(root: &Root) -> std::io::Result<Self> {
        let dir = super::scratch("ssm-preflight-dnf-")?;
        let p = dir.path();
        for d in ["home", "rpmdb", "cache", "persist", "log"] {
            std::fs::create_dir(p.join(d))?;
        }
        if let Some(rpmdb) = rpmdb_dir(root) {
            copy_rpmdb(&root.path(rpmdb), &p.join("rpmdb"))?;
        }
        std::fs::write(
            p.join("home/.rpmmacros"),
            format!("%_dbpath {}\n", p.join("rpmdb").display()),
        )?;
        if let Ok(entries) = std::fs::read_dir(cachedir(root)) {
            for e in entries.flatten() {
                let name = e.file_name();
                let n = name.to_string_lossy();
                let kind = e.file_type()?;
                if kind.is_dir() {
                    std::os::unix::fs::symlink(e.path(), p.join("cache").join(&name))?;
                } else if kind.is_file() && (n.ends_with(".solv") || n.ends_with(".solvx")) {
                    std::fs::copy(e.path(), p.join("cache").join(&name))?;
                }
            }
        }
        Ok(Scratch(dir))
    }

    /// dnf run in the C locale, its HOME the scratch one (for
    /// `.rpmmacros`); any exit status may carry a plan (dnf exits 1 for
    /// "Operation aborted." and for an error, and says which).
    fn run(&self, args: &[String], budget: Duration) -> Result<Finished, CommandError> {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let home = self.0.path().join("home").display().to_string();
        command::run_with_env(
            Path::new(DNF),
            &args,
            &[("LC_ALL", "C.UTF-8"), ("LANG", "C.UTF-8"), ("HOME", &home)],
            budget,
        )
    }

    /// The options of every run (the module's comment says why each),
    /// with `excluded` the only packages excluded.
    fn args(&self, root: &Root, excluded: &[String]) -> Vec<String> {
        let p = self.0.path();
        let mut args: Vec<String> = [
            "-C",
            "--assumeno",
            "--noplugins",
            "--color=never",
            "--setopt=best=False",
            "--setopt=skip_if_unavailable=True",
            "--setopt=excludepkgs=",
            "--setopt=*.excludepkgs=",
        ]
        .iter()
        .map(|a| a.to_string())
        .collect();
        if !excluded.is_empty() {
            args.push(format!("--setopt=excludepkgs={}", excluded.join(",")));
        }
        for (option, dir) in [
            ("cachedir", "cache"),
            ("persistdir", "persist"),
            ("logdir", "log"),
        ] {
            args.push(format!("--setopt={option}={}", p.join(dir).display()));
        }
        if root.dir() != Path::new("/") {
            let under = |paths: &[&str]| {
                paths
                    .iter()
                    .map(|d| root.path(d).display().to_string())
                    .collect::<Vec<_>>()
                    .join(",")
            };
            let (_, conf) = rpm_main(root);
            if !conf.is_empty() {
                args.push(format!("--config={}", root.path(&conf).display()));
            }
            args.push(format!(
                "--setopt=reposdir={}",
                under(&["/etc/yum.repos.d", "/etc/distro.repos.d"])
            ));
            args.push(format!(
                "--setopt=varsdir={}",
                under(&["/etc/dnf/vars", "/etc/yum/vars"])
            ));
            if let Some(platform) = crate::host::os_release::OsRelease::read(root)
                .ok()
                .flatten()
                .and_then(|(o, _)| o.platform_id)
            {
                args.push(format!("--setopt=module_platform_id={platform}"));
            }
        }
        args
    }
}

/// Reads dnf 4's plan (in the C locale): the transaction table's sections,
/// its problems, and the sizes of its summary.
pub fn parse_dnf(text: &str) -> Simulation {
    let mut sim = Simulation::new(Manager::Dnf);
    let mut section: Option<&str> = None;
    let mut total: Option<u64> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(problem) = trimmed
            .strip_prefix("Problem")
            .and_then(|rest| rest.split_once(": ").map(|(_, p)| p))
        {
            // " Problem: …" / " Problem 2: …", then "  - …" lines.
            sim.unresolved.push(problem.to_string());
            section = Some("problem");
            continue;
        }
        if section == Some("problem") {
            if let Some(reason) = trimmed.strip_prefix("- ") {
                sim.unresolved.push(reason.to_string());
                continue;
            }
        }
        if !line.starts_with(' ') {
            section = None;
            if let Some(rest) = line.strip_prefix("Total download size: ") {
                sim.download = parse_size(rest);
            } else if let Some(rest) = line.strip_prefix("Total size: ") {
                total = parse_size(rest);
            } else if let Some(repos) = line.strip_prefix("Ignoring repositories: ") {
                sim.ignored_repos
                    .extend(repos.split(", ").map(|r| r.trim().to_string()));
            } else if let Some(error) = line.strip_prefix("Error: ") {
                // A repository without cached metadata is a warning that
                // `skip_if_unavailable` turns into "Ignoring repositories".
                if !error.trim().is_empty() && !error.starts_with("Cache-only enabled") {
                    sim.unresolved.push(error.trim().to_string());
                }
            } else if line.ends_with(':') {
                section = Some(line);
            }
            continue;
        }
        let Some(header) = section else { continue };
        let list = if header.starts_with("Upgrading") {
            &mut sim.upgraded
        } else if header.starts_with("Installing") {
            &mut sim.installed
        } else if header.starts_with("Removing") {
            &mut sim.removed
        } else {
            // Skipping (its problems are named above), Downgrading, …
            continue;
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        // A package line starts with one space; a long name is wrapped
        // onto a line of its own, its columns onto the next (indented
        // deeper); "replacing" lines name what an upgrade obsoletes.
        let wrapped_columns = line.starts_with("  ");
        if !wrapped_columns && !fields.is_empty() && fields[0] != "replacing" {
            list.push(fields[0].to_string());
        }
    }
    // "Total size" alone: every package is already local or cached.
    if sim.download.is_none() && total.is_some() {
        sim.download = Some(0);
    }
    if text.contains("\nNothing to do.") || text.starts_with("Nothing to do.") {
        sim.download.get_or_insert(0);
    }
    sim
}

/// dnf's sizes (`format_number`): "7.0 k", "201 k", "1.2 M", "512" — powers
/// of 1024.
fn parse_size(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let unit = match parts.next() {
        None => 1.0,
        Some("k") => 1024.0,
        Some("M") => 1024f64.powi(2),
        Some("G") => 1024f64.powi(3),
        Some("T") => 1024f64.powi(4),
        Some(_) => return None,
    };
    Some((number * unit) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// dnf 4.14's output, as the fixture test saw it, with a wrapped name
    /// and an obsoleted package added the way dnf prints them.
    const PLAN: &str = "Last metadata expiration check: 0:00:07 ago on Sun Dec  6 23:52:26 2026.
Dependencies resolved.

 Problem: cannot install the best update candidate for package app-1.0-1.noarch
  - nothing provides libgone >= 2 needed by app-2.0-1.noarch
================================================================================
 Package           Architecture      Version             Repository        Size
================================================================================
Upgrading:
 locked            noarch            2.0-1               local            7.0 k
 python3-a-very-long-package-name-that-wraps
                   noarch            1.1-1               local            201 k
     replacing  python3-old.noarch 1.0-1
 kernel-core       x86_64            5.14.0-427.el9      baseos            20 M
Installing:
 kernel            x86_64            5.14.0-427.el9      baseos           1.2 M
Skipping packages with broken dependencies:
 app               noarch            2.0-1               local            7.0 k

Transaction Summary
================================================================================
Install  1 Package
Upgrade  3 Packages
Skip     1 Package

Total size: 21 M
Total download size: 20 M
Installed size: 5.0 M
Operation aborted.
";

    #[test]
    fn dnf_s_plan_is_read_to_its_sections_problems_and_sizes() {
        let sim = parse_dnf(PLAN);
        assert_eq!(
            sim.upgraded,
            [
                "locked",
                "python3-a-very-long-package-name-that-wraps",
                "kernel-core"
            ]
        );
        assert_eq!(sim.installed, ["kernel"]);
        assert_eq!(
            sim.unresolved,
            [
                "cannot install the best update candidate for package app-1.0-1.noarch",
                "nothing provides libgone >= 2 needed by app-2.0-1.noarch"
            ]
        );
        assert_eq!(sim.download, Some(20 * 1024 * 1024));
        // "Installed size" counts new packages only, not what upgrades add.
        assert_eq!(sim.installed_change, None);
        assert_eq!(sim.kernels(), ["kernel-core", "kernel"]);
    }

    #[test]
    fn cached_packages_download_nothing_and_an_empty_plan_is_read() {
        let sim = parse_dnf("Upgrading:\n tool  noarch  1.1-1  local  201 k\n\nTotal size: 201 k\nOperation aborted.\n");
        assert_eq!(sim.download, Some(0));
        assert_eq!(sim.upgraded, ["tool"]);
        let nothing = parse_dnf("Dependencies resolved.\nNothing to do.\nComplete!\n");
        assert_eq!(nothing.download, Some(0));
        assert!(nothing.upgraded.is_empty() && nothing.unresolved.is_empty());
    }

    #[test]
    fn an_output_without_a_plan_is_not_an_empty_plan() {
        let crashed = parse_dnf(
            "Traceback (most recent call last):\n  File \"/usr/bin/dnf\", line 61\nKeyError: 'x'\n",
        );
        assert!(!crashed.planned());
        assert!(parse_dnf("Dependencies resolved.\nNothing to do.\nComplete!\n").planned());
    }

    #[test]
    fn a_repository_without_cached_metadata_is_named() {
        let sim = parse_dnf("Error: Cache-only enabled but no cache for 'extras'\nIgnoring repositories: extras, epel\nNothing to do.\n");
        assert_eq!(sim.ignored_repos, ["extras", "epel"]);
    }

    #[test]
    fn the_held_packages_with_an_upgrade_are_read() {
        let text = "Last metadata expiration check: 0:06:17 ago on Sun Dec  6 23:52:26 2026.
Available Upgrades
pinned.noarch                            2.0-1                             local
python3.11-libs.x86_64                   3.11.9-1.el9                      appstream
";
        assert_eq!(parse_upgrades(text), ["pinned", "python3.11-libs"]);
        assert!(parse_upgrades("Error: No matching Packages to list\n").is_empty());
    }

    #[test]
    fn versionlock_patterns_give_package_names() {
        assert_eq!(locked_name("openssl-1:3.0.7-24.el9.*"), "openssl");
        assert_eq!(
            locked_name("kernel-core-5.14.0-362.el9.x86_64"),
            "kernel-core"
        );
        assert_eq!(locked_name("bash"), "bash");
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1.5 G"), Some(1_610_612_736));
    }
}
