//! Freeing the space a patch run needs (`remediate.clean_package_cache`):
//! a `/var` a few hundred MiB short is most often the package cache, which
//! the package manager empties safely. When the disk check of the
//! filesystem that holds the cache warns or fails, the daemon runs the
//! package manager's own clean (`apt-get clean`, `dnf clean packages`,
//! `yum clean packages`, `zypper clean`) — never while any package-manager
//! lock is held (queried, never taken) — and runs that disk check again.

use crate::checks::{CheckResult, Status};
use crate::host::command::CommandError;
use crate::host::{PackageManager, Root};
use crate::run::report::Report;
use crate::run::state::Cleaned;
use std::time::Duration;

/// The journal's MESSAGE_ID for a clean, and for one refused or failed.
pub const MESSAGE_CLEANED: &str = "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e73";
pub const MESSAGE_NOT_CLEANED: &str = "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e74";

/// How long the package manager's clean may take.
const CLEAN_TIMEOUT: Duration = Duration::from_secs(120);

/// Where each package manager keeps its downloaded packages.
pub fn cache_dir(pm: PackageManager) -> &'static str {
    match pm {
        PackageManager::Apt => "/var/cache/apt",
        PackageManager::Dnf => "/var/cache/dnf",
        PackageManager::Yum => "/var/cache/yum",
        PackageManager::Zypper => "/var/cache/zypp",
    }
}

/// The clean, as argv; pointed at `root` when it is not `/` (a fixture).
pub fn argv(pm: PackageManager, root: &Root) -> Vec<String> {
    let other_root = root.dir() != std::path::Path::new("/");
    let r = root.dir().display().to_string();
    let mut v: Vec<String> = match pm {
        PackageManager::Apt => vec!["apt-get".into(), "clean".into()],
        PackageManager::Dnf => vec!["dnf".into(), "clean".into(), "packages".into()],
        PackageManager::Yum => vec!["yum".into(), "clean".into(), "packages".into()],
        PackageManager::Zypper => vec!["zypper".into(), "--non-interactive".into()],
    };
    if other_root {
        match pm {
            PackageManager::Apt => v.extend(["-o".to_string(), format!("Dir={r}")]),
            PackageManager::Dnf | PackageManager::Yum => v.push(format!("--installroot={r}")),
            PackageManager::Zypper => v.extend(["--root".to_string(), r]),
        }
    }
    if pm == PackageManager::Zypper {
        v.push("clean".into());
    }
    v
}

/// What to do about the cache after a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Its filesystem has room, or there is no package manager.
    Nothing,
    /// The cache's filesystem is short, but cleaning now is not safe.
    Refused { check: String, why: String },
    /// Run `argv`, then the check `check` again.
    Clean {
        check: String,
        cache: String,
        argv: Vec<String>,
    },
}

/// The disk check of the filesystem holding `cache`: the one that lists it
/// among its paths, else the one whose mount point is its longest prefix.
fn disk_check<'a>(report: &'a Report, cache: &str) -> Option<&'a CheckResult> {
    let disks = || report.checks.iter().filter(|c| c.id.starts_with("disk."));
    disks()
        .find(|c| {
            c.details
                .get("paths")
                .is_some_and(|p| p.split(", ").any(|x| x == cache))
        })
        .or_else(|| {
            disks()
                .filter_map(|c| {
                    let mp = c.details.get("mount_point")?;
                    let under = cache == mp
                        || mp == "/"
                        || cache.starts_with(&format!("{}/", mp.trim_end_matches('/')));
                    under.then_some((mp.len(), c))
                })
                .max_by_key(|(len, _)| *len)
                .map(|(_, c)| c)
        })
}

