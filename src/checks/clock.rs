//! `clock.sync`: the clock is kept by NTP (timedated) and agrees with AWS's
//! (the `Date` of the ssm endpoint's answer). SigV4 rejects requests signed
//! more than 5 minutes off, so a skewed clock fails every SSM call of the
//! patch run.

use super::common::{bus_outcome, local_skip};
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::systemd::{self, BusError, TimeSync};
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "clock.sync",
    group: Group::Access,
    title: "Clock synchronized",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "timedated over D-Bus (`NTP`, `NTPSynchronized`) and, outside `local` mode, the skew against the `Date` of the ssm endpoint's answer",
        warns: "not synchronized; skew over 60 s",
        fails: "skew over 4 min (SigV4 rejects requests 5 minutes off)",
        fix: "`chronyc makestep`, `timedatectl set-ntp true`",
        cannot_see: "no bus and no skew measured / timedated not on a bus that answers",
        reports: "`skip` / `error`",
    },
};

/// Past this the skew warns; past `SKEW_FAIL` it fails (SigV4 allows 5 minutes).
pub const SKEW_WARN: Duration = Duration::from_secs(60);
pub const SKEW_FAIL: Duration = Duration::from_secs(240);

/// How far our clock is from a server's, measured from its `Date` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skew {
    pub host: String,
    /// Positive: our clock is ahead.
    pub seconds: i64,
}

impl Skew {
    pub fn measure(host: &str, server_date: SystemTime, received: SystemTime) -> Skew {
        let seconds = match received.duration_since(server_date) {
            Ok(ahead) => ahead.as_secs() as i64,
            Err(behind) => -(behind.duration().as_secs() as i64),
        };
        Skew {
            host: host.into(),
            seconds,
        }
    }
}

pub fn plan(ctx: &Context) -> super::Check {
    let mut check = crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let skew = async {
            if local_skip(&ctx).is_some() {
                return None;
            }
            Some(match ctx.probe("ssm").await {
                Err(e) => Err(e.to_string()),
                Ok(p) => match p.result {
                    Err(failure) => Err(format!(
                        "the ssm endpoint did not answer ({failure}); endpoint.ssm says why"
                    )),
                    Ok(answer) => match answer.date {
                        Some(date) => Ok(Skew::measure(&p.target.host, date, answer.received)),
                        None => Err(format!("{} sent no Date header", p.target.host)),
                    },
                },
            })
        };
        let (sync, skew) = tokio::join!(systemd::time_sync(&ctx.shared.bus), skew);
        let (measured, unmeasured) = match &skew {
            Some(Ok(s)) => (Some(s), None),
            Some(Err(why)) => (None, Some(why.as_str())),
            None => (None, None),
        };
        let outcome = judge(&sync, measured);
        match unmeasured {
            // The verdict stands on what could be asked; the summary says
            // the skew is not part of it, and why.
            Some(why) => Outcome {
                summary: format!(
                    "{}; the skew against SSM could not be measured: {why}",
                    outcome.summary
                ),
                ..outcome
            }
            .detail("skew_unmeasured", why),
            None => outcome,
        }
    });
    // It may wait for the ssm endpoint's probe.
    check.info.timeout = check
        .info
        .timeout
        .max(ctx.settings.endpoints.timeout + Duration::from_secs(1));
    check
}

pub fn judge(sync: &Result<TimeSync, BusError>, skew: Option<&Skew>) -> Outcome {
    if let Some(s) = skew {
        let off = Duration::from_secs(s.seconds.unsigned_abs());
        let way = if s.seconds > 0 { "ahead of" } else { "behind" };
        let text = format!(
            "the clock is {} {way} {}'s (its HTTP Date)",
            format_age(off),
            s.host
        );
        let fix = "Set the time now (`sudo chronyc makestep`, or `sudo systemctl restart chronyd`/`systemd-timesyncd`) and keep it synchronized: `sudo timedatectl set-ntp true` (on EC2, chrony with the Amazon Time Sync Service, 169.254.169.123).";
        if off > SKEW_FAIL {
            return Outcome::fail(
                format!("{text}; SigV4 rejects requests more than 5 minutes off"),
                fix,
            )
            .detail("skew_seconds", s.seconds);
        }
        if off > SKEW_WARN {
            return Outcome::warn(format!("{text}; past 5 minutes every SSM call fails"), fix)
                .detail("skew_seconds", s.seconds);
        }
    }
    let with_skew = |o: Outcome| match skew {
        Some(s) => {
            let summary = format!(
                "{}; within {}s of {}'s clock",
                o.summary,
                s.seconds.unsigned_abs(),
                s.host
            );
            Outcome { summary, ..o }.detail("skew_seconds", s.seconds)
        }
        None => o,
    };
    match (sync, skew) {
        (Ok(s), _) => with_skew(judge_sync(s)),
        (Err(e), Some(s)) => Outcome::pass(format!(
            "the clock is within {}s of {}'s",
            s.seconds.unsigned_abs(),
            s.host
        ))
        .detail("skew_seconds", s.seconds)
        .detail("timedated", e.to_string()),
        (Err(e @ BusError::NotOnBus { .. }), None) => Outcome::error(
            e.to_string(),
            "Check that timedated can start: `timedatectl status` asks it the same question.",
        ),
        (Err(e), None) => bus_outcome(e),
    }
}

