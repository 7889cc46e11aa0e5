//! The service as an explicit state machine. Each transition is a method
//! that names the states it may come from and refuses the others, and one
//! pure function, `next_wake`, says when the service must wake next and
//! why. Retries live here, in memory: the state file records what happened,
//! it never schedules anything, so a state file that cannot be written
//! cannot make the service loop.
//!
//! ```text
//!            start_run              run_done(send_at)
//!   Idle ───────────────▶ Running ─────────────────▶ Reporting{send_at}
//!    ▲  ▲                    │ run_done(None)               │ sent / rejected
//!    │  └────────────────────┘                              ▼
//!    │                 retry_at(attempt, at)              Idle
//!    │          ┌──────────────────────────────┐
//!    └──────────┤ RetryPending{attempt, at}    │◀── Reporting | RetryPending
//!      sent     └──────────────────────────────┘
//!   reload: Idle | Reporting | RetryPending ─▶ Reloading ─▶ (back where it was)
//!   stop: any ─▶ Stopping
//! ```

use jiff::Timestamp;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum State {
    /// Waiting for the next planned run.
    Idle,
    /// The checks are running.
    Running,
    /// A run ended; its report goes to SSM at `send_at` (the fleet jitter).
    Reporting { send_at: Timestamp },
    /// SSM did not take the report; the `attempt`th retry is at `at`.
    RetryPending { attempt: u32, at: Timestamp },
    /// The config is being read again; `resume` is where it was.
    Reloading { resume: Box<State> },
    /// SIGTERM: nothing more starts.
    Stopping,
}

impl State {
    pub fn name(&self) -> &'static str {
        match self {
            State::Idle => "idle",
            State::Running => "running",
            State::Reporting { .. } => "reporting",
            State::RetryPending { .. } => "retry-pending",
            State::Reloading { .. } => "reloading",
            State::Stopping => "stopping",
        }
    }
}

/// A transition asked for from a state it does not start from: a bug in
/// the service loop, reported rather than acted on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the service cannot {transition} while {from}")]
pub struct Refused {
    pub transition: &'static str,
    pub from: &'static str,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Machine {
    state: State,
}

impl Default for Machine {
    fn default() -> Self {
        Machine { state: State::Idle }
    }
}

impl Machine {
    pub fn state(&self) -> &State {
        &self.state
    }

    fn refuse<T>(&self, transition: &'static str) -> Result<T, Refused> {
        Err(Refused {
            transition,
            from: self.state.name(),
        })
    }

    /// A run starts: planned, or asked for. A report still waiting is
    /// superseded — the new run's report is the one that will be sent.
    /// From: Idle, Reporting, RetryPending.
    pub fn start_run(&mut self) -> Result<(), Refused> {
        match self.state {
            State::Idle | State::Reporting { .. } | State::RetryPending { .. } => {
                self.state = State::Running;
                Ok(())
            }
            _ => self.refuse("start a run"),
        }
    }

    /// The run ended; `send_at` is when its report goes to SSM (`None`:
    /// nothing to send, as in local mode). From: Running.
    pub fn run_done(&mut self, send_at: Option<Timestamp>) -> Result<(), Refused> {
        match self.state {
            State::Running => {
                self.state = match send_at {
                    Some(send_at) => State::Reporting { send_at },
                    None => State::Idle,
                };
                Ok(())
            }
            _ => self.refuse("end a run"),
        }
    }

    /// SSM took the report, or refused it for good: nothing to retry.
    /// From: Reporting, RetryPending.
    pub fn report_settled(&mut self) -> Result<(), Refused> {
        match self.state {
            State::Reporting { .. } | State::RetryPending { .. } => {
                self.state = State::Idle;
                Ok(())
            }
            _ => self.refuse("settle a report"),
        }
    }

    /// SSM could not take the report now: try again at `at`. From:
    /// Reporting, RetryPending.
    pub fn retry_at(&mut self, at: Timestamp) -> Result<u32, Refused> {
        match self.state {
            State::Reporting { .. } => {
                self.state = State::RetryPending { attempt: 1, at };
                Ok(1)
            }
            State::RetryPending { attempt, .. } => {
                let attempt = attempt.saturating_add(1);
                self.state = State::RetryPending { attempt, at };
                Ok(attempt)
            }
            _ => self.refuse("schedule a retry"),
        }
    }

    /// SIGHUP: read the config again. From: Idle, Reporting, RetryPending.
    pub fn reload(&mut self) -> Result<(), Refused> {
        match self.state {
            State::Idle | State::Reporting { .. } | State::RetryPending { .. } => {
                let resume = Box::new(std::mem::replace(&mut self.state, State::Idle));
                self.state = State::Reloading { resume };
                Ok(())
            }
            _ => self.refuse("reload"),
        }
    }

    /// The reload ended, taken or refused: back where it was. From: Reloading.
    pub fn reloaded(&mut self) -> Result<(), Refused> {
        match std::mem::replace(&mut self.state, State::Idle) {
            State::Reloading { resume } => {
                self.state = *resume;
                Ok(())
            }
            other => {
                self.state = other;
                self.refuse("end a reload")
            }
        }
    }

    /// SIGTERM. From: any state.
    pub fn stop(&mut self) {
        self.state = State::Stopping;
    }
}

