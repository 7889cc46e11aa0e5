//! What the daemon shows of itself: the view `status` reads over the
//! socket, the socket's answers, and systemd's `STATUS=` line.

use crate::checks::Status;
use crate::config::schedule::window::Window;
use crate::daemon::planner::Why;
use crate::run::report::Report;
use crate::run::state::{self, State};
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// What `status` over the socket shows of the daemon itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub pid: u32,
    pub started_at: String,
    pub status: String,
    /// The state machine's state: idle, running, reporting, retry-pending, ….
    pub state: String,
    pub next_run: Option<String>,
    pub next_run_reason: Option<String>,
    pub next_window: Option<Window>,
    /// Why SSM's schedule is not part of the windows, when it is not.
    pub windows_note: Option<String>,
    pub config_error: Option<String>,
    /// Why the state file cannot be written, while it cannot.
    pub state_error: Option<String>,
    /// The next attempt to send the kept report, when one is pending.
    pub next_report_attempt: Option<String>,
    /// The hold of the host's updaters, in a sentence, when there is one.
    pub hold: Option<String>,
}

pub fn describe(why: Why) -> String {
    match why {
        Why::Start => "start-up run".into(),
        Why::Baseline => "baseline run".into(),
        Why::Lead { window, lead } => format!(
            "{} before the window at {window}",
            humantime::format_duration(lead)
        ),
    }
}

/// The socket's answers: `status` for anyone who may connect, `refresh`
/// for root.
pub fn answer(
    view: Arc<Mutex<View>>,
    unsaved: Arc<Mutex<Option<State>>>,
    state_dir: PathBuf,
    refresh: tokio::sync::mpsc::Sender<()>,
    release: tokio::sync::mpsc::Sender<()>,
) -> impl Fn(super::socket::Request) -> String + Send + Sync + 'static {
    move |request| {
        let answer = match request.line.as_str() {
            "status" => {
                // While the file cannot be written, what it should say.
                let state = unsaved
                    .lock()
                    .unwrap()
                    .clone()
                    .or_else(|| state::read(&state_dir).ok());
                serde_json::json!({ "daemon": &*view.lock().unwrap(), "state": state })
            }
            "refresh" if request.root => {
                // A run already asked for and not yet started covers this one.
                let _ = refresh.try_send(());
                serde_json::json!({ "refresh": "a run was started" })
            }
            "refresh" => serde_json::json!({ "error": "only root may ask for a run" }),
            "release" if request.root => {
                let _ = release.try_send(());
                serde_json::json!({ "release": "the daemon ends the hold now" })
            }
            "release" => serde_json::json!({ "error": "only root may end a hold" }),
            other => {
                serde_json::json!({ "error": format!("unknown request `{other}`; ask `status`, `refresh` or `release`") })
            }
        };
        answer.to_string()
    }
}

/// `STATUS=` for systemctl status: the verdict and the next window.
pub fn status_line(report: &Report, next_window: Option<&Window>) -> String {
    let failed: Vec<&str> = report
        .checks
        .iter()
        .filter(|c| c.status == Status::Fail)
        .map(|c| c.id.as_str())
        .collect();
    let verdict = if failed.is_empty() {
        report.verdict.as_str().to_string()
    } else {
        format!("fail ({})", failed.join(", "))
    };
    match next_window {
        Some(w) => format!("last run {verdict}; next window {} ({})", w.start, w.name),
        None => format!("last run {verdict}; no window known"),
    }
}
