//! `pkg.simulate`: the upgrade as the host's package manager plans it, a
//! dry run against the lists already on disk that takes no lock and writes
//! nothing (`host::simulate` says how). What the patch run will not manage
//! shows here first: dependencies that cannot be resolved, held and
//! kept-back packages it leaves, archives that do not fit.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_bytes;
use crate::host::simulate::{self, Manager, Simulation};
use crate::host::Root;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.simulate",
    group: Group::Host,
    title: "The upgrade as a dry run",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "the host package manager's own plan of the upgrade against the metadata already on disk, taking no lock and writing nothing. apt: `apt-get --print-uris --assume-no upgrade` with `Debug::NoLocking=1`, no cache or planner-log writes and dpkg replaced by `/bin/false`. dnf 4: `dnf -C --assumeno --noplugins upgrade` with its rpmdb copied into a scratch directory and its cachedir, persistdir and logdir there too, so its locks and writes land in that copy; versionlock's packages excluded and `exclude=` ignored, as the payload does. zypper: `zypper --no-refresh update --dry-run` with `--root` a scratch directory holding a copy of the rpmdb and of its locks, the host's repositories and raw metadata only read, its lock file, log and temporary files in the scratch directory. It reads what would be upgraded, installed, removed or kept back; held packages (dpkg's holds, versionlock's list, zypper's locks); the packages to download against the free space of the package cache and the installed-size change (apt, zypper) against `/usr`'s; the metadata's age. The daemon runs it on each run; `check` and the gate use the daemon's last result and say its age, `check --simulate` runs it now, within `pkg_simulate.timeout` (60 s)",
        warns: "held or kept-back packages the patch run leaves as they are; packages that `exclude=` hides from dnf with an upgrade the payload installs anyway; a repository the plan leaves out for want of cached metadata; free space within 20 % of what the upgrade needs; metadata older than `pkg_simulate.stale_after` (7 d)",
        fails: "the package manager cannot resolve the upgrade (the unmet dependencies or problems, named; an update zypper's `update` leaves out is asked for by name, as the patch run asks for each patch); the packages to download or the installed growth do not fit",
        fix: "`sudo apt-get -s upgrade`, `sudo dnf upgrade --assumeno` or `sudo zypper update --dry-run` shows the same plan; `sudo apt-mark unhold <package>`, `sudo dnf versionlock delete <package>` or `sudo zypper removelock <package>`; free space, `sudo apt-get clean`, `sudo dnf clean packages` or `sudo zypper clean --all`",
        cannot_see: "yum (Amazon Linux 2, RHEL 7), which takes a lock of its own even for a dry run, is not asked; dnf does not say how much an upgrade grows the installed size / a package-manager lock held / not simulated yet",
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
    /// Packages the upgrade takes that an `exclude=` hides from dnf, each
    /// with the pattern and where it is set.
    pub excluded: Vec<String>,
    /// Where the package manager keeps downloaded packages.
    pub cache: String,
    pub held: Vec<String>,
    /// How long ago the lists were refreshed.
    pub lists_age: Duration,
    /// Free bytes where downloaded packages land, and where packages install.
    pub cache_free: Option<u64>,
    pub usr_free: Option<u64>,
}

