//! `pkg.lock`: is a package manager busy right now, and for how long?
//!
//! Found without taking any lock — taking one, even for a moment, can make
//! a real patch run fail. fcntl and flock holders come from `/proc/locks`
//! (matched by device and inode) and from `F_GETLK`, which asks the kernel
//! who would block a lock without taking it; pid-file tools (yum, dnf4,
//! zypper) from the pid they wrote and whether that process is alive.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::locks::*;
use std::collections::BTreeMap;
use std::time::Duration;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.lock",
    group: Group::Host,
    title: "Package-manager locks",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "dpkg/apt (`/var/lib/dpkg/lock-frontend`, `lock`, `/var/lib/apt/lists/lock`, `/var/cache/apt/archives/lock`), `apt.systemd.daily` (flock on `/var/lib/apt/daily_lock`), yum (`/var/run/yum.pid`), dnf4 (`/var/lib/dnf/rpmdb_lock.pid`, `/var/cache/dnf/*_lock.pid`), dnf5 (`/run/dnf/rpmtransaction.lock`), rpm (`/var/lib/rpm/.rpm.lock`, `/usr/lib/sysimage/rpm/.rpm.lock`), zypper (`/run/zypp.pid`). Holders come from `/proc/locks`, `F_GETLK` and pid files — **no lock is ever taken**",
        warns: "a process holds a lock (named with its PID, command line and how long it has run); a pid file holds garbage; a lock could not be looked at (not root)",
        fails: "the holder has run longer than `pkg_lock.stuck_after` (30 min): it is probably hung",
        fix: "let it finish; if hung, `kill` it and repair (`dpkg --configure -a`, `yum-complete-transaction --cleanup-only`, …)",
        cannot_see: "a lock file it may not open / lines of `/proc/locks` it cannot parse (flock holders show only there)",
        reports: "`warn` naming each",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    let stuck_after = ctx.settings.pkg_lock.stuck_after;
    crate::checks::blocking(ctx, &ENTRY, ENTRY.id, move || {
        judge(&gather(&root), stuck_after)
    })
}

/// What to run once a stuck holder is gone, per tool.
fn repair_command(tool: &str) -> &'static str {
    match tool {
        "dpkg" | "apt" | "apt.systemd.daily" => "sudo dpkg --configure -a",
        "yum" => "sudo yum-complete-transaction --cleanup-only",
        "dnf" | "dnf5" | "rpm" => "sudo rpm -Va --nofiles --nodigest",
        _ => "sudo zypper verify",
    }
}

/// The verdict from what `gather` found. A holder is a wait (warn) until it
/// has run longer than `stuck_after`, then a failure: the patch run would
/// time out behind it.
pub fn judge(g: &Gathered, stuck_after: Duration) -> Outcome {
    let holders: Vec<&Holder> = g
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::Held(h) => Some(h),
            _ => None,
        })
        .collect();
    if holders.is_empty()
        && g.examined.is_empty()
        && !g.manager_present
        && !g
            .findings
            .iter()
            .any(|f| matches!(f, Finding::Unexamined { .. }))
    {
        return Outcome::skip("no dpkg, rpm, yum, dnf or zypper state was found on this host, so there is no lock to look at");
    }
    let held = held_locks(&holders, stuck_after);
    let (warnings, mut remedies) = unsure(g);
    remedies.splice(0..0, held.remedies);
    remedies.dedup();
    let stale: Vec<String> = g
        .findings
        .iter()
        .filter_map(|f| match f {
            Finding::StalePidFile { path, pid } => {
                Some(format!("{path} names pid {pid}, which is not running"))
            }
            _ => None,
        })
        .collect();

    let mut outcome = if !held.sentences.is_empty() {
        let mut all = held.sentences;
        all.extend(warnings);
        if held.stuck {
            Outcome::fail(all.join("; "), remedies.join(" "))
        } else {
            Outcome::warn(all.join("; "), remedies.join(" "))
        }
    } else if !warnings.is_empty() {
        Outcome::warn(warnings.join("; "), remedies.join(" "))
    } else {
        let mut summary = format!(
            "no package-manager lock is held ({} looked at)",
            g.examined.len()
        );
        if !stale.is_empty() {
            summary.push_str(&format!("; stale pid file ignored: {}", stale.join(", ")));
        }
        Outcome::pass(summary)
    };
    outcome = outcome.detail("examined", g.examined.join(", "));
    if !stale.is_empty() {
        outcome = outcome.detail("stale_pid_files", stale.join("; "));
    }
    if g.bad_proc_lines > 0 {
        outcome = outcome.detail("unreadable_proc_locks_lines", g.bad_proc_lines);
    }
    outcome
}

