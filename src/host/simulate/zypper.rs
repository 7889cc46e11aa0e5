//! zypper's plan of the pending upgrade (SLES, openSUSE), asked so that no
//! lock and no write lands on the host's package-manager state.
//!
//! `zypper --dry-run` locks `/run/zypp.pid`, and libzypp opens the rpmdb
//! read-write under its root whatever `%_dbpath` says (taking sqlite's
//! locks on it). So zypper plans against a scratch root:
//! - `--root` is a scratch directory holding a copy of the rpmdb (at the
//!   path the host keeps it) and of `/etc/zypp/locks` (zypper's package
//!   locks, the holds);
//! - `--reposd-dir` and `--raw-cache-dir` are the host's own, only read
//!   with `--no-refresh`; `--solv-cache-dir` and `--pkg-cache-dir` are
//!   scratch directories, so nothing counts as already downloaded;
//! - `ZYPP_LOCKFILE_ROOT`, `ZYPP_LOGFILE` and `ZYPPTMPDIR` point into the
//!   scratch directory too; `ZYPP_CONF` at the host's `zypp.conf`.
//!
//! `update --dry-run` prints what it would upgrade, install and remove,
//! the updates it will not install (locked, or whose dependencies fail),
//! the download size and the installed-size change. For those it will not
//! install that are not locked, `install --dry-run` names the problem, as
//! the patch run, which asks for each patch, would meet it.

use super::{copy_rpmdb, no_plan, output, rpmdb_dir, Manager, Simulation};
use crate::host::command::{self, CommandError, Finished};
use crate::host::Root;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

const ZYPPER: &str = "/usr/bin/zypper";
const REPOS: &str = "/etc/zypp/repos.d";
const RAW_CACHE: &str = "/var/cache/zypp/raw";
const LOCKS: &str = "/etc/zypp/locks";

/// Whether this host plans with zypper: its binary, an rpmdb and zypp's
/// configuration.
pub fn present(root: &Root) -> bool {
    Path::new(ZYPPER).exists() && rpmdb_dir(root).is_some() && root.path("/etc/zypp").is_dir()
}

/// When the metadata was last refreshed: the newest `repomd.xml` (or
/// SUSE's `content`) among the cached repositories.
pub fn metadata_refreshed(root: &Root) -> Option<SystemTime> {
    std::fs::read_dir(root.path(RAW_CACHE))
        .ok()?
        .flatten()
        .filter_map(|e| {
            ["repodata/repomd.xml", "content"]
                .iter()
                .find_map(|f| std::fs::metadata(e.path().join(f)).ok()?.modified().ok())
        })
        .max()
}

/// The packages zypper's locks hold, by name (`solvable_name:` of each
/// lock whose type is a package, the default).
pub fn locked(root: &Root) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(root.path(LOCKS)) else {
        return vec![];
    };
    let mut names: Vec<String> = text
        .split("\n\n")
        .filter(|lock| {
            lock.lines()
                .find_map(|l| l.strip_prefix("type:"))
                .is_none_or(|t| t.trim() == "package")
        })
        .filter_map(|lock| lock.lines().find_map(|l| l.strip_prefix("solvable_name:")))
        .map(|n| n.trim().to_string())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// zypper's plan of `update` for `root` within `budget`; the updates it
/// will not install that `held` does not explain are asked again, one
/// `install --dry-run`, for the problem.
pub fn plan(root: &Root, held: &[String], budget: Duration) -> Result<Simulation, CommandError> {
    let started = std::time::Instant::now();
    let scratch = Scratch::new(root).map_err(|source| CommandError::Spawn {
        program: "zypper (its scratch root for the rpmdb copy and caches)".into(),
        source,
    })?;
    let finished = scratch.run(root, &["update", "--dry-run"], budget)?;
    let mut sim = parse_zypper(&output(&finished));
    if !sim.planned() {
        return Err(no_plan("zypper update --dry-run", finished));
    }
    let broken: Vec<&str> = sim
        .kept_back
        .iter()
        .filter(|p| !held.contains(p))
        .map(String::as_str)
        .collect();
    if sim.unresolved.is_empty() && !broken.is_empty() {
        let mut args = vec!["install", "--dry-run"];
        args.extend(broken);
        let left = budget.saturating_sub(started.elapsed());
        sim.unresolved = parse_zypper(&output(&scratch.run(root, &args, left)?)).unresolved;
    }
    Ok(sim)
}