/// Pure: whether the run's report calls for a clean, and whether it is safe.
pub fn decide(report: &Report, pm: Option<PackageManager>, root: &Root) -> Decision {
    let Some(pm) = pm else {
        return Decision::Nothing;
    };
    let cache = cache_dir(pm);
    let Some(disk) = disk_check(report, cache) else {
        return Decision::Nothing;
    };
    if !matches!(disk.status, Status::Warn | Status::Fail) {
        return Decision::Nothing;
    }
    if let Some(lock) = report.checks.iter().find(|c| c.id == "pkg.lock") {
        if lock.status != Status::Pass {
            return Decision::Refused {
                check: disk.id.clone(),
                why: format!("pkg.lock is {}: {}", lock.status.as_str(), lock.summary),
            };
        }
    }
    Decision::Clean {
        check: disk.id.clone(),
        cache: cache.to_string(),
        argv: argv(pm, root),
    }
}

fn bytes_free(c: &CheckResult) -> Option<u64> {
    c.details.get("bytes_free")?.parse().ok()
}

/// Runs `argv` with a bound, on the blocking pool.
async fn run_command(argv: Vec<String>) -> Result<(), CommandError> {
    let command = argv.join(" ");
    let done = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = argv[1..].iter().map(String::as_str).collect();
        crate::host::command::run(std::path::Path::new(&argv[0]), &args, CLEAN_TIMEOUT)
            .and_then(|finished| finished.success(&argv.join(" ")))
    })
    .await;
    match done {
        Ok(answer) => answer.map(|_| ()),
        Err(e) => Err(CommandError::Wait {
            command,
            source: std::io::Error::other(e),
        }),
    }
}

/// After a daemon run: cleans when the report calls for it and it is safe,
/// runs the disk check again into the report, and says what happened.
pub async fn after_run(ctx: &crate::checks::Context, report: &mut Report) -> Option<Cleaned> {
    let pm = PackageManager::detect(&ctx.root);

    match decide(report, pm, &ctx.root) {
        Decision::Nothing => None,
        Decision::Refused { check, why } => {
            tracing::warn!(
                message_id = MESSAGE_NOT_CLEANED,
                "{check} is short, but the package cache is not cleaned: {why}"
            );
            Some(Cleaned::not_done(check, None, why))
        }
        Decision::Clean { check, cache, argv } => {
            // Asked again right before: a lock taken since the run counts.
            let held: Vec<String> = crate::host::locks::gather(&ctx.root)
                .findings
                .iter()
                .filter_map(|f| match f {
                    crate::host::locks::Finding::Held(h) => {
                        Some(format!("{} ({})", h.path, h.tool))
                    }
                    _ => None,
                })
                .collect();
            if !held.is_empty() {
                let why = format!("a package-manager lock is held: {}", held.join(", "));
                tracing::warn!(
                    message_id = MESSAGE_NOT_CLEANED,
                    "{check} is short, but the package cache is not cleaned: {why}"
                );
                return Some(Cleaned::not_done(check, None, why));
            }
            let before = report
                .checks
                .iter()
                .find(|c| c.id == check)
                .and_then(bytes_free);
            let command = argv.join(" ");
            if let Err(e) = run_command(argv).await {
                tracing::error!(message_id = MESSAGE_NOT_CLEANED, "cleaning {cache}: {e}");
                return Some(Cleaned::not_done(check, Some(command), e.to_string()));
            }
            let again = crate::run::run_checks(ctx, std::slice::from_ref(&check))
                .await
                .ok();
            let mut after = None;
            if let Some(mut r) = again.and_then(|r| r.checks.into_iter().find(|c| c.id == check)) {
                after = Some(r.clone());
                r.details.insert("cleaned_with".into(), command.clone());
                if let Some(slot) = report.checks.iter_mut().find(|c| c.id == check) {
                    *slot = r;
                }
                report.verdict = crate::run::report::Verdict::of(&report.checks);
            }
            let freed = match (before, after.as_ref().and_then(bytes_free)) {
                (Some(b), Some(a)) => Some(a.saturating_sub(b)),
                _ => None,
            };
            let cleaned = Cleaned {
                at: jiff::Timestamp::now().to_string(),
                check,
                command: Some(command),
                freed_bytes: freed,
                status_after: after.map(|a| a.status.as_str().to_string()),
                error: None,
            };
            tracing::info!(
                message_id = MESSAGE_CLEANED,
                "package cache {cache}: {}",
                cleaned.sentence()
            );
            Some(cleaned)
        }
    }
}

