//! What the daemon keeps of its newest run (the spool, in memory) and how
//! it reaches the state file, whose writes are retried with backoff while
//! they fail; each check's outcome in the journal; the metrics textfile.

use super::metrics;
use crate::checks::Status;
use crate::config::Settings;
use crate::daemon::machine;
use crate::run::report::Report;
use crate::run::state::{self, Cleaned, Delivery, DeliveryState, State, StateDir, StateError};
use jiff::Timestamp;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The newest run this daemon made, with its delivery: the spool, in memory.
pub struct Spool {
    pub report: Report,
    pub delivery: Delivery,
}

/// The state file as this daemon last wanted it written, and what to do
/// while it cannot be.
pub struct Recorder {
    pub dir: PathBuf,
    /// What the file should say, when the last write failed.
    pub unsaved: Arc<Mutex<Option<State>>>,
    last_error: Option<String>,
    pub retry: Option<(u32, Timestamp)>,
}

impl Recorder {
    pub fn new(dir: PathBuf) -> Recorder {
        Recorder {
            dir,
            unsaved: Arc::new(Mutex::new(None)),
            last_error: None,
            retry: None,
        }
    }

    /// Writes the spool into the state file under its lock (another writer,
    /// `check --report` or `gate`, may have recorded runs meanwhile). The
    /// error, while there is one, is the answer: the view shows it.
    pub fn write(&mut self, spool: &Spool) -> Option<String> {
        match write_spool(&self.dir, spool) {
            Ok(()) => {
                if self.last_error.take().is_some() {
                    tracing::info!(
                        "the state file {} is written again",
                        self.dir.join(state::FILE).display()
                    );
                }
                *self.unsaved.lock().unwrap() = None;
                self.retry = None;
                None
            }
            Err(e) => {
                let text = e.to_string();
                // Once per distinct error: a full /var must not flood the journal.
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::error!("the state is not recorded: {text}; the report is kept in memory and the file is written again later");
                }
                self.last_error = Some(text.clone());
                let mut pending = state::read(&self.dir).unwrap_or_default();
                apply(&mut pending, spool);
                *self.unsaved.lock().unwrap() = Some(pending);
                let attempt = self.retry.map_or(1, |(a, _)| a.saturating_add(1));
                let delay = machine::backoff(
                    attempt,
                    Duration::from_secs(5),
                    Duration::from_secs(300),
                    fastrand::f64(),
                );
                let at = Timestamp::try_from(SystemTime::now() + delay).unwrap_or(Timestamp::MAX);
                self.retry = Some((attempt, at));
                Some(text)
            }
        }
    }

    /// Whether a newer report than `report` (from `check --report`) already
    /// reached SSM: ours would replace it, since COMPLETE uploads replace.
    pub fn newer_delivered(&self, report: &Report) -> bool {
        state::read(&self.dir)
            .ok()
            .and_then(|s| s.last_delivered_run)
            .is_some_and(|d| d > report.started_at)
    }

    /// Records the last clean of the package cache in the state file; a
    /// failure is logged (the run's own record says the rest).
    pub fn record_clean(&self, cleaned: Cleaned) {
        let result = StateDir::open(&self.dir).and_then(|locked| {
            let mut s = locked.load().unwrap_or_default();
            s.cleaned = Some(cleaned);
            locked.save(&s)
        });
        if let Err(e) = result {
            tracing::error!("the package cache's clean is not recorded: {e}");
        }
    }

    /// The last clean, as the state file records it.
    pub fn cleaned(&self) -> Option<Cleaned> {
        state::read(&self.dir).ok().and_then(|s| s.cleaned)
    }
}

/// Puts this daemon's run into a state read from the file.
fn apply(state: &mut State, spool: &Spool) {
    let ours = &spool.report.started_at;
    let run_id = &spool.delivery.run_id;
    let known = state
        .history
        .iter()
        .any(|h| h.run_id.as_ref() == Some(run_id));
    if !known {
        state.record(&spool.report, run_id);
    }
    if state.delivery.as_ref().is_some_and(|d| &d.run_id == run_id) {
        state.delivery = Some(spool.delivery.clone());
    }
    if spool.delivery.state == DeliveryState::Delivered
        && state.last_delivered_run.as_ref().is_none_or(|d| d < ours)
    {
        state.last_delivered_run = Some(ours.clone());
    }
}

fn write_spool(dir: &Path, spool: &Spool) -> Result<(), StateError> {
    let locked = StateDir::open(dir)?;
    let mut state = locked.load().unwrap_or_default();
    apply(&mut state, spool);
    locked.save(&state)
}

/// Writes the metrics textfile, when one is configured; `held` is whether
/// the updaters are held now.
pub fn write_metrics(settings: &Settings, spool: &Spool, held: bool, cleaned: Option<&Cleaned>) {
    let Some(path) = &settings.metrics.textfile else {
        return;
    };
    let remediate = &settings.remediate;
    let remediation = metrics::Remediation {
        updaters_held: remediate.hold_updaters.then_some(held),
        cleaned: cleaned.filter(|_| remediate.clean_package_cache),
    };
    let text = metrics::render(
        &spool.report,
        spool.delivery.delivered_at.as_deref(),
        &remediation,
    );
    if let Err(e) = metrics::write(path, &text) {
        tracing::warn!("cannot write the metrics textfile {}: {e}", path.display());
    }
}

/// A fixed journald MESSAGE_ID per check status, for `journalctl MESSAGE_ID=…`.
pub fn message_id(status: Status) -> &'static str {
    match status {
        Status::Pass => "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e60",
        Status::Warn => "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e61",
        Status::Fail => "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e62",
        Status::Skip => "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e63",
        Status::Error => "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e64",
    }
}

/// Each check's outcome in the journal, with fields to filter on.
pub fn journal(report: &Report) {
    let group = report.host.patch_group.as_deref().unwrap_or("");
    // tracing wants the level as a constant: one arm per level.
    macro_rules! entry {
        ($level:expr, $c:expr) => {
            tracing::event!(
                $level,
                check_id = $c.id.as_str(),
                check_status = $c.status.as_str(),
                patch_group = group,
                message_id = message_id($c.status),
                "{}: {}",
                $c.id,
                crate::text::safe(&$c.summary)
            )
        };
    }
    for c in &report.checks {
        match c.status {
            Status::Fail | Status::Error => entry!(tracing::Level::ERROR, c),
            Status::Warn => entry!(tracing::Level::WARN, c),
            _ => entry!(tracing::Level::INFO, c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Group, Severity};
    use std::sync::{Arc, Mutex};

    /// What the journal would be given, as the fmt layer writes it.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn text_from_ssm_reaches_the_journal_escaped_on_one_line() {
        // A window name or a patch title SSM gave, written to act on a
        // terminal that shows the journal.
        let check = CheckResult {
            id: "patch.sources".into(),
            group: Group::Cloud,
            title: "window".into(),
            status: Status::Warn,
            severity: Severity::Critical,
            summary: "window \u{1b}[2Jprod\u{202e}\nforged line".into(),
            remedy: None,
            details: Default::default(),
            duration_ms: 1,
        };
        let report = Report::new(
            crate::run::report::HostSummary::local(),
            std::time::UNIX_EPOCH,
            std::time::Duration::ZERO,
            vec![check],
        );
        let out = Captured::default();
        let writer = out.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .finish();
        tracing::subscriber::with_default(subscriber, || journal(&report));
        let text = String::from_utf8(out.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(
            text.contains("patch.sources: window \\e[2Jprod\\u{202e}\\nforged line"),
            "{text}"
        );
    }
}
