//! `ssm-preflight status`: asks the daemon over its socket; when no daemon
//! answers, reads the state file and says so.

use super::cli::{Global, StatusArgs};
use crate::config::units::format_age;
use crate::run::state::{self, DeliveryState, State};
use crate::service::socket;
use std::time::SystemTime;

/// What the daemon's answer to `status` says of itself, and its state.
#[derive(serde::Deserialize)]
struct Answer {
    #[serde(default)]
    daemon: serde_json::Value,
    #[serde(default)]
    state: State,
}

/// The daemon's answer, read straight into the typed state: through a
/// `serde_json::Value` tree and a copy of its `state`, the reading took two
/// thirds of a `status`'s instructions. An answer this build cannot type
/// (a daemon of another version, until it restarts) is still read as far
/// as it goes, as before.
fn read_answer(answer: &str) -> Option<(serde_json::Value, State)> {
    if let Ok(typed) = serde_json::from_str::<Answer>(answer) {
        return Some((typed.daemon, typed.state));
    }
    let v: serde_json::Value = serde_json::from_str(answer).ok()?;
    let state = serde_json::from_value(v["state"].clone()).unwrap_or_default();
    Some((v["daemon"].clone(), state))
}

/// `ssm-preflight hold [--release]`: the hold of the host's updaters, or
/// (root) its end now, confirmed from the daemon's state.
pub fn hold(release: bool) -> anyhow::Result<u8> {
    let path = socket::socket_path();
    if !release {
        let state = match socket::ask(&path, "status") {
            Ok(a) => read_answer(&a).map(|(_, state)| state).unwrap_or_default(),
            Err(_) => state::read(&state::default_dir()).unwrap_or_default(),
        };
        match state.hold.sentence() {
            Some(h) => println!("Updaters: {h}."),
            None => println!("Updaters: no hold, now or before. With remediate.hold_updaters = true the daemon holds them from remediate.hold_before ahead of each window; `ssm-preflight config show` prints this host's settings."),
        }
        return Ok(0);
    }
    match socket::ask(&path, "release") {
        Ok(answer) => {
            let v: serde_json::Value = serde_json::from_str(&answer)?;
            if let Some(e) = v["error"].as_str() {
                anyhow::bail!("the daemon refused: {e} (run `sudo ssm-preflight hold --release`)");
            }
        }
        Err(socket::AskError::Denied(_)) => anyhow::bail!(
            "only root may end a hold: run `sudo ssm-preflight hold --release`"
        ),
        Err(e) => anyhow::bail!(
            "the daemon is not running ({e}), so no hold is kept: a hold's runtime masks are undone with `sudo systemctl unmask --runtime apt-daily.timer apt-daily-upgrade.timer` (the units `ssm-preflight status` listed)"
        ),
    }
    // The daemon acts between its other work: wait (bounded) for the state to say so.
    for _ in 0..50 {
        std::thread::sleep(std::time::Duration::from_millis(200));
        let Ok(answer) = socket::ask(&path, "status") else {
            continue;
        };
        let (_, state) = read_answer(&answer)
            .ok_or_else(|| anyhow::anyhow!("the daemon's answer is not JSON ({answer}): restart it with `sudo systemctl restart ssm-preflight`, then look again with `ssm-preflight status`"))?;
        if state.hold.holding.is_none() {
            println!(
                "{}.",
                state
                    .hold
                    .sentence()
                    .unwrap_or_else(|| "No hold is in force".into())
            );
            return Ok(0);
        }
        if let Some(e) = &state.hold.error {
            anyhow::bail!("the hold could not be ended yet: {e}; the daemon retries, and `ssm-preflight status` shows when it is done");
        }
    }
    anyhow::bail!(
        "the daemon has not ended the hold within 10 s; `ssm-preflight status` shows when it does"
    )
}

pub fn status(_global: &Global, args: &StatusArgs) -> anyhow::Result<u8> {
    let path = socket::socket_path();
    if args.refresh {
        return refresh(&path);
    }
    let answer = socket::ask(&path, "status");
    let denied = matches!(answer, Err(socket::AskError::Denied(_)));
    let (daemon, state) = match answer.ok().as_deref().and_then(read_answer) {
        Some((daemon, state)) => (Some(daemon), state),
        None => match state::read(&state::default_dir()) {
            Ok(state) => (None, state),
            Err(e) if denied || e.io_kind() == Some(std::io::ErrorKind::PermissionDenied) => {
                anyhow::bail!(
                    "the daemon's socket ({}) and state ({}) are for root and the {group} group: run `sudo ssm-preflight status`, or join the group with `sudo usermod -aG {group} $USER` and log in again",
                    path.display(),
                    state::default_dir().join(state::FILE).display(),
                    group = socket::GROUP
                )
            }
            Err(e) => return Err(e.into()),
        },
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(
                &serde_json::json!({ "daemon": daemon, "daemon_running": daemon.is_some(), "state": state })
            )?
        );
        return Ok(0);
    }
    match &daemon {
        Some(d) => print_daemon(d),
        None => {
            println!(
                "Daemon: not running (no answer on {}); showing the state file. Start it with `sudo systemctl start ssm-preflight`.",
                path.display()
            );
            if let Some(h) = state.hold.sentence() {
                println!("Updaters (as last recorded): {h}.");
            }
        }
    }
    print_state(&state);
    Ok(0)
}