/// What the daemon would do, for `check` (a dry run).
pub fn dry_run(report: &Report, root: &Root) -> String {
    match decide(report, PackageManager::detect(root), root) {
        Decision::Nothing => "Remediate (dry run): the package cache's filesystem has room: nothing would be cleaned.".into(),
        Decision::Refused { check, why } => format!("Remediate (dry run): {check} is short, but the daemon would not clean the package cache now: {why}."),
        Decision::Clean { check, cache, argv } => format!("Remediate (dry run): {check} is short and holds {cache}: the daemon would run `{}` and check again.", argv.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{Group, Severity};
    use crate::run::report::HostSummary;
    use std::collections::BTreeMap;

    fn result(id: &str, status: Status, details: &[(&str, &str)]) -> CheckResult {
        CheckResult {
            id: id.into(),
            group: Group::Host,
            title: id.into(),
            status,
            severity: Severity::Critical,
            summary: format!("{id} says so"),
            remedy: None,
            details: details
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            duration_ms: 1,
        }
    }

    fn report(checks: Vec<CheckResult>) -> Report {
        let host = HostSummary::local();
        Report::new(host, std::time::UNIX_EPOCH, Duration::ZERO, checks)
    }

    #[test]
    fn a_short_cache_filesystem_is_cleaned_unless_a_lock_is_held() {
        let root = Root::new("/");
        let var = |s| {
            result(
                "disk.var",
                s,
                &[
                    ("mount_point", "/var"),
                    ("paths", "/var, /var/cache/apt, /var/lib/amazon"),
                ],
            )
        };
        let free = report(vec![
            var(Status::Pass),
            result("pkg.lock", Status::Pass, &[]),
        ]);
        assert_eq!(
            decide(&free, Some(PackageManager::Apt), &root),
            Decision::Nothing
        );
        let short = report(vec![
            var(Status::Warn),
            result("pkg.lock", Status::Pass, &[]),
        ]);
        assert_eq!(
            decide(&short, Some(PackageManager::Apt), &root),
            Decision::Clean {
                check: "disk.var".into(),
                cache: "/var/cache/apt".into(),
                argv: vec!["apt-get".into(), "clean".into()]
            }
        );
        let locked = report(vec![
            var(Status::Fail),
            result("pkg.lock", Status::Warn, &[]),
        ]);
        assert!(matches!(
            decide(&locked, Some(PackageManager::Apt), &root),
            Decision::Refused { .. }
        ));
        assert_eq!(decide(&short, None, &root), Decision::Nothing);
    }

    #[test]
    fn the_cache_s_filesystem_by_mount_point_when_no_path_names_it() {
        let root = Root::new("/");
        let r = report(vec![
            result(
                "disk.root",
                Status::Pass,
                &[("mount_point", "/"), ("paths", "/")],
            ),
            result(
                "disk.var",
                Status::Fail,
                &[("mount_point", "/var"), ("paths", "/var")],
            ),
        ]);
        assert!(
            matches!(decide(&r, Some(PackageManager::Zypper), &root), Decision::Clean { ref check, .. } if check == "disk.var")
        );
    }

    #[test]
    fn commands_point_at_a_fixture_root() {
        let fixture = Root::new("/tmp/root");
        assert_eq!(
            argv(PackageManager::Apt, &fixture),
            ["apt-get", "clean", "-o", "Dir=/tmp/root"]
        );
        assert_eq!(
            argv(PackageManager::Dnf, &Root::new("/")),
            ["dnf", "clean", "packages"]
        );
        assert_eq!(
            argv(PackageManager::Zypper, &fixture),
            [
                "zypper",
                "--non-interactive",
                "--root",
                "/tmp/root",
                "clean"
            ]
        );
    }
}
