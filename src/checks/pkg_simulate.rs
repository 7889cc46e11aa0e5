//! `pkg.simulate`: the upgrade as the host's package manager plans it, a
//! dry run against the lists already on disk that takes no lock and writes
//! nothing (`host::simulate` says how). What the patch run will not manage
//! shows here first: dependencies that cannot be resolved, held and
//! kept-back packages it leaves, archives that do not fit.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_bytes;
use crate::host::simulate::{self, Simulation};
use crate::host::Root;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.simulate",
    group: Group::Host,
    title: "The upgrade as a dry run",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "apt's own plan of `upgrade` against the lists on disk (`apt-get --print-uris --assume-no` with `Debug::NoLocking=1`, no cache or planner-log writes and dpkg replaced by `/bin/false`: no lock, no write): what would be upgraded, installed, removed or kept back; held packages (dpkg's status); the archives to download against `/var/cache/apt/archives`'s free space and the installed-size change against `/usr`'s; the lists' age. The daemon runs it on each run; `check` and the gate use the daemon's last result and say its age, `check --simulate` runs it now, within `pkg_simulate.timeout` (60 s)",
        warns: "held or kept-back packages the patch run leaves as they are; free space within 20 % of what the upgrade needs; package lists older than `pkg_simulate.stale_after` (7 d)",
        fails: "apt cannot resolve the upgrade (the unmet dependencies, named); the archives or the installed packages do not fit",
        fix: "`sudo apt-get upgrade` shows the same plan; `sudo apt-mark unhold <package>`; free space or `sudo apt-get clean`",
        cannot_see: "no apt (dnf, yum and zypper take a lock of their own even for a dry run, so they are not asked) / a package-manager lock held / not simulated yet",
        reports: "`skip` with the reason",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let timeout = ctx.settings.pkg_simulate.timeout;
    let mut check = crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let root = ctx.root.clone();
        let settings = ctx.settings.pkg_simulate.clone();
        let now = ctx.now;
        tokio::task::spawn_blocking(move || {
            gather_and_judge(&root, settings.timeout, settings.stale_after, now)
        })
        .await
        .unwrap_or_else(|e| {
            Outcome::error(
                format!("the dry run's thread failed: {e}"),
                "This is a bug in ssm-preflight: report it.",
            )
        })
    });
    check.info.timeout = check.info.timeout.max(timeout + Duration::from_secs(5));
    check
}

/// What the host's package manager and files say, for `judge`.
#[derive(Debug, Clone)]
pub struct Facts {
    pub sim: Simulation,
    pub held: Vec<String>,
    /// How long ago the lists were refreshed.
    pub lists_age: Duration,
    /// Free bytes where apt keeps archives, and where packages install.
    pub cache_free: Option<u64>,
    pub usr_free: Option<u64>,
}

fn gather_and_judge(
    root: &Root,
    timeout: Duration,
    stale_after: Duration,
    now: SystemTime,
) -> Outcome {
    if !simulate::has_apt(root) {
        let rpm = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
            .iter()
            .any(|d| root.path(d).is_dir());
        return Outcome::skip(if rpm {
            "dnf, yum and zypper are not asked: each takes a lock of its own even for a dry run (dnf's rpmdb lock, zypper's /run/zypp.pid), and ssm-preflight never takes one"
        } else {
            "no apt here (/usr/bin/apt-get and dpkg's status), so there is no dry run to ask"
        });
    }
    let held_lock = crate::host::locks::gather(root)
        .findings
        .into_iter()
        .find_map(|f| match f {
            crate::host::locks::Finding::Held(h) => Some(h),
            _ => None,
        });
    if let Some(h) = held_lock {
        return Outcome::skip(format!(
            "{} is held by {} now, so the dry run waits for the next run (pkg.lock says more)",
            h.path,
            h.pid
                .map_or("a process".to_string(), |p| format!("pid {p}"))
        ));
    }
    let Some(refreshed) = simulate::apt_lists_refreshed(root) else {
        return Outcome::skip("apt has no package lists in /var/lib/apt/lists to plan with; the patch run refreshes them first (`sudo apt-get update` does the same)");
    };
    let held = std::fs::read(root.path("/var/lib/dpkg/status"))
        .map(|s| crate::host::pkg_state::held_packages(&s))
        .unwrap_or_default();
    let sim = match simulate::apt(root, &held, timeout) {
        Ok(s) => s,
        Err(e) => {
            return Outcome::error(
                format!("apt's dry run gave no plan: {e}"),
                format!("Run `sudo apt-get -s upgrade` to see why; raise pkg_simulate.timeout (now {}) if apt is only slow here.", humantime::format_duration(timeout)),
            )
        }
    };
    let free = |path: &str| {
        crate::host::disk::statvfs(&root.path(path))
            .ok()
            .map(|f| f.bytes_free)
    };
    let facts = Facts {
        sim,
        held,
        lists_age: now.duration_since(refreshed).unwrap_or_default(),
        cache_free: free("/var/cache/apt/archives"),
        usr_free: free("/usr"),
    };
    judge(&facts, stale_after)
}

