//! `pkg.state`: a package database left half-way by an interrupted run.
//! dpkg keeps its journal in `/var/lib/dpkg/updates` and marks packages
//! `half-configured`/`half-installed` in its status file; yum leaves
//! `transaction-all.*` files. Any of these makes the next patch run fail
//! until it is repaired.
//!
//! It also lists the automatic-update timers (`apt-daily-upgrade.timer`,
//! `dnf-automatic.timer`, …) and when each next fires: an unattended
//! upgrade that starts inside the maintenance window takes the lock the
//! patch run needs (`fires_within` judges that against a window).

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::pkg_state::*;
use std::time::{SystemTime, UNIX_EPOCH};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.state",
    group: Group::Host,
    title: "Package database state",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "dpkg's journal `/var/lib/dpkg/updates`, package states in `/var/lib/dpkg/status`, yum's `transaction-all.*`; the automatic-update timers (`apt-daily.timer`, `apt-daily-upgrade.timer`, `dnf-automatic*.timer`, …) and when each next fires (`details`: `timer.<name>`)",
        warns: "yum left an unfinished transaction; an update timer next fires inside an upcoming window (`[[window]]`, or SSM's in the daemon with its length from `ssm:GetMaintenanceWindow`; a window of unknown length counts as 4 h), where it would hold the lock the patch run needs",
        fails: "dpkg was interrupted, or packages are `half-configured`/`half-installed` — unless a live process holds dpkg's lock: that is dpkg at work (an install in progress, such as this package's own), a warning naming the process",
        fix: "`sudo dpkg --configure -a`, `sudo apt-get -f install`; `yum-complete-transaction --cleanup-only`; move the timer out of the window or disable it",
        cannot_see: "dpkg's or yum's state it may not read / the update timers (no bus) with a window ahead",
        reports: "`warn` naming the files and the error / `warn` naming the window",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx2| async move {
        let root = ctx2.root.clone();
        let files = tokio::task::spawn_blocking(move || gather(&root));
        let (files, timers) = tokio::join!(files, timers(&ctx2.shared.bus));
        let mut facts = match files {
            Ok(f) => f,
            Err(e) => {
                return Outcome::error(
                    format!("cannot read the package database: {e}"),
                    "This is a bug in ssm-preflight: report it.",
                )
            }
        };
        match timers {
            Ok(t) => facts.timers = t,
            Err(e) => facts.timers_unknown = Some(e.to_string()),
        }
        let windows = ctx2.upcoming_windows();
        judge_with_windows(&facts, &windows)
    })
}

/// `judge`, then: an update timer that next fires inside an upcoming
/// window warns, since its run would hold the lock the patch run needs.
pub fn judge_with_windows(
    f: &Facts,
    windows: &[crate::config::schedule::window::Window],
) -> Outcome {
    let outcome = judge(f);
    if let Some(why) = &f.timers_unknown {
        return timers_not_read(outcome, why, windows);
    }
    let mut clashes = Vec::new();
    for t in &f.timers {
        let Some(next) = t.next else { continue };
        for w in windows {
            let Some((start, end)) = w.span() else {
                continue;
            };
            if fires_within(next, start, end) {
                clashes.push((t, w));
            }
        }
    }
    let Some((timer, window)) = clashes.first() else {
        return outcome;
    };
    let when = humantime::format_rfc3339_seconds(timer.next.unwrap_or(UNIX_EPOCH));
    let summary = format!(
        "{} next fires at {when}, inside the window {} (from {}), and would hold the package lock the patch run needs",
        timer.name, window.name, window.start
    );
    let remedy = format!(
        "Move it out of the window (`sudo systemctl edit {name}`: under [Timer], `OnCalendar=` then a time outside the window) or let Patch Manager do the updating: `sudo systemctl disable --now {name}`.",
        name = timer.name
    );
    let merged = if outcome.status == super::Status::Pass {
        Outcome::warn(summary, remedy)
    } else {
        Outcome {
            summary: format!("{}; {summary}", outcome.summary),
            remedy: Some(format!(
                "{} {remedy}",
                outcome.remedy.clone().unwrap_or_default()
            )),
            ..outcome.clone()
        }
    };
    Outcome {
        details: outcome.details,
        ..merged
    }
}