fn judge_sync(s: &TimeSync) -> Outcome {
    let outcome = match (s.synchronized, s.ntp) {
        (true, _) => Outcome::pass("the system clock is synchronized by NTP"),
        (false, true) => Outcome::warn(
            "NTP is enabled but the system clock is not synchronized yet",
            "See what the time service says: `chronyc tracking` or `timedatectl timesync-status`; check that it can reach its servers (on EC2, 169.254.169.123).",
        ),
        (false, false) if s.can_ntp == Some(false) => Outcome::warn(
            "the system clock is not synchronized and no NTP service is installed (timedated says CanNTP=no)",
            "Install a time service, which `timedatectl set-ntp` cannot do by itself: `sudo apt-get install systemd-timesyncd` (Debian, Ubuntu) or `sudo dnf install chrony` (`yum` on older releases; Amazon Linux, RHEL), then `sudo timedatectl set-ntp true` (on EC2, point chrony at the Amazon Time Sync Service, 169.254.169.123).",
        ),
        (false, false) => Outcome::warn(
            "the system clock is not synchronized and no NTP service is enabled",
            "Enable time synchronization: `sudo timedatectl set-ntp true` (on EC2, point chrony at the Amazon Time Sync Service, 169.254.169.123).",
        ),
    };
    outcome
        .detail("ntp", s.ntp)
        .detail("synchronized", s.synchronized)
        .detail("timezone", &s.timezone)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use std::time::UNIX_EPOCH;

    fn sync(synchronized: bool, ntp: bool) -> Result<TimeSync, BusError> {
        Ok(TimeSync {
            ntp,
            synchronized,
            timezone: "UTC".into(),
            can_ntp: None,
        })
    }

    fn skew(seconds: i64) -> Skew {
        Skew {
            host: "ssm.eu-west-1.amazonaws.com".into(),
            seconds,
        }
    }

    #[test]
    fn ntp_verdicts() {
        assert_eq!(judge(&sync(true, true), None).status, Status::Pass);
        assert_eq!(judge(&sync(false, true), None).status, Status::Warn);
        assert!(judge(&sync(false, false), None)
            .remedy
            .unwrap()
            .contains("sudo timedatectl set-ntp true"));
        // With no NTP service installed, set-ntp cannot work: name the package.
        let mut none = sync(false, false).unwrap();
        none.can_ntp = Some(false);
        let o = judge(&Ok(none), None);
        assert!(
            o.summary.contains("no NTP service is installed"),
            "{}",
            o.summary
        );
        let remedy = o.remedy.unwrap();
        assert!(
            remedy.contains("apt-get install systemd-timesyncd"),
            "{remedy}"
        );
        assert!(remedy.contains("dnf install chrony"), "{remedy}");
    }

    #[test]
    fn skew_thresholds() {
        let small = judge(&sync(true, true), Some(&skew(2)));
        assert_eq!(small.status, Status::Pass);
        assert!(small
            .summary
            .ends_with("within 2s of ssm.eu-west-1.amazonaws.com's clock"));
        let warn = judge(&sync(true, true), Some(&skew(-90)));
        warn.assert_begins(
            Status::Warn,
            "the clock is 1m 30s behind ssm.eu-west-1.amazonaws.com's",
        );
        let fail = judge(&sync(true, true), Some(&skew(301)));
        assert_eq!(fail.status, Status::Fail);
        assert!(fail.summary.contains("5m 1s ahead of"));
        let no_bus = judge(&Err(BusError::NoBus("none".into())), Some(&skew(1)));
        assert_eq!(no_bus.status, Status::Pass);
        assert_eq!(
            judge(&Err(BusError::NoBus("none".into())), None).status,
            Status::Skip
        );
    }

    #[test]
    fn measuring() {
        let t = |s| UNIX_EPOCH + Duration::from_secs(s);
        assert_eq!(Skew::measure("h", t(100), t(160)).seconds, 60);
        assert_eq!(Skew::measure("h", t(160), t(100)).seconds, -60);
    }
}
