//! When the daemon runs the checks: a baseline every `interval` (each one
//! jittered by up to a tenth of it, so a fleet drifts apart), and a run at
//! each lead time before every upcoming window. A lead run is owed when no
//! run has happened since its instant; one owed in the past (the daemon
//! started late) is due at once. Pure: `now` is always given.

use jiff::{SignedDuration, Timestamp};
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// The daemon started.
    Start,
    Baseline,
    /// `lead` before the window starting at `window`.
    Lead {
        window: Timestamp,
        lead: Duration,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Planner {
    interval: Duration,
    leads: Vec<Duration>,
    last_run: Option<Timestamp>,
    next_baseline: Option<Timestamp>,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// `t + d`, or the last representable instant: never a panic, whatever the
/// settings say.
fn after(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(signed(d)).unwrap_or(Timestamp::MAX)
}

/// `t - d`, or the first representable instant.
fn before(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(signed(d)).unwrap_or(Timestamp::MIN)
}

impl Planner {
    pub fn new(interval: Duration, leads: Vec<Duration>) -> Planner {
        Planner {
            interval,
            leads,
            last_run: None,
            next_baseline: None,
        }
    }

    /// The settings changed (a reload): keep what has run.
    pub fn reconfigure(&mut self, interval: Duration, leads: Vec<Duration>) {
        if interval != self.interval {
            self.next_baseline = self.last_run.map(|l| after(l, interval));
        }
        self.interval = interval;
        self.leads = leads;
    }

    /// The next run: when and why. `windows` are upcoming window starts.
    pub fn next(&self, now: Timestamp, windows: &[Timestamp]) -> (Timestamp, Why) {
        let Some(last) = self.last_run else {
            return (now, Why::Start);
        };
        let mut best = (
            self.next_baseline.unwrap_or(after(last, self.interval)),
            Why::Baseline,
        );
        for &window in windows.iter().filter(|w| **w > now) {
            for &lead in &self.leads {
                let at = before(window, lead);
                if at > last {
                    let due = at.max(now);
                    if due < best.0 {
                        best = (due, Why::Lead { window, lead });
                    }
                }
            }
        }
        best
    }

    /// A run happened at `at`; `random` in 0..1 picks the next baseline's jitter.
    pub fn ran(&mut self, at: Timestamp, why: Why, random: f64) {
        self.last_run = Some(at);
        if matches!(why, Why::Baseline | Why::Start) || self.next_baseline.is_none() {
            let jitter = self.interval.mul_f64(random.clamp(0.0, 1.0) / 10.0);
            self.next_baseline = Some(after(at, self.interval.saturating_add(jitter)));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::schedule::{next_starts, Schedule};

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const HOUR: Duration = Duration::from_secs(3600);

    /// Drives the planner through time with the given windows and returns
    /// every run instant with its reason.
    fn simulate(
        start: Timestamp,
        end: Timestamp,
        windows: &[Timestamp],
        interval: Duration,
    ) -> Vec<(Timestamp, Why)> {
        let mut p = Planner::new(interval, vec![HOUR, Duration::from_secs(600)]);
        let mut now = start;
        let mut runs = Vec::new();
        loop {
            let upcoming: Vec<Timestamp> = windows.iter().copied().filter(|w| *w > now).collect();
            let (due, why) = p.next(now, &upcoming);
            if due > end {
                break;
            }
            now = due;
            runs.push((now, why));
            p.ran(now, why, 0.0);
        }
        runs
    }

    #[test]
    fn a_month_of_the_guides_phased_plan() {
        // dev, staging and production windows: 1st, 2nd and 3rd Sunday at 02:00 UTC.
        let tz = jiff::tz::TimeZone::UTC;
        let from = t("2026-02-01T03:00:00Z");
        let end = t("2026-03-01T03:00:00Z");
        let mut windows = Vec::new();
        for nth in 1..=3 {
            let s = Schedule::parse(&format!("cron(0 2 ? * SUN#{nth} *)")).unwrap();
            windows.extend(
                next_starts(&s, &tz, 0, from, 2)
                    .into_iter()
                    .filter(|w| *w <= end),
            );
        }
        windows.sort();
        // 1 Feb 2026 is a Sunday: dev's February window is just before `from`.
        assert_eq!(
            windows,
            [
                t("2026-02-08T02:00:00Z"),
                t("2026-02-15T02:00:00Z"),
                t("2026-03-01T02:00:00Z")
            ]
        );

        let runs = simulate(from, end, &windows, 6 * HOUR);
        let leads: Vec<String> = runs
            .iter()
            .filter_map(|(at, why)| match why {
                Why::Lead { window, lead } => {
                    Some(format!("{at} = {}m before {window}", lead.as_secs() / 60))
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            leads,
            [
                "2026-02-08T01:00:00Z = 60m before 2026-02-08T02:00:00Z",
                "2026-02-08T01:50:00Z = 10m before 2026-02-08T02:00:00Z",
                "2026-02-15T01:00:00Z = 60m before 2026-02-15T02:00:00Z",
                "2026-02-15T01:50:00Z = 10m before 2026-02-15T02:00:00Z",
                "2026-03-01T01:00:00Z = 60m before 2026-03-01T02:00:00Z",
                "2026-03-01T01:50:00Z = 10m before 2026-03-01T02:00:00Z",
            ]
        );
        // Baselines: at start, then every six hours from the last baseline,
        // lead runs in between changing nothing.
        let baselines: Vec<Timestamp> = runs
            .iter()
            .filter(|(_, w)| !matches!(w, Why::Lead { .. }))
            .map(|(at, _)| *at)
            .collect();
        let expected: Vec<Timestamp> = (0..=112)
            .map(|k| from + SignedDuration::from_hours(6 * k))
            .collect();
        assert_eq!(baselines, expected, "28 days: 112 intervals of 6 h");
        assert_eq!(runs.len(), 113 + 6);
    }

    #[test]
    fn a_late_start_owes_the_missed_lead_run_at_once() {
        let mut p = Planner::new(6 * HOUR, vec![HOUR, Duration::from_secs(600)]);
        let now = t("2026-03-08T01:30:00Z");
        let window = t("2026-03-08T02:00:00Z");
        assert_eq!(p.next(now, &[window]), (now, Why::Start));
        p.ran(now, Why::Start, 0.0);
        // The 60-minute lead (01:00) was covered by no run before 01:30, but the
        // start run at 01:30 is after it; the 10-minute lead is next.
        assert_eq!(p.next(now, &[window]).0, t("2026-03-08T01:50:00Z"));
    }

    #[test]
    fn baselines_are_jittered_by_up_to_a_tenth() {
        let mut p = Planner::new(6 * HOUR, vec![]);
        let now = t("2026-03-01T00:00:00Z");
        p.ran(now, Why::Start, 1.0);
        assert_eq!(p.next(now, &[]).0, t("2026-03-01T06:36:00Z"));
        p.ran(now, Why::Start, 0.5);
        assert_eq!(p.next(now, &[]).0, t("2026-03-01T06:18:00Z"));
    }

    /// Whatever the durations and instants, the planner answers and never
    /// panics: time arithmetic saturates at the ends of time.
    #[test]
    fn extreme_durations_and_instants_never_panic() {
        let mut rng = fastrand::Rng::with_seed(7);
        let durations = [
            Duration::ZERO,
            Duration::from_secs(60),
            Duration::from_secs(7 * 86_400),
            Duration::from_secs(u64::MAX / 4),
            Duration::MAX,
        ];
        let instants = [
            Timestamp::MIN,
            Timestamp::UNIX_EPOCH,
            t("2026-12-01T00:00:00Z"),
            Timestamp::MAX,
        ];
        for _ in 0..2000 {
            let pick = |rng: &mut fastrand::Rng| durations[rng.usize(..durations.len())];
            let at = |rng: &mut fastrand::Rng| instants[rng.usize(..instants.len())];
            let mut p = Planner::new(pick(&mut rng), vec![pick(&mut rng), pick(&mut rng)]);
            let now = at(&mut rng);
            let windows = [at(&mut rng), at(&mut rng)];
            let (due, why) = p.next(now, &windows);
            p.ran(due, why, rng.f64());
            p.reconfigure(pick(&mut rng), vec![pick(&mut rng)]);
            let _ = p.next(at(&mut rng), &windows);
        }
    }
}