/// `status --refresh`: asks the daemon for a run now.
fn refresh(path: &std::path::Path) -> anyhow::Result<u8> {
    match socket::ask(path, "refresh") {
        Ok(answer) => {
            let v: serde_json::Value = serde_json::from_str(&answer)?;
            if let Some(e) = v["error"].as_str() {
                anyhow::bail!("the daemon refused: {e} (run `sudo ssm-preflight status --refresh`)");
            }
            println!("A run was started; `ssm-preflight status` shows it once it ends.");
            Ok(0)
        }
        Err(socket::AskError::Denied(_)) => anyhow::bail!(
            "only root may ask the daemon for a run, and {} is for root and the {} group: run `sudo ssm-preflight status --refresh`",
            path.display(),
            socket::GROUP
        ),
        Err(e) => anyhow::bail!(
            "the daemon is not running ({e}): start it with `sudo systemctl start ssm-preflight`, or run `ssm-preflight check --report`"
        ),
    }
}

/// What the running daemon says of itself.
fn print_daemon(d: &serde_json::Value) {
    println!(
        "Daemon: running (pid {}), {}",
        d["pid"],
        d["status"].as_str().unwrap_or("")
    );
    if let Some(next) = d["next_run"].as_str() {
        println!(
            "Next run: {next} ({})",
            d["next_run_reason"].as_str().unwrap_or("")
        );
    }
    match d["next_window"].as_object() {
        Some(w) => println!(
            "Next window: {} {} (from {})",
            w["start"].as_str().unwrap_or(""),
            super::safe(w["name"].as_str().unwrap_or("")),
            if w["source"] == "ssm" {
                "SSM"
            } else {
                "the config"
            }
        ),
        None => println!("Next window: none known"),
    }
    if let Some(note) = d["windows_note"].as_str() {
        println!("  note: {}", super::safe(note));
    }
    if let Some(e) = d["state_error"].as_str() {
        println!("State: the state file cannot be written, so the last run shown is kept in memory only: {e}. Free space on its filesystem or make it writable; the daemon writes it again by itself.");
    }
    if let Some(e) = d["config_error"].as_str() {
        println!("Config: the last reload was refused and the previous config is in use: {e}");
    }
    if let Some(h) = d["hold"].as_str() {
        println!("Updaters: {h}. End it now with `sudo ssm-preflight hold --release`.");
    }
}

fn print_state(state: &State) {
    if let Some(c) = &state.cleaned {
        println!("Package cache: {}.", c.sentence());
    }
    let Some(run) = &state.last_run else {
        println!(
            "No run recorded in {} yet: run `ssm-preflight check --report`, or start the service.",
            state::default_dir().join(state::FILE).display()
        );
        return;
    };
    let age = humantime::parse_rfc3339(&run.started_at)
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .map(|d| format!(" ({} ago)", format_age(d)))
        .unwrap_or_default();
    println!(
        "Last run: {}{age}, verdict {}",
        run.started_at,
        run.verdict.as_str().to_uppercase()
    );
    for c in &run.checks {
        use crate::checks::Status::*;
        if matches!(c.status, Warn | Fail | Error) {
            println!(
                "  {:<5} {}: {}",
                c.status.as_str(),
                c.id,
                super::safe(&c.summary)
            );
            if let Some(remedy) = &c.remedy {
                println!("        fix: {}", super::safe(remedy));
            }
        }
    }
    if let Some(d) = &state.delivery {
        let line = match d.state {
            DeliveryState::Delivered => format!(
                "reached SSM at {}",
                d.delivered_at.as_deref().unwrap_or("an unknown time")
            ),
            DeliveryState::Pending => format!(
                "kept for a retry after {} attempt(s); last error: {}; next attempt {}",
                d.attempts,
                d.error.as_deref().unwrap_or("unknown"),
                d.next_attempt
                    .as_deref()
                    .unwrap_or("when the daemon or `ssm-preflight report` runs")
            ),
            DeliveryState::Rejected => format!(
                "refused by SSM: {}\n        fix: {}",
                d.error.as_deref().unwrap_or("unknown"),
                d.remedy.as_deref().unwrap_or("see the error")
            ),
            DeliveryState::NotSent => "not sent (the run was not asked to report)".to_string(),
        };
        println!("Report: {line}");
    }
    let verdicts: Vec<&str> = state.history.iter().map(|h| h.verdict.as_str()).collect();
    if !verdicts.is_empty() {
        println!("History (oldest first): {}", verdicts.join(", "));
    }
}

#[cfg(test)]
mod tests {
    use super::read_answer;

    #[test]
    fn the_daemons_answer_is_read_typed_and_as_far_as_it_goes_otherwise() {
        let (daemon, state) = read_answer(
            r#"{"daemon":{"pid":42,"status":"idle"},"state":{"last_run":null,"history":[{"started_at":"2026-12-04T10:00:00Z","verdict":"pass","failed":[]}],"delivery":null,"last_delivered_run":"2026-12-04T10:00:00Z"}}"#,
        )
        .expect("a typed answer");
        assert_eq!(daemon["pid"], 42);
        assert_eq!(state.history.len(), 1);
        assert_eq!(
            state.last_delivered_run.as_deref(),
            Some("2026-12-04T10:00:00Z")
        );

        // A state this build cannot type still says the daemon runs.
        let (daemon, state) =
            read_answer(r#"{"daemon":{"pid":7},"state":{"history":"not a list"}}"#)
                .expect("read as far as it goes");
        assert_eq!(daemon["pid"], 7);
        assert!(state.history.is_empty());

        assert!(read_answer("not json").is_none());
    }
}