fn gather_and_judge(
    root: &Root,
    timeout: Duration,
    stale_after: Duration,
    now: SystemTime,
) -> Outcome {
    let manager = if simulate::apt::present(root) {
        Manager::Apt
    } else if simulate::dnf::present(root) {
        Manager::Dnf
    } else if simulate::zypper::present(root) {
        Manager::Zypper
    } else {
        let rpm = ["/var/lib/rpm", "/usr/lib/sysimage/rpm"]
            .iter()
            .any(|d| root.path(d).is_dir());
        return Outcome::skip(if rpm {
            "no dnf 4 or zypper here to ask (/usr/bin/dnf, /usr/bin/zypper); yum is not asked, as it takes a lock of its own even for a dry run (its pid file), and ssm-preflight never takes one"
        } else {
            "no apt, dnf or zypper here (/usr/bin/apt-get with dpkg's status, /usr/bin/dnf or /usr/bin/zypper with an rpmdb), so there is no dry run to ask"
        });
    };
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
    let words = Words::of(manager);
    let (refreshed, held) = match manager {
        Manager::Apt => (
            simulate::apt::lists_refreshed(root),
            std::fs::read(root.path("/var/lib/dpkg/status"))
                .map(|s| crate::host::pkg_state::held_packages(&s))
                .unwrap_or_default(),
        ),
        Manager::Dnf => (
            simulate::dnf::metadata_refreshed(root),
            simulate::dnf::versionlocked(root),
        ),
        Manager::Zypper => (
            simulate::zypper::metadata_refreshed(root),
            simulate::zypper::locked(root),
        ),
    };
    let Some(refreshed) = refreshed else {
        return Outcome::skip(format!(
            "{} has no {} in {} to plan with; the patch run refreshes them first (`{}` does the same)",
            words.name, words.metadata, words.metadata_dir, words.refresh
        ));
    };
    let sim = match manager {
        Manager::Apt => simulate::apt::plan(root, &held, timeout),
        Manager::Dnf => simulate::dnf::plan(root, &held, timeout),
        Manager::Zypper => simulate::zypper::plan(root, &held, timeout),
    };
    let sim = match sim {
        Ok(s) => s,
        Err(e) => {
            return Outcome::error(
                format!("{}'s dry run gave no plan: {e}", words.name),
                format!(
                "Run `{}` to see why; raise pkg_simulate.timeout (now {}) if {} is only slow here.",
                words.show_plan,
                humantime::format_duration(timeout),
                words.name
            ),
            )
        }
    };
    let free = |path: &str| {
        crate::host::disk::statvfs(&root.path(path))
            .ok()
            .map(|f| f.bytes_free)
    };
    let cache = match manager {
        Manager::Apt => "/var/cache/apt/archives".to_string(),
        Manager::Dnf => simulate::dnf::cache_dir(root),
        Manager::Zypper => "/var/cache/zypp/packages".to_string(),
    };
    // The plan ignores exclude= as the payload does; the packages it hides
    // that the upgrade takes anyway are named.
    let excluded = match manager {
        Manager::Dnf => excluded_upgrades(&sim, &crate::host::excludes::gather(root).found),
        Manager::Apt | Manager::Zypper => vec![],
    };
    let facts = Facts {
        excluded,
        cache_free: free(&cache),
        cache,
        sim,
        held,
        lists_age: now.duration_since(refreshed).unwrap_or_default(),
        usr_free: free("/usr"),
    };
    judge(&facts, stale_after)
}

/// "kernel-core (kernel* in /etc/dnf/dnf.conf [main])" for each package
/// the plan upgrades or installs that an exclude= pattern matches.
fn excluded_upgrades(sim: &Simulation, found: &[crate::host::excludes::Exclude]) -> Vec<String> {
    sim.upgraded
        .iter()
        .chain(&sim.installed)
        .filter_map(|package| {
            found.iter().find_map(|e| {
                e.patterns
                    .iter()
                    .find(|p| glob::Pattern::new(p).is_ok_and(|g| g.matches(package)))
                    .map(|p| format!("{package} ({p} in {} [{}])", e.file, e.section))
            })
        })
        .collect()
}

/// The package manager's own words and commands, for the sentences.
struct Words {
    name: &'static str,
    metadata: &'static str,
    metadata_dir: &'static str,
    show_plan: &'static str,
    refresh: &'static str,
    clean: &'static str,
    unhold: &'static str,
    unresolved_fix: &'static str,
}