/// The update timers could not be listed: with a window ahead, whether one
/// fires inside it is unknown, which is not a pass (issue #17); with none,
/// there is nothing to judge them against.
fn timers_not_read(
    outcome: Outcome,
    why: &str,
    windows: &[crate::config::schedule::window::Window],
) -> Outcome {
    let outcome = outcome.detail("timers", format!("not known: {why}"));
    let Some(window) = windows.first() else {
        return outcome;
    };
    if outcome.status != super::Status::Pass {
        return outcome;
    }
    let details = outcome.details.clone();
    let warned = Outcome::warn(
        format!(
            "{}, but the automatic-update timers could not be listed ({why}), so whether one fires inside the window {} (from {}) and takes the package lock is not known",
            outcome.summary, window.name, window.start
        ),
        "Run `systemctl list-timers 'apt-daily*' 'dnf-automatic*' 'yum-cron*' 'unattended-upgrades*'` and move any that fires in the window (`sudo systemctl edit <timer>`), or run ssm-preflight where the system bus answers.",
    );
    Outcome { details, ..warned }
}

/// Whether a timer's next firing falls inside a window `[start, end)`.
pub fn fires_within(next: SystemTime, start: SystemTime, end: SystemTime) -> bool {
    start <= next && next < end
}

pub fn judge(f: &Facts) -> Outcome {
    let mut outcome = judge_database(f);
    for t in &f.timers {
        let when = t
            .next
            .map(|n| humantime::format_rfc3339_seconds(n).to_string())
            .unwrap_or_else(|| "not scheduled".into());
        outcome = outcome.detail(&format!("timer.{}", t.name), when);
    }
    outcome
}

/// dpkg's journal (or half-configured packages) while a live process holds
/// its lock.
fn dpkg_at_work(f: &Facts, holder: &crate::host::locks::Holder) -> Outcome {
    // Journal entries (or half-configured packages) while a live process
    // holds dpkg's lock: dpkg at work, not dpkg interrupted.
    let who = match &holder.process {
        Some(p) => format!("pid {} (`{}`)", p.pid, p.command),
        None => holder
            .pid
            .map_or("a process".to_string(), |pid| format!("pid {pid}")),
    };
    let pid = holder.pid.map(|p| p.to_string()).unwrap_or_default();
    Outcome::warn(
        format!(
            "dpkg is installing right now: {who} holds {}, so the {} journal entries in /var/lib/dpkg/updates are its work in progress, not an interruption",
            holder.path,
            f.dpkg_journal.len()
        ),
        format!("Let it finish (`ps -p {pid} -o etime,args` shows it), then run `ssm-preflight check` again; pkg.lock fails if it holds the lock past pkg_lock.stuck_after."),
    )
    .detail("holder", who)
    .detail("journal_entries", f.dpkg_journal.len())
}

