//! apt's plan of the pending upgrade: `apt-get --print-uris --assume-no upgrade` with
//! - `Debug::NoLocking=1`: no lock on `/var/lib/dpkg/lock*` or the lists;
//! - `Dir::Cache::pkgcache=""`, `Dir::Cache::srcpkgcache=""`: the binary
//!   caches are built in memory, not written under `/var/cache/apt`;
//! - `Dir::Log::Planner=/dev/null`: no `eipp.log.xz` under `/var/log/apt`;
//! - `Dir::Bin::dpkg=/bin/false`: should apt ever go past planning, dpkg
//!   cannot run (`--print-uris` returns after printing what it would fetch,
//!   and `--assume-no` answers any question no);
//! - for a root other than `/`, `Dir::Etc`, `Dir::State`, `Dir::Cache` and
//!   dpkg's status under it, so fixture trees are planned with their own;
//! - the lists already on disk: no `update`, nothing fetched.
//!
//! It prints what `upgrade` would install, keep back and remove, how much it
//! would download ("Need to get") and the installed-size change ("After
//! this operation"), then one line per archive to fetch.

use super::{Manager, Simulation};
use crate::host::command::{self, CommandError};
use crate::host::Root;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// apt's plan of `upgrade` for `root`, within `budget`, and — for the
/// packages it keeps back that are not held — whether an explicit upgrade
/// of them resolves (the patch run marks each approved update itself, so
/// an update whose dependency no repository has fails it).
pub fn plan(root: &Root, held: &[String], budget: Duration) -> Result<Simulation, CommandError> {
    let started = std::time::Instant::now();
    let options = apt_options(root);
    let mut args: Vec<&str> = vec!["--print-uris", "--assume-no"];
    args.extend(options.iter().map(String::as_str));
    args.push("upgrade");
    let mut sim = parse_apt(&run_apt(&args, budget)?);
    let kept: Vec<&str> = sim
        .kept_back
        .iter()
        .filter(|p| !held.contains(p))
        .map(String::as_str)
        .collect();
    if sim.unresolved.is_empty() && !kept.is_empty() {
        let mut args: Vec<&str> = vec!["-s"];
        args.extend(options.iter().map(String::as_str));
        args.extend(["install", "--only-upgrade"]);
        args.extend(kept);
        let left = budget.saturating_sub(started.elapsed());
        sim.unresolved = parse_apt(&run_apt(&args, left)?).unresolved;
    }
    Ok(sim)
}

/// apt-get's options for a dry run that locks and writes nothing (see
/// the module's comment), pointed at `root`'s files when it is not `/`.
fn apt_options(root: &Root) -> Vec<String> {
    let mut options: Vec<String> = [
        "Debug::NoLocking=1",
        "Dir::Cache::pkgcache=",
        "Dir::Cache::srcpkgcache=",
        "Dir::Log::Planner=/dev/null",
        "Dir::Bin::dpkg=/bin/false",
        "APT::Color=0",
    ]
    .iter()
    .map(|o| o.to_string())
    .collect();
    if root.dir() != Path::new("/") {
        // Not RootDir: it would look for dpkg's CPU tables under the root too.
        for (option, path) in [
            ("Dir::Etc", "/etc/apt"),
            ("Dir::State", "/var/lib/apt"),
            ("Dir::State::status", "/var/lib/dpkg/status"),
            ("Dir::Cache", "/var/cache/apt"),
        ] {
            options.push(format!("{option}={}", root.path(path).display()));
        }
    }
    options
        .into_iter()
        .flat_map(|o| ["-o".to_string(), o])
        .collect()
}

/// apt-get's output (both streams), in the C locale; any exit status is a
/// plan (apt exits 100 when it cannot resolve, and says why).
fn run_apt(args: &[&str], budget: Duration) -> Result<String, CommandError> {
    let finished = command::run_with_env(
        Path::new("/usr/bin/apt-get"),
        args,
        &[("LC_ALL", "C.UTF-8"), ("LANG", "C.UTF-8")],
        budget,
    )?;
    Ok(format!("{}\n{}", finished.stdout, finished.stderr))
}

/// Whether this host plans with apt: its binary and dpkg's status file.
pub fn present(root: &Root) -> bool {
    Path::new("/usr/bin/apt-get").exists() && root.path("/var/lib/dpkg/status").is_file()
}