/// What the held locks say: one sentence and one remedy per process.
struct Held {
    sentences: Vec<String>,
    remedies: Vec<String>,
    /// A holder has run past `stuck_after`.
    stuck: bool,
}

fn held_locks(holders: &[&Holder], stuck_after: Duration) -> Held {
    // The same process usually holds several locks (lock-frontend and lock).
    let mut by_process: BTreeMap<Option<u32>, Vec<&Holder>> = BTreeMap::new();
    for h in holders {
        by_process.entry(h.pid).or_default().push(h);
    }
    let mut said = Held {
        sentences: Vec::new(),
        remedies: Vec::new(),
        stuck: false,
    };
    for (pid, held) in &by_process {
        let paths: Vec<&str> = held.iter().map(|h| h.path.as_str()).collect();
        let tool = held[0].tool;
        let process = held.iter().find_map(|h| h.process.as_ref());
        let (sentence, remedy) = match (pid, process) {
            (Some(pid), Some(p)) => {
                let age = p
                    .running_for
                    .map(|d| format!(", running for {}", format_age(d)))
                    .unwrap_or_default();
                let stuck = p.running_for.is_some_and(|d| d >= stuck_after);
                said.stuck |= stuck;
                (
                    format!(
                        "pid {pid} (`{}`) holds the {tool} lock {}{age}",
                        p.command,
                        paths.join(" and ")
                    ),
                    if stuck {
                        format!(
                            "pid {pid} has held it longer than {} (pkg_lock.stuck_after). See what it is doing with `sudo ps -o pid,etime,args -p {pid}` and `sudo journalctl _PID={pid}`; if it is hung, stop it with `sudo kill {pid}` and repair with `{}`.",
                            format_age(stuck_after),
                            repair_command(tool)
                        )
                    } else {
                        format!(
                            "Let pid {pid} finish before the window opens (watch it with `ps -o pid,etime,args -p {pid}`); a patch run started now would wait for it or fail."
                        )
                    },
                )
            }
            (Some(pid), None) => (
                format!("pid {pid} holds the {tool} lock {}", paths.join(" and ")),
                format!(
                    "See what pid {pid} is with `ps -o pid,etime,args -p {pid}` and let it finish."
                ),
            ),
            (None, _) => (
                format!(
                    "an open-file-description lock, whose owner has no PID, is held on {}",
                    paths.join(" and ")
                ),
                format!(
                    "Find the holder with `sudo lsof {}` and let it finish.",
                    paths.join(" ")
                ),
            ),
        };
        said.sentences.push(sentence);
        said.remedies.push(remedy);
    }
    said
}