fn judge_database(f: &Facts) -> Outcome {
    if !f.dpkg_present && !f.yum_present {
        return Outcome::skip(
            "neither dpkg nor yum keeps state on this host; dnf and zypper leave no interrupted-transaction marker to look at",
        );
    }
    if let (Some(holder), true) = (
        &f.dpkg_holder,
        !f.dpkg_journal.is_empty() || !f.dpkg_unfinished.is_empty(),
    ) {
        return dpkg_at_work(f, holder);
    }
    if !f.dpkg_journal.is_empty() {
        return Outcome::fail(
            format!(
                "dpkg was interrupted: {} journal entries wait in /var/lib/dpkg/updates, and apt refuses to install until they are replayed",
                f.dpkg_journal.len()
            ),
            "Run `sudo dpkg --configure -a`, then `sudo apt-get -f install`.",
        )
        .detail("journal_entries", f.dpkg_journal.len());
    }
    if !f.dpkg_unfinished.is_empty() {
        let listed: Vec<String> = f
            .dpkg_unfinished
            .iter()
            .take(5)
            .map(|(n, s)| format!("{n} ({s})"))
            .collect();
        let more = f.dpkg_unfinished.len().saturating_sub(5);
        let more = if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        };
        return Outcome::fail(
            format!(
                "{} package(s) are not fully installed: {}{more}",
                f.dpkg_unfinished.len(),
                listed.join(", ")
            ),
            "Run `sudo dpkg --configure -a`, then `sudo apt-get -f install`, and check `dpkg --audit` comes back empty.",
        )
        .detail("unfinished", f.dpkg_unfinished.iter().map(|(n, s)| format!("{n}:{s}")).collect::<Vec<_>>().join(" "));
    }
    if !f.yum_unfinished.is_empty() {
        return Outcome::warn(
            format!(
                "yum left {} unfinished transaction(s) in /var/lib/yum ({})",
                f.yum_unfinished.len(),
                f.yum_unfinished.join(", ")
            ),
            "Run `sudo yum-complete-transaction --cleanup-only` (package yum-utils), then `sudo yum check`.",
        );
    }
    if !f.unreadable.is_empty() {
        return Outcome::warn(
            format!("could not read {}", f.unreadable.join(" and ")),
            "Run ssm-preflight as root so it can read the package database.",
        );
    }
    let what = match (f.dpkg_present, f.yum_present) {
        (true, true) => "dpkg and yum",
        (true, false) => "dpkg",
        _ => "yum",
    };
    Outcome::pass(format!("the {what} database shows no interrupted run"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use std::time::Duration;

    #[test]
    fn verdicts() {
        let clean = Facts {
            dpkg_present: true,
            ..Default::default()
        };
        assert_eq!(judge(&clean).status, Status::Pass);
        let journal = Facts {
            dpkg_present: true,
            dpkg_journal: vec!["0000".into()],
            ..Default::default()
        };
        let o = judge(&journal);
        assert_eq!(o.status, Status::Fail);
        assert!(o.remedy.unwrap().contains("sudo dpkg --configure -a"));
        let yum = Facts {
            yum_present: true,
            yum_unfinished: vec!["transaction-all.2024-01-01.12:00.01".into()],
            ..Default::default()
        };
        assert_eq!(judge(&yum).status, Status::Warn);
        assert_eq!(judge(&Facts::default()).status, Status::Skip);
    }

    #[test]
    fn timers_are_listed_with_their_next_firing() {
        let at = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let f = Facts {
            dpkg_present: true,
            timers: vec![Timer {
                name: "apt-daily-upgrade.timer".into(),
                next: Some(at),
            }],
            ..Default::default()
        };
        let o = judge(&f);
        assert_eq!(
            o.details["timer.apt-daily-upgrade.timer"],
            "2027-01-15T08:00:00Z"
        );
    }

    /// A four-hour window at 02:00 UTC on 13 December 2026.
    fn production_window() -> crate::config::schedule::window::Window {
        crate::config::schedule::window::Window {
            start: "2026-12-13T02:00:00Z".into(),
            name: "production-linux".into(),
            source: "config".into(),
            window_id: None,
            duration_secs: Some(4 * 3600),
        }
    }

    #[test]
    fn a_timer_firing_inside_the_next_window_warns() {
        let window = production_window();
        let at = |s: &str| SystemTime::from(s.parse::<jiff::Timestamp>().unwrap());
        let facts = |next: &str| Facts {
            dpkg_present: true,
            timers: vec![Timer {
                name: "apt-daily-upgrade.timer".into(),
                next: Some(at(next)),
            }],
            ..Default::default()
        };
        let inside = judge_with_windows(
            &facts("2026-12-13T02:14:00Z"),
            std::slice::from_ref(&window),
        );
        inside.assert_begins(Status::Warn, "apt-daily-upgrade.timer next fires at 2026-12-13T02:14:00Z, inside the window production-linux");
        assert!(inside
            .remedy
            .unwrap()
            .contains("sudo systemctl disable --now apt-daily-upgrade.timer"));
        assert_eq!(
            inside.details["timer.apt-daily-upgrade.timer"],
            "2026-12-13T02:14:00Z"
        );
        let after = judge_with_windows(&facts("2026-12-13T06:14:00Z"), &[window]);
        assert_eq!(after.status, Status::Pass);
    }

    #[test]
    fn timers_that_could_not_be_listed_warn_before_a_window() {
        // Issue #17 item 7: no bus is not "no timer fires in the window".
        let window = production_window();
        let f = Facts {
            dpkg_present: true,
            timers_unknown: Some("there is no system D-Bus".into()),
            ..Default::default()
        };
        let o = judge_with_windows(&f, std::slice::from_ref(&window));
        o.assert_says(
            Status::Warn,
            "timers could not be listed (there is no system D-Bus)",
        );
        assert!(o.summary.contains("production-linux"), "{}", o.summary);
        assert_eq!(o.details["timers"], "not known: there is no system D-Bus");
        // With no window ahead there is nothing to judge them against.
        let none = judge_with_windows(&f, &[]);
        assert_eq!(none.status, Status::Pass);
        assert_eq!(
            none.details["timers"],
            "not known: there is no system D-Bus"
        );
    }

    #[test]
    fn a_timer_inside_a_window() {
        let t = |s: u64| UNIX_EPOCH + Duration::from_secs(s);
        assert!(fires_within(t(100), t(100), t(200)));
        assert!(fires_within(t(199), t(100), t(200)));
        assert!(!fires_within(t(200), t(100), t(200)));
        assert!(!fires_within(t(99), t(100), t(200)));
    }
}