/// The scratch root every zypper write lands in, removed when dropped.
struct Scratch(tempfile::TempDir);

impl Scratch {
    fn new(root: &Root) -> std::io::Result<Self> {
        let dir = super::scratch("ssm-preflight-zypper-")?;
        let p = dir.path();
        for d in ["root/etc/zypp", "home", "solv", "pkg", "tmp", "lock"] {
            std::fs::create_dir_all(p.join(d))?;
        }
        if let Some(rpmdb) = rpmdb_dir(root) {
            copy_rpmdb(&root.path(rpmdb), &p.join("root").join(&rpmdb[1..]))?;
        }
        if root.path(LOCKS).is_file() {
            std::fs::copy(root.path(LOCKS), p.join("root").join(&LOCKS[1..]))?;
        }
        Ok(Scratch(dir))
    }

    fn dir(&self, name: &str) -> PathBuf {
        self.0.path().join(name)
    }

    /// zypper run in the C locale; any exit status may carry a plan
    /// (zypper exits 4 when it cannot resolve, and says why).
    fn run(
        &self,
        root: &Root,
        command: &[&str],
        budget: Duration,
    ) -> Result<Finished, CommandError> {
        let path = |p: PathBuf| p.display().to_string();
        let mut args: Vec<String> = ["--non-interactive", "--no-refresh", "--no-color"]
            .map(String::from)
            .to_vec();
        for (option, dir) in [
            ("--root", path(self.dir("root"))),
            ("--reposd-dir", path(root.path(REPOS))),
            ("--raw-cache-dir", path(root.path(RAW_CACHE))),
            ("--solv-cache-dir", path(self.dir("solv"))),
            ("--pkg-cache-dir", path(self.dir("pkg"))),
        ] {
            args.push(option.into());
            args.push(dir);
        }
        args.extend(command.iter().map(|c| c.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let conf = path(root.path("/etc/zypp/zypp.conf"));
        let (home, tmp, lock, log) = (
            path(self.dir("home")),
            path(self.dir("tmp")),
            path(self.dir("lock")),
            path(self.dir("zypper.log")),
        );
        command::run_with_env(
            Path::new(ZYPPER),
            &args,
            &[
                ("LC_ALL", "C.UTF-8"),
                ("LANG", "C.UTF-8"),
                ("HOME", &home),
                ("TMPDIR", &tmp),
                ("ZYPPTMPDIR", &tmp),
                ("ZYPP_LOCKFILE_ROOT", &lock),
                ("ZYPP_LOGFILE", &log),
                ("ZYPP_CONF", &conf),
            ],
            budget,
        )
    }
}

/// Reads zypper's plan (in the C locale).
pub fn parse_zypper(text: &str) -> Simulation {
    let mut sim = Simulation::new(Manager::Zypper);
    let mut list: Option<&mut Vec<String>> = None;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("  ") {
            if let Some(l) = list.as_deref_mut() {
                l.extend(rest.split_whitespace().map(str::to_string));
                continue;
            }
        }
        list = None;
        let header = |what: &str| line.starts_with("The following") && line.contains(what);
        if header("going to be upgraded:") {
            list = Some(&mut sim.upgraded);
        } else if header("going to be installed:") {
            list = Some(&mut sim.installed);
        } else if header("going to be REMOVED:") {
            list = Some(&mut sim.removed);
        } else if header("will NOT be installed:") {
            list = Some(&mut sim.kept_back);
        } else if let Some(problem) = line.strip_prefix("Problem: ") {
            // "Problem: 1: nothing provides …" on newer zypper.
            let problem = problem
                .split_once(": ")
                .filter(|(n, _)| n.chars().all(|c| c.is_ascii_digit()))
                .map_or(problem, |(_, p)| p);
            sim.unresolved.push(problem.trim().to_string());
        } else if let Some(sizes) = line.strip_prefix("Overall download size: ") {
            // "208.5 KiB. Already cached: 0 B. After the operation,
            // additional 194.3 KiB will be used." (or "… 1.2 MiB will be freed.")
            sim.download = sizes.split(". ").next().and_then(parse_size);
            if let Some(after) = sizes.split("After the operation, ").nth(1) {
                let freed = after.contains("will be freed");
                let size = after
                    .trim_start_matches("additional ")
                    .split(" will be")
                    .next()
                    .unwrap_or_default();
                sim.installed_change =
                    parse_size(size).map(|b| if freed { -(b as i64) } else { b as i64 });
            }
        } else if line.starts_with("Nothing to do.") {
            sim.download.get_or_insert(0);
            sim.installed_change.get_or_insert(0);
        }
    }
    sim
}

/// zypper's sizes: "208.5 KiB", "0 B", "1.2 MiB" (powers of 1024).
fn parse_size(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.parse().ok()?;
    let unit = match parts.next()?.trim_end_matches('.') {
        "B" => 1.0,
        "KiB" => 1024.0,
        "MiB" => 1024f64.powi(2),
        "GiB" => 1024f64.powi(3),
        "TiB" => 1024f64.powi(4),
        _ => return None,
    };
    Some((number * unit) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// zypper 1.14's output, as the fixture test saw it.
    const PLAN: &str = "Loading repository data...
Reading installed packages...

The following item is locked and will not be changed by any action:
 Installed:
  locked

The following 2 package updates will NOT be installed:
  app locked

The following NEW package is going to be installed:
  kernel-default-6.4.0-150600.23.25.1

The following 2 packages are going to be upgraded:
  kernel-default tool

2 packages to upgrade, 1 new.
Overall download size: 201.4 KiB. Already cached: 0 B. After the operation, additional 194.3 KiB will be used.
Continue? [y/n/v/...? shows all options] (y): y
";

    #[test]
    fn zypper_s_plan_is_read_to_its_lists_and_sizes() {
        let sim = parse_zypper(PLAN);
        assert_eq!(sim.kept_back, ["app", "locked"]);
        assert_eq!(sim.upgraded, ["kernel-default", "tool"]);
        assert_eq!(sim.installed, ["kernel-default-6.4.0-150600.23.25.1"]);
        assert_eq!(sim.download, Some(206_233));
        assert_eq!(sim.installed_change, Some(198_963));
        assert!(sim.unresolved.is_empty());
        let freed = parse_zypper("Overall download size: 0 B. Already cached: 0 B. After the operation, 1.5 MiB will be freed.\n");
        assert_eq!(freed.installed_change, Some(-1_572_864));
    }

    #[test]
    fn zypper_s_problems_are_kept() {
        let text = "Resolving package dependencies...

Problem: nothing provides libgone >= 2 needed by app-2.0-1.noarch
 Solution 1: do not install app-2.0-1.noarch
 Solution 2: break app-2.0-1.noarch by ignoring some of its dependencies

Problem: 2: nothing provides libother needed by two-2.0-1.noarch
";
        assert_eq!(
            parse_zypper(text).unresolved,
            [
                "nothing provides libgone >= 2 needed by app-2.0-1.noarch",
                "nothing provides libother needed by two-2.0-1.noarch"
            ]
        );
    }

    #[test]
    fn a_dry_run_without_a_plan_is_an_error_with_its_last_words_redacted() {
        use std::os::unix::process::ExitStatusExt;
        let finished = Finished {
            status: std::process::ExitStatus::from_raw(256 * 4),
            stdout: "Loading repository data...\n".into(),
            stderr: "Repository 'm' is invalid.\n[m|https://alice:s3cret@mirror.test/sles] Valid metadata not found at specified URL\n".into(),
        };
        let said = super::super::no_plan("zypper update --dry-run", finished).to_string();
        assert!(said.contains("it printed no plan, and ended: Loading repository data... / Repository 'm' is invalid. / [m|https://alice:***@mirror.test/sles]"), "{said}");
        assert!(!said.contains("s3cret"), "{said}");
    }

    #[test]
    fn an_output_without_a_plan_is_not_an_empty_plan() {
        let refused = parse_zypper("Repository 'mirror' is invalid.\nPlease check if the URIs defined for this repository are pointing to a valid repository.\n");
        assert!(!refused.planned());
        assert!(parse_zypper("Loading repository data...\nNothing to do.\n").planned());
    }

    #[test]
    fn zypper_s_package_locks_are_read() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("etc/zypp")).unwrap();
        std::fs::write(
            root.path().join("etc/zypp/locks"),
            "type: package\nmatch_type: glob\nsolvable_name: kernel-default\n\nsolvable_name: nginx\n\ntype: pattern\nsolvable_name: gnome\n",
        )
        .unwrap();
        assert_eq!(locked(&Root::new(root.path())), ["kernel-default", "nginx"]);
    }
}
