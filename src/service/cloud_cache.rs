//! The cloud checks' last results, kept between the daemon's runs.

use crate::checks::{CheckResult, Group, Status};
use crate::run::report::Report;
use std::time::{Duration, SystemTime};

/// The cloud checks' last results (how SSM sees the node): the daemon asks
/// SSM for them at most once per `daemon.schedule_cache`, whatever the
/// number of runs (a window's lead runs come minutes apart).
#[derive(Default)]
pub struct CloudCache {
    at: Option<SystemTime>,
    results: Vec<CheckResult>,
}

impl CloudCache {
    /// The results still fresh at `now`, each saying when it was asked.
    pub fn fresh(&self, now: SystemTime, ttl: Duration) -> Vec<CheckResult> {
        match self.at {
            Some(at) if now.duration_since(at).is_ok_and(|age| age < ttl) => {
                let when = humantime::format_rfc3339_seconds(at).to_string();
                self.results
                    .iter()
                    .cloned()
                    .map(|mut r| {
                        r.details.insert("asked_at".into(), when.clone());
                        r.duration_ms = 0;
                        r
                    })
                    .collect()
            }
            _ => Vec::new(),
        }
    }

    /// Keeps a run's cloud results, those SSM answered (an error is asked again).
    pub fn keep(&mut self, now: SystemTime, report: &Report) {
        let results: Vec<_> = report
            .checks
            .iter()
            .filter(|c| c.group == Group::Cloud && c.status != Status::Error)
            .cloned()
            .collect();
        self.at = (!results.is_empty()).then_some(now);
        self.results = results;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::host::mode::Mode;
    use crate::run::report::HostSummary;
    use std::time::UNIX_EPOCH;

    fn result(id: &str, group: Group, status: Status) -> CheckResult {
        CheckResult {
            remedy: None,
            duration_ms: 40,
            ..CheckResult::sample(id, group, status)
        }
    }

    #[test]
    fn cloud_results_are_reused_until_the_schedule_cache_expires() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_800_000_000);
        let host = HostSummary {
            mode: Mode::Ec2,
            instance_id: Some("i-1".into()),
            region: None,
            patch_group: None,
            os: None,
        };
        let report = Report::new(
            host,
            t0,
            Duration::ZERO,
            vec![
                result("ssm.ping", Group::Cloud, Status::Pass),
                result("patch.last_run", Group::Cloud, Status::Error),
                result("disk.root", Group::Host, Status::Pass),
            ],
        );
        let mut cache = CloudCache::default();
        cache.keep(t0, &report);
        let hour = Duration::from_secs(3600);
        let fresh = cache.fresh(t0 + Duration::from_secs(50 * 60), hour);
        // Only the cloud checks SSM answered; an error is asked again.
        assert_eq!(
            fresh.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(),
            ["ssm.ping"]
        );
        assert_eq!(fresh[0].details["asked_at"], "2027-01-15T08:00:00Z");
        assert!(
            cache.fresh(t0 + hour, hour).is_empty(),
            "expired at the hour"
        );
    }
}