/// Reads apt-get's plan (in the C locale).
pub fn parse_apt(text: &str) -> Simulation {
    let mut sim = Simulation::new(Manager::Apt);
    let mut list: Option<&mut Vec<String>> = None;
    let mut unmet = false;
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("  ") {
            if let Some(l) = list.as_deref_mut() {
                l.extend(rest.split_whitespace().map(str::to_string));
                continue;
            }
            if unmet && !rest.trim().is_empty() {
                sim.unresolved.push(rest.trim().to_string());
                continue;
            }
        }
        if unmet && line.starts_with(' ') && !line.trim().is_empty() {
            sim.unresolved.push(line.trim().to_string());
            continue;
        }
        list = None;
        unmet = false;
        if line.starts_with("The following packages will be upgraded:") {
            list = Some(&mut sim.upgraded);
        } else if line.starts_with("The following NEW packages will be installed:") {
            list = Some(&mut sim.installed);
        } else if line.starts_with("The following packages will be REMOVED:") {
            list = Some(&mut sim.removed);
        } else if line.starts_with("The following packages have been kept back:") {
            list = Some(&mut sim.kept_back);
        } else if line.starts_with("The following packages have unmet dependencies:") {
            unmet = true;
        } else if let Some(rest) = line.strip_prefix("Need to get ") {
            // "Need to get 1,234 kB/208 MB of archives.": the part not cached.
            let size = rest.split(" of archives").next().unwrap_or_default();
            sim.download = parse_size(size.split('/').next().unwrap_or_default());
        } else if let Some(rest) = line.strip_prefix("After this operation, ") {
            let freed = rest.contains("will be freed");
            let size = rest
                .split(" of additional")
                .next()
                .unwrap_or_default()
                .split(" disk space")
                .next()
                .unwrap_or_default();
            sim.installed_change =
                parse_size(size).map(|b| if freed { -(b as i64) } else { b as i64 });
        } else if let Some(e) = line.strip_prefix("E: ") {
            sim.unresolved.push(e.trim().to_string());
        }
    }
    // The package names have the markers apt adds (`pkg*` none, kept as written).
    for l in [
        &mut sim.upgraded,
        &mut sim.installed,
        &mut sim.removed,
        &mut sim.kept_back,
    ] {
        l.retain(|p| !p.is_empty());
    }
    sim
}

/// apt's sizes: "208 MB", "3244 kB", "95.2 MB", "1,234 kB", "0 B" (SI units).
fn parse_size(text: &str) -> Option<u64> {
    let mut parts = text.split_whitespace();
    let number: f64 = parts.next()?.replace(',', "").parse().ok()?;
    let unit = match parts.next().unwrap_or("B") {
        "B" => 1.0,
        "kB" => 1e3,
        "MB" => 1e6,
        "GB" => 1e9,
        "TB" => 1e12,
        _ => return None,
    };
    Some((number * unit) as u64)
}

/// When apt's package lists were last refreshed: the newest `Release` or
/// `InRelease` file under `/var/lib/apt/lists` (None: no lists).
pub fn lists_refreshed(root: &Root) -> Option<SystemTime> {
    std::fs::read_dir(root.path("/var/lib/apt/lists"))
        .ok()?
        .flatten()
        .filter(|e| {
            let n = e.file_name();
            let n = n.to_string_lossy();
            n.ends_with("_InRelease") || n.ends_with("_Release")
        })
        .filter_map(|e| e.metadata().ok()?.modified().ok())
        .max()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: &str = "Reading package lists...
Building dependency tree...
Reading state information...
Calculating upgrade...
The following packages have been kept back:
  held-one linux-image-amd64
The following packages will be upgraded:
  base-files bash
  linux-image-6.1.0-28-amd64
The following NEW packages will be installed:
  linux-image-6.1.0-29-amd64
2 upgraded, 1 newly installed, 0 to remove and 2 not upgraded.
Need to get 1,234 kB/95.2 MB of archives.
After this operation, 3244 kB of additional disk space will be used.
'http://deb.debian.org/debian/pool/main/b/bash/bash_5.2.15-2%2bb13_amd64.deb' bash_5.2.15-2+b13_amd64.deb 1490652 MD5Sum:f973a067908f9c7579d30deddd8301ed
";

    #[test]
    fn apt_s_plan_is_read_to_its_lists_and_sizes() {
        let sim = parse_apt(PLAN);
        assert_eq!(sim.kept_back, ["held-one", "linux-image-amd64"]);
        assert_eq!(
            sim.upgraded,
            ["base-files", "bash", "linux-image-6.1.0-28-amd64"]
        );
        assert_eq!(sim.installed, ["linux-image-6.1.0-29-amd64"]);
        assert_eq!(sim.download, Some(1_234_000));
        assert_eq!(sim.installed_change, Some(3_244_000));
        assert!(sim.unresolved.is_empty());
        assert_eq!(
            sim.kernels(),
            ["linux-image-6.1.0-28-amd64", "linux-image-6.1.0-29-amd64"]
        );
        let freed = parse_apt("After this operation, 95.2 MB disk space will be freed.\n");
        assert_eq!(freed.installed_change, Some(-95_200_000));
    }

    #[test]
    fn what_apt_cannot_resolve_is_kept_with_its_reason() {
        let text = "Reading package lists...
Some packages could not be installed. This may mean that you have
requested an impossible situation or if you are using the unstable
distribution that some required packages have not yet been created
or been moved out of Incoming.
The following information may help to resolve the situation:

The following packages have unmet dependencies:
 app : Depends: libgone (>= 2) but it is not installable
       Depends: libother but it is not going to be installed
E: Unable to correct problems, you have held broken packages.
";
        let sim = parse_apt(text);
        assert_eq!(
            sim.unresolved,
            [
                "app : Depends: libgone (>= 2) but it is not installable",
                "Depends: libother but it is not going to be installed",
                "Unable to correct problems, you have held broken packages."
            ]
        );
    }
}