/// What kept the check from being sure: garbage pid files, locks it could
/// not open, lines of /proc/locks it could not read. Sentences and remedies.
fn unsure(g: &Gathered) -> (Vec<String>, Vec<String>) {
    let mut warnings = Vec::new();
    let mut remedies = Vec::new();
    for f in &g.findings {
        match f {
            Finding::BadPidFile {
                tool,
                path,
                content,
            } => {
                warnings.push(format!(
                    "{path} holds `{content}`, which is not a process ID"
                ));
                remedies.push(format!(
                    "If no {tool} is running (`pgrep -a {tool}`), remove {path}."
                ));
            }
            Finding::Unexamined { path, why } => {
                warnings.push(format!("could not look at {path}: {why}"));
                remedies.push("Run ssm-preflight as root so it can see every lock.".to_string());
            }
            _ => {}
        }
    }
    if g.bad_proc_lines > 0 {
        // flock holders (apt's daily lock) are seen only in /proc/locks: a
        // line that cannot be read may be one (issue #17).
        warnings.push(format!(
            "{} line(s) of /proc/locks could not be read, and a flock holder (such as apt's daily run) shows only there",
            g.bad_proc_lines
        ));
        remedies.push("Look at the lines with `cat /proc/locks` and the holders with `sudo lsof /var/lib/dpkg/lock-frontend /var/lib/apt/daily_lock /var/run/yum.pid`; report the line to ssm-preflight's maintainers.".to_string());
    }
    (warnings, remedies)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::host::process::ProcessInfo;

    fn holder(pid: u32, path: &str, secs: u64) -> Finding {
        Finding::Held(Holder {
            tool: "dpkg",
            path: path.into(),
            pid: Some(pid),
            process: Some(ProcessInfo {
                pid,
                command: "/usr/bin/python3 /usr/bin/unattended-upgrade".into(),
                running_for: Some(Duration::from_secs(secs)),
            }),
        })
    }

    fn gathered(findings: Vec<Finding>) -> Gathered {
        Gathered {
            findings,
            examined: vec![
                "/var/lib/dpkg/lock-frontend".into(),
                "/var/lib/dpkg/lock".into(),
            ],
            manager_present: true,
            bad_proc_lines: 0,
        }
    }

    const HALF_HOUR: Duration = Duration::from_secs(1800);

    #[test]
    fn nobody_holding_passes() {
        let o = judge(&gathered(vec![]), HALF_HOUR);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.summary, "no package-manager lock is held (2 looked at)");
    }

    #[test]
    fn unreadable_proc_locks_lines_are_not_a_pass() {
        // Issue #17 item 3: a line we could not read may be apt's flock.
        let o = judge(
            &Gathered {
                bad_proc_lines: 2,
                ..gathered(vec![])
            },
            HALF_HOUR,
        );
        o.assert_begins(Status::Warn, "2 line(s) of /proc/locks could not be read");
        assert!(o.remedy.unwrap().contains("cat /proc/locks"));
        assert_eq!(o.details["unreadable_proc_locks_lines"], "2");
    }

    #[test]
    fn a_fresh_holder_is_a_wait_and_one_process_is_named_once() {
        let o = judge(
            &gathered(vec![
                holder(4242, "/var/lib/dpkg/lock-frontend", 192),
                holder(4242, "/var/lib/dpkg/lock", 192),
            ]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Warn);
        assert_eq!(
            o.summary,
            "pid 4242 (`/usr/bin/python3 /usr/bin/unattended-upgrade`) holds the dpkg lock /var/lib/dpkg/lock-frontend and /var/lib/dpkg/lock, running for 3m 12s"
        );
        assert!(o.remedy.unwrap().contains("ps -o pid,etime,args -p 4242"));
    }

    #[test]
    fn a_holder_past_stuck_after_fails_with_the_repair() {
        let o = judge(
            &gathered(vec![holder(4242, "/var/lib/dpkg/lock", 7500)]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("running for 2h 5m"));
        let remedy = o.remedy.unwrap();
        assert!(remedy.contains("sudo kill 4242"), "{remedy}");
        assert!(remedy.contains("sudo dpkg --configure -a"), "{remedy}");
    }

    #[test]
    fn stale_and_garbage_pid_files() {
        let stale = judge(
            &gathered(vec![Finding::StalePidFile {
                path: "/var/run/yum.pid".into(),
                pid: 999,
            }]),
            HALF_HOUR,
        );
        assert_eq!(stale.status, Status::Pass);
        assert!(stale
            .summary
            .contains("/var/run/yum.pid names pid 999, which is not running"));
        let bad = judge(
            &gathered(vec![Finding::BadPidFile {
                tool: "zypper",
                path: "/run/zypp.pid".into(),
                content: "hello".into(),
            }]),
            HALF_HOUR,
        );
        assert_eq!(bad.status, Status::Warn);
        assert!(bad.summary.contains("`hello`, which is not a process ID"));
        assert!(bad.remedy.unwrap().contains("pgrep -a zypper"));
    }

    #[test]
    fn a_lock_that_cannot_be_seen_is_not_a_pass() {
        let o = judge(
            &gathered(vec![Finding::Unexamined {
                path: "/var/lib/apt/daily_lock".into(),
                why: "permission denied".into(),
            }]),
            HALF_HOUR,
        );
        assert_eq!(o.status, Status::Warn);
        assert!(o.remedy.unwrap().contains("as root"));
    }

    #[test]
    fn no_package_manager_is_a_skip() {
        let o = judge(&Gathered::default(), HALF_HOUR);
        assert_eq!(o.status, Status::Skip);
    }
}