/// How `need` bytes fit in what is free.
enum Room {
    Short,
    /// Within 20 %.
    Close,
    Enough,
}

fn room(need: u64, free: Option<u64>) -> Room {
    match free {
        Some(free) if need > free => Room::Short,
        Some(free) if need.saturating_mul(6) / 5 > free => Room::Close,
        _ => Room::Enough,
    }
}

pub fn judge(f: &Facts, stale_after: Duration) -> Outcome {
    let sim = &f.sim;
    let outcome = if !sim.unresolved.is_empty() {
        Outcome::fail(
            format!("apt cannot plan the upgrade: {}", sim.unresolved.join("; ")),
            "Run `sudo apt-get upgrade` to see the same; add the repository that has the missing package, or keep the package that needs it back (`sudo apt-mark hold <package>`, or reject it in the patch baseline), and repair broken packages with `sudo apt-get -f install`.",
        )
    } else {
        let (fails, mut warns) = space(f);
        warns.extend(left_out(f));
        if f.lists_age > stale_after {
            warns.push(format!(
                "the plan used package lists from {} ago (older than pkg_simulate.stale_after, {})",
                age(f.lists_age),
                age(stale_after)
            ));
        }
        if !fails.is_empty() {
            Outcome::fail(
                format!("{}: {}", plan_sentence(sim), fails.join("; ")),
                "Free space on that filesystem (`sudo apt-get clean` empties /var/cache/apt/archives), or grow it, before the window.",
            )
        } else if !warns.is_empty() {
            Outcome::warn(
                format!("{}: {}", plan_sentence(sim), warns.join("; ")),
                "See the plan with `sudo apt-get -s upgrade`; `sudo apt-mark unhold <package>` lets a held package be patched (or reject it in the baseline to say so); `sudo apt-get update` refreshes old lists.",
            )
        } else {
            Outcome::pass(format!(
                "{}, with lists from {} ago",
                plan_sentence(sim),
                age(f.lists_age)
            ))
        }
    };
    outcome
        .detail("upgraded", sim.upgraded.len())
        .detail("installed", sim.installed.len())
        .detail("removed", sim.removed.len())
        .detail("kept_back", sim.kept_back.join(" "))
        .detail("held", f.held.join(" "))
        .detail("download_bytes", sim.download.unwrap_or(0))
        .detail("installed_change_bytes", sim.installed_change.unwrap_or(0))
        .detail("lists_age_s", f.lists_age.as_secs())
        .detail(
            "reboot_expected",
            if sim.kernels().is_empty() {
                "no"
            } else {
                "yes"
            },
        )
}

/// The download and the installed growth against the free space where
/// each lands: (failures, warnings).
fn space(f: &Facts) -> (Vec<String>, Vec<String>) {
    let sim = &f.sim;
    let mut fails = Vec::new();
    let mut warns = Vec::new();
    let download = sim.download.unwrap_or(0);
    let cache_free = format_bytes(f.cache_free.unwrap_or(0));
    match room(download, f.cache_free) {
        Room::Short => fails.push(format!("the archives to download ({}) do not fit in /var/cache/apt/archives ({cache_free} free)", format_bytes(download))),
        Room::Close => warns.push(format!("the archives to download ({}) leave less than a fifth of /var/cache/apt/archives's {cache_free} free", format_bytes(download))),
        Room::Enough => {}
    }
    let grows = sim.installed_change.unwrap_or(0).max(0) as u64;
    let usr_free = format_bytes(f.usr_free.unwrap_or(0));
    match room(grows, f.usr_free) {
        Room::Short => fails.push(format!(
            "the upgrade installs {} more than it removes, and /usr has {usr_free} free",
            format_bytes(grows)
        )),
        Room::Close => warns.push(format!(
            "the upgrade installs {} more, leaving less than a fifth of /usr's {usr_free} free",
            format_bytes(grows)
        )),
        Room::Enough => {}
    }
    (fails, warns)
}