impl Words {
    fn of(manager: Manager) -> Words {
        match manager {
            Manager::Apt => Words {
                name: "apt",
                metadata: "package lists",
                metadata_dir: "/var/lib/apt/lists",
                show_plan: "sudo apt-get -s upgrade",
                refresh: "sudo apt-get update",
                clean: "`sudo apt-get clean` empties /var/cache/apt/archives",
                unhold: "`sudo apt-mark unhold <package>`",
                unresolved_fix: "Run `sudo apt-get upgrade` to see the same; add the repository that has the missing package, or keep the package that needs it back (`sudo apt-mark hold <package>`, or reject it in the patch baseline), and repair broken packages with `sudo apt-get -f install`.",
            },
            Manager::Dnf => Words {
                name: "dnf",
                metadata: "repository metadata",
                metadata_dir: "/var/cache/dnf",
                show_plan: "sudo dnf upgrade --assumeno",
                refresh: "sudo dnf makecache",
                clean: "`sudo dnf clean packages` empties the cached packages",
                unhold: "`sudo dnf versionlock delete <package>`",
                unresolved_fix: "Run `sudo dnf upgrade --assumeno` to see the same; enable the repository that has the missing package, or keep the package that needs it back (`sudo dnf versionlock add <package>`, or reject it in the patch baseline), and check the rpmdb with `sudo dnf check`.",
            },
            Manager::Zypper => Words {
                name: "zypper",
                metadata: "repository metadata",
                metadata_dir: "/var/cache/zypp/raw",
                show_plan: "sudo zypper update --dry-run",
                refresh: "sudo zypper refresh",
                clean: "`sudo zypper clean --all` empties the cached packages",
                unhold: "`sudo zypper removelock <package>`",
                unresolved_fix: "Run `sudo zypper update --dry-run` and `sudo zypper install --dry-run <package>` to see the same; add the repository or module that has the missing package, or keep the package that needs it back (`sudo zypper addlock <package>`, or reject it in the patch baseline), and check dependencies with `sudo zypper verify`.",
            },
        }
    }
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
    let words = Words::of(sim.manager);
    let outcome = if !sim.unresolved.is_empty() {
        Outcome::fail(
            format!(
                "{} cannot plan the upgrade: {}",
                words.name,
                sim.unresolved.join("; ")
            ),
            words.unresolved_fix,
        )
    } else {
        let (fails, mut warns) = space(f);
        warns.extend(left_out(f));
        if !f.excluded.is_empty() {
            warns.push(format!(
                "{} package(s) that exclude= hides from dnf have an upgrade the patch run installs anyway, as its payload does not honour exclude=: {} (reject them in the patch baseline to keep them back)",
                f.excluded.len(),
                f.excluded.join(", ")
            ));
        }
        if !sim.ignored_repos.is_empty() {
            warns.push(format!(
                "the plan leaves out {}, which has no metadata cached (`{}` fetches it)",
                sim.ignored_repos.join(", "),
                words.refresh
            ));
        }
        if f.lists_age > stale_after {
            warns.push(format!(
                "the plan used {} from {} ago (older than pkg_simulate.stale_after, {})",
                words.metadata,
                age(f.lists_age),
                age(stale_after)
            ));
        }
        if !fails.is_empty() {
            Outcome::fail(
                format!("{}: {}", plan_sentence(sim), fails.join("; ")),
                format!(
                    "Free space on that filesystem ({}), or grow it, before the window.",
                    words.clean
                ),
            )
        } else if !warns.is_empty() {
            Outcome::warn(
                format!("{}: {}", plan_sentence(sim), warns.join("; ")),
                format!("See the plan with `{}`; {} lets a held package be patched (or reject it in the baseline to say so); `{}` refreshes old {}.", words.show_plan, words.unhold, words.refresh, words.metadata),
            )
        } else {
            Outcome::pass(format!(
                "{}, with {} from {} ago",
                plan_sentence(sim),
                words.metadata,
                age(f.lists_age)
            ))
        }
    };
    outcome
        .detail("package_manager", words.name)
        .detail("upgraded", sim.upgraded.len())
        .detail("installed", sim.installed.len())
        .detail("removed", sim.removed.len())
        .detail("kept_back", sim.kept_back.join(" "))
        .detail("held", f.held.join(" "))
        .detail("download_bytes", sim.download.unwrap_or(0))
        .detail(
            "installed_change_bytes",
            sim.installed_change
                .map_or(format!("not given by {}", words.name), |b| b.to_string()),
        )
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
    let cache = &f.cache;
    match room(download, f.cache_free) {
        Room::Short => fails.push(format!(
            "the packages to download ({}) do not fit in {cache} ({cache_free} free)",
            format_bytes(download)
        )),
        Room::Close => warns.push(format!(
            "the packages to download ({}) leave less than a fifth of {cache}'s {cache_free} free",
            format_bytes(download)
        )),
        Room::Enough => {}
    }
    // dnf does not say how much an upgrade grows: nothing to judge.
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
    let change = match sim.installed_change {
        None => String::new(),
        Some(n) if n >= 0 => format!(", {} more installed", format_bytes(n as u64)),
        Some(n) => format!(", {} freed", format_bytes(n.unsigned_abs())),
    };
    format!(
        "{count} package(s) to upgrade or install{reboot}, {} to download{change}",
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
            excluded: vec![],
            cache: "/var/cache/apt/archives".into(),
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
            ..Simulation::new(Manager::Apt)
        }
    }

    #[test]
    fn a_plan_that_fits_passes_and_says_a_reboot_follows() {
        let o = judge(&facts(plan()), WEEK);
        o.assert_says(Status::Pass, "2 package(s) to upgrade or install (kernel linux-image-6.1.0-29-amd64 among them: a reboot follows), 90.8 MiB to download, 3.1 MiB more installed, with package lists from 3 h ago");
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
        judge(&f, WEEK).assert_says(Status::Fail, "the packages to download (90.8 MiB) do not fit in /var/cache/apt/archives (47.7 MiB free)");
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

    #[test]
    fn dnf_s_plan_is_judged_in_dnf_s_words() {
        let sim = Simulation {
            upgraded: vec!["openssl".into(), "kernel-core".into()],
            kept_back: vec!["nginx".into()],
            download: Some(90 * 1024 * 1024),
            ignored_repos: vec!["epel".into()],
            ..Simulation::new(Manager::Dnf)
        };
        let mut f = Facts {
            cache: "/var/cache/dnf".into(),
            held: vec!["nginx".into()],
            ..facts(sim)
        };
        let o = judge(&f, WEEK);
        o.assert_says(Status::Warn, "2 package(s) to upgrade or install (kernel kernel-core among them: a reboot follows), 90.0 MiB to download: 1 held package(s) have an upgrade the patch run will not install: nginx; the plan leaves out epel, which has no metadata cached (`sudo dnf makecache` fetches it)");
        assert!(
            o.remedy
                .as_deref()
                .unwrap_or_default()
                .contains("`sudo dnf versionlock delete <package>`"),
            "{o:?}"
        );
        assert_eq!(o.details["installed_change_bytes"], "not given by dnf");
        f.cache_free = Some(1024);
        judge(&f, WEEK).assert_says(
            Status::Fail,
            "the packages to download (90.0 MiB) do not fit in /var/cache/dnf (1.0 KiB free)",
        );
        f.sim.unresolved = vec!["nothing provides libgone >= 2 needed by app-2.0-1.noarch".into()];
        judge(&f, WEEK).assert_says(
            Status::Fail,
            "dnf cannot plan the upgrade: nothing provides libgone >= 2 needed by app-2.0-1.noarch",
        );
    }

    #[test]
    fn upgrades_that_exclude_hides_are_named_with_their_pattern() {
        use crate::host::excludes::Exclude;
        let sim = Simulation {
            upgraded: vec!["kernel-core".into(), "bash".into(), "php-cli".into()],
            ..Simulation::new(Manager::Dnf)
        };
        let found = [
            Exclude {
                file: "/etc/dnf/dnf.conf".into(),
                section: "main".into(),
                patterns: vec!["kernel*".into()],
            },
            Exclude {
                file: "/etc/yum.repos.d/remi.repo".into(),
                section: "remi".into(),
                patterns: vec!["php-?li".into(), "nginx".into()],
            },
        ];
        let excluded = excluded_upgrades(&sim, &found);
        assert_eq!(
            excluded,
            [
                "kernel-core (kernel* in /etc/dnf/dnf.conf [main])",
                "php-cli (php-?li in /etc/yum.repos.d/remi.repo [remi])"
            ]
        );
        let f = Facts {
            excluded,
            ..facts(sim)
        };
        judge(&f, WEEK).assert_says(Status::Warn, "2 package(s) that exclude= hides from dnf have an upgrade the patch run installs anyway, as its payload does not honour exclude=: kernel-core (kernel* in /etc/dnf/dnf.conf [main]), php-cli (php-?li in /etc/yum.repos.d/remi.repo [remi])");
    }
}