/// Why the service wakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake<W> {
    /// Run the checks (`W` says why: the planner's reason).
    Run(W),
    /// Send the kept report to SSM.
    Send,
    /// Write the state file again, after a write failed.
    WriteState,
    /// Nothing to do: only signals and the socket can wake it.
    Never,
}

/// When and why the service wakes next, from its state, the planner's next
/// run and a pending state-file write. Pure.
pub fn next_wake<W: Copy>(
    state: &State,
    planned: (Timestamp, W),
    write_retry: Option<Timestamp>,
) -> (Timestamp, Wake<W>) {
    let mut best = match state {
        State::Stopping | State::Running | State::Reloading { .. } => (Timestamp::MAX, Wake::Never),
        _ => (planned.0, Wake::Run(planned.1)),
    };
    let send = match state {
        State::Reporting { send_at } => Some(*send_at),
        State::RetryPending { at, .. } => Some(*at),
        _ => None,
    };
    if let Some(at) = send.filter(|at| *at < best.0) {
        best = (at, Wake::Send);
    }
    if !matches!(state, State::Stopping) {
        if let Some(at) = write_retry.filter(|at| *at < best.0) {
            best = (at, Wake::WriteState);
        }
    }
    best
}

/// A retry's delay: `base` doubling per attempt up to `cap`, scaled by
/// 0.5–1.0 (`random` in 0..1) so hosts that failed together do not retry together.
pub fn backoff(attempt: u32, base: Duration, cap: Duration, random: f64) -> Duration {
    let exp = attempt.saturating_sub(1).min(16);
    let full = base.saturating_mul(1 << exp).min(cap);
    full.mul_f64(0.5 + random.clamp(0.0, 1.0) / 2.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn a_run_then_its_report_then_idle() {
        let mut m = Machine::default();
        m.start_run().unwrap();
        assert_eq!(m.state(), &State::Running);
        m.run_done(Some(t("2026-12-01T10:02:00Z"))).unwrap();
        assert!(matches!(m.state(), State::Reporting { .. }));
        assert_eq!(m.retry_at(t("2026-12-01T10:03:00Z")).unwrap(), 1);
        assert_eq!(m.retry_at(t("2026-12-01T10:05:00Z")).unwrap(), 2);
        m.report_settled().unwrap();
        assert_eq!(m.state(), &State::Idle);
    }

    #[test]
    fn transitions_from_the_wrong_state_are_refused() {
        let mut m = Machine::default();
        assert_eq!(
            m.run_done(None).unwrap_err().to_string(),
            "the service cannot end a run while idle"
        );
        assert!(m.report_settled().is_err());
        assert!(m.retry_at(t("2026-12-01T10:00:00Z")).is_err());
        assert!(m.reloaded().is_err());
        m.start_run().unwrap();
        assert!(m.start_run().is_err(), "one run at a time");
        assert!(m.reload().is_err(), "a reload waits for the run");
        m.stop();
        assert!(m.start_run().is_err(), "nothing starts once stopping");
    }

    #[test]
    fn a_reload_returns_where_it_was() {
        let mut m = Machine::default();
        m.start_run().unwrap();
        m.run_done(Some(t("2026-12-01T10:02:00Z"))).unwrap();
        m.retry_at(t("2026-12-01T10:03:00Z")).unwrap();
        let before = m.state().clone();
        m.reload().unwrap();
        assert_eq!(m.state().name(), "reloading");
        m.reloaded().unwrap();
        assert_eq!(m.state(), &before);
    }

    #[test]
    fn a_new_run_supersedes_a_waiting_report() {
        let mut m = Machine::default();
        m.start_run().unwrap();
        m.run_done(Some(t("2026-12-01T10:02:00Z"))).unwrap();
        m.retry_at(t("2026-12-01T11:00:00Z")).unwrap();
        m.start_run().unwrap();
        assert_eq!(m.state(), &State::Running);
    }

    #[test]
    fn the_earliest_reason_wakes_the_service() {
        let plan = (t("2026-12-01T12:00:00Z"), "baseline");
        assert_eq!(
            next_wake(&State::Idle, plan, None),
            (plan.0, Wake::Run("baseline"))
        );
        let retry = State::RetryPending {
            attempt: 2,
            at: t("2026-12-01T10:30:00Z"),
        };
        assert_eq!(
            next_wake(&retry, plan, None),
            (t("2026-12-01T10:30:00Z"), Wake::Send)
        );
        assert_eq!(
            next_wake(&retry, plan, Some(t("2026-12-01T10:10:00Z"))),
            (t("2026-12-01T10:10:00Z"), Wake::WriteState)
        );
        assert_eq!(
            next_wake(&State::Stopping, plan, Some(t("2026-12-01T10:10:00Z"))).1,
            Wake::Never
        );
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let (base, cap) = (Duration::from_secs(30), Duration::from_secs(1800));
        assert_eq!(backoff(1, base, cap, 1.0), Duration::from_secs(30));
        assert_eq!(backoff(2, base, cap, 1.0), Duration::from_secs(60));
        assert_eq!(backoff(3, base, cap, 0.0), Duration::from_secs(60));
        assert_eq!(backoff(u32::MAX, base, cap, 1.0), cap);
    }
}