/// Upgrades the patch run will not install: held packages, and those
/// `upgrade` keeps back.
fn left_out(f: &Facts) -> Vec<String> {
    let (held, kept): (Vec<&String>, Vec<&String>) =
        f.sim.kept_back.iter().partition(|p| f.held.contains(p));
    let list = |v: &[&String]| v.iter().map(|p| p.as_str()).collect::<Vec<_>>().join(", ");
    let mut warns = Vec::new();
    if !held.is_empty() {
        warns.push(format!(
            "{} held package(s) have an upgrade the patch run will not install: {}",
            held.len(),
            list(&held)
        ));
    }
    if !kept.is_empty() {
        warns.push(format!("{} package(s) are kept back (their upgrade needs new packages or removals, which `upgrade` does not do): {}", kept.len(), list(&kept)));
    }
    warns
}

/// "12 packages to upgrade (kernel linux-image-6.1.0-29-amd64 among them: a
/// reboot follows), 95.2 MB to download, 3.2 MB more installed"
fn plan_sentence(sim: &Simulation) -> String {
    let count = sim.upgraded.len() + sim.installed.len();
    if count == 0 && sim.removed.is_empty() {
        return "nothing to upgrade".into();
    }
    let kernels = sim.kernels();
    let reboot = if kernels.is_empty() {
        String::new()
    } else {
        format!(
            " (kernel {} among them: a reboot follows)",
            kernels.join(", ")
        )
    };
    let change = match sim.installed_change.unwrap_or(0) {
        n if n >= 0 => format!("{} more installed", format_bytes(n as u64)),
        n => format!("{} freed", format_bytes(n.unsigned_abs())),
    };
    format!(
        "{count} package(s) to upgrade or install{reboot}, {} to download, {change}",
        format_bytes(sim.download.unwrap_or(0))
    )
}

fn age(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 86_400 {
        format!("{} d", s / 86_400)
    } else if s >= 3600 {
        format!("{} h", s / 3600)
    } else {
        format!("{} min", s / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const WEEK: Duration = Duration::from_secs(7 * 86_400);
    const GIB: u64 = 1 << 30;

    fn facts(sim: Simulation) -> Facts {
        Facts {
            sim,
            held: vec![],
            lists_age: Duration::from_secs(3 * 3600),
            cache_free: Some(10 * GIB),
            usr_free: Some(10 * GIB),
        }
    }

    fn plan() -> Simulation {
        Simulation {
            upgraded: vec!["bash".into(), "linux-image-6.1.0-29-amd64".into()],
            download: Some(95_200_000),
            installed_change: Some(3_244_000),
            ..Default::default()
        }
    }

    #[test]
    fn a_plan_that_fits_passes_and_says_a_reboot_follows() {
        let o = judge(&facts(plan()), WEEK);
        o.assert_says(Status::Pass, "2 package(s) to upgrade or install (kernel linux-image-6.1.0-29-amd64 among them: a reboot follows), 90.8 MiB to download, 3.1 MiB more installed, with lists from 3 h ago");
        assert_eq!(o.details["reboot_expected"], "yes");
    }

    #[test]
    fn what_cannot_be_resolved_fails_naming_it() {
        let sim = Simulation {
            unresolved: vec!["app : Depends: libgone (>= 2) but it is not installable".into()],
            ..plan()
        };
        judge(&facts(sim), WEEK).assert_says(
            Status::Fail,
            "apt cannot plan the upgrade: app : Depends: libgone (>= 2) but it is not installable",
        );
    }

    #[test]
    fn archives_that_do_not_fit_fail_and_close_ones_warn() {
        let mut f = facts(plan());
        f.cache_free = Some(50_000_000);
        judge(&f, WEEK).assert_says(Status::Fail, "the archives to download (90.8 MiB) do not fit in /var/cache/apt/archives (47.7 MiB free)");
        f.cache_free = Some(100_000_000);
        judge(&f, WEEK).assert_says(
            Status::Warn,
            "leave less than a fifth of /var/cache/apt/archives's 95.4 MiB free",
        );
        f.cache_free = Some(10 * GIB);
        f.usr_free = Some(1_000_000);
        judge(&f, WEEK).assert_says(
            Status::Fail,
            "installs 3.1 MiB more than it removes, and /usr has 976.6 KiB free",
        );
    }

    #[test]
    fn held_and_kept_back_packages_and_old_lists_warn() {
        let mut f = facts(Simulation {
            kept_back: vec!["openssl".into(), "linux-image-amd64".into()],
            ..plan()
        });
        f.held = vec!["openssl".into()];
        f.lists_age = Duration::from_secs(9 * 86_400);
        let o = judge(&f, WEEK);
        o.assert_says(Status::Warn, "1 held package(s) have an upgrade the patch run will not install: openssl; 1 package(s) are kept back (their upgrade needs new packages or removals, which `upgrade` does not do): linux-image-amd64; the plan used package lists from 9 d ago");
    }
}
