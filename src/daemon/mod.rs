//! `ssm-preflight daemon`, the service: runs the checks when the planner
//! says (a jittered baseline and lead times before each window), records
//! and reports each run, retries a kept report with backoff, answers the
//! status socket, and speaks sd_notify (READY, STATUS, WATCHDOG, STOPPING).
//! SIGHUP reloads the config (a bad one is refused and the old one kept);
//! SIGTERM stops at once, a run in progress included (state writes are
//! atomic, so nothing is left half-written).

pub mod planner;
pub mod socket;
pub mod timer;

use crate::app::{deliver_last, new_run_id, prepare, run_checks, Prepared};
use crate::checks::Status;
use crate::cli::Global;
use crate::report::state::{self, DeliveryState, StateDir};
use crate::report::Report;
use crate::schedule::windows::{self, Window};
use jiff::Timestamp;
use planner::{Planner, Why};
use sd_notify::NotifyState;
use serde::Serialize;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, SignalKind};

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
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

/// What `status` over the socket shows of the daemon itself.
#[derive(Debug, Clone, Default, Serialize)]
pub struct View {
    pub pid: u32,
    pub started_at: String,
    pub status: String,
    pub next_run: Option<String>,
    pub next_run_reason: Option<String>,
    pub next_window: Option<Window>,
    /// Why SSM's schedule is not part of the windows, when it is not.
    pub windows_note: Option<String>,
    pub config_error: Option<String>,
}

fn notify(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::debug!("sd_notify: {e}");
    }
}

fn describe(why: Why) -> String {
    match why {
        Why::Start => "start-up run".into(),
        Why::Baseline => "baseline run".into(),
        Why::Lead { window, lead } => format!(
            "{} before the window at {window}",
            humantime::format_duration(lead)
        ),
    }
}

/// SSM's schedule, cached for `daemon.schedule_cache`.
struct WindowCache {
    fetched: Option<SystemTime>,
    from_ssm: Vec<Window>,
    note: Option<String>,
}

pub fn run(global: &Global) -> anyhow::Result<u8> {
    let prepared = prepare(global)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(serve(global, prepared))?;
    rt.shutdown_background();
    Ok(code)
}

async fn serve(global: &Global, mut prepared: Prepared) -> anyhow::Result<u8> {
    let state_dir = state::default_dir();
    // Fail early and clearly when the state directory is unusable.
    drop(StateDir::open(&state_dir).map_err(anyhow::Error::msg)?);
    let socket_path = socket::socket_path();
    let listener = socket::bind(&socket_path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", socket_path.display()))?;
    let view = Arc::new(Mutex::new(View {
        pid: std::process::id(),
        started_at: Timestamp::now().to_string(),
        status: "starting".into(),
        ..Default::default()
    }));
    let (refresh_tx, mut refresh_rx) = tokio::sync::mpsc::channel::<()>(4);
    tokio::spawn(answer_socket(listener, view.clone(), refresh_tx));

    let mut usec = 0;
    if sd_notify::watchdog_enabled(false, &mut usec) {
        let every = Duration::from_micros(usec / 2);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
        });
    }
    let mut hangup = signal(SignalKind::hangup())?;
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;

    let settings = prepared.settings.clone();
    let mut planner = Planner::new(settings.daemon.interval, settings.daemon.lead_times.clone());
    let mut cache = WindowCache {
        fetched: None,
        from_ssm: Vec::new(),
        note: None,
    };
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("ready: first run starting"),
    ]);
    tracing::info!(socket = %socket_path.display(), "ssm-preflight daemon serving");

    loop {
        let now = SystemTime::now();
        let known = refresh_windows(&prepared, &mut cache, now).await;
        let window_starts: Vec<Timestamp> = known.iter().filter_map(Window::start).collect();
        let (due, why) = planner.next(ts(now), &window_starts);
        let retry = pending_retry(&state_dir);
        let next_window = windows::next_after(&known, ts(now)).cloned();
        {
            let mut v = view.lock().unwrap();
            v.next_run = Some(format!("{due:.0}"));
            v.next_run_reason = Some(describe(why));
            v.next_window = next_window.clone();
            v.windows_note = cache.note.clone();
        }
        let wake_at = match retry {
            Some(r) if r < SystemTime::from(due) => r,
            _ => SystemTime::from(due),
        };
        tokio::select! {
            woke = timer::sleep_until(wake_at) => {
                match woke {
                    Ok(timer::Woke::ClockChanged) => {
                        tracing::info!("the clock was set; planning again");
                        continue;
                    }
                    Ok(timer::Woke::Due) => {}
                    Err(e) => {
                        tracing::warn!("timer: {e}; sleeping a minute instead");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                    }
                }
                if SystemTime::now() >= SystemTime::from(due) {
                    let run = one_run(&prepared, &state_dir, &known, &view);
                    tokio::select! {
                        _ = run => planner.ran(Timestamp::now(), why, fastrand::f64()),
                        _ = terminate.recv() => break,
                        _ = interrupt.recv() => break,
                    }
                } else {
                    retry_delivery(&prepared, &state_dir).await;
                }
            }
            _ = refresh_rx.recv() => {
                tracing::info!("a run was asked for over the status socket");
                tokio::select! {
                    _ = one_run(&prepared, &state_dir, &known, &view) => planner.ran(Timestamp::now(), Why::Baseline, fastrand::f64()),
                    _ = terminate.recv() => break,
                    _ = interrupt.recv() => break,
                }
            }
            _ = hangup.recv() => {
                notify(&[NotifyState::Reloading]);
                match prepare(global) {
                    Ok(p) => {
                        planner.reconfigure(p.settings.daemon.interval, p.settings.daemon.lead_times.clone());
                        prepared = p;
                        cache.fetched = None;
                        view.lock().unwrap().config_error = None;
                        tracing::info!("configuration reloaded");
                        notify(&[NotifyState::Ready, NotifyState::Status("configuration reloaded")]);
                    }
                    Err(e) => {
                        let status = format!("configuration reload refused, the old one is kept: {e}");
                        tracing::error!("{status}");
                        view.lock().unwrap().config_error = Some(e.to_string());
                        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
                    }
                }
            }
            _ = terminate.recv() => break,
            _ = interrupt.recv() => break,
        }
    }
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("ssm-preflight daemon stopped");
    Ok(0)
}

/// The config's windows, plus SSM's (asked again once the cache is stale).
async fn refresh_windows(
    prepared: &Prepared,
    cache: &mut WindowCache,
    now: SystemTime,
) -> Vec<Window> {
    let settings = &prepared.settings;
    let stale = cache.fetched.is_none_or(|f| {
        now.duration_since(f).unwrap_or_default() >= settings.daemon.schedule_cache
    });
    if stale && prepared.detected.mode != crate::host::mode::Mode::Local {
        let ctx = prepared.context(now);
        match crate::app::windows_from_ssm(&ctx).await {
            Ok(w) => {
                cache.from_ssm = w;
                cache.note = None;
            }
            Err(e) => {
                tracing::warn!("maintenance windows from SSM: {e}");
                cache.note = Some(e);
            }
        }
        cache.fetched = Some(now);
    } else if prepared.detected.mode == crate::host::mode::Mode::Local {
        cache.note = Some("local mode: SSM's schedule is not asked; only [[window]] entries from the config count".into());
    }
    let mut all = windows::from_config(settings, ts(now), 3);
    all.extend(cache.from_ssm.iter().cloned());
    windows::merge(all)
}

fn pending_retry(dir: &std::path::Path) -> Option<SystemTime> {
    let s = state::read(dir).ok()?;
    let d = s.delivery?;
    (d.state == DeliveryState::Pending).then_some(())?;
    humantime::parse_rfc3339(d.next_attempt.as_deref()?).ok()
}

/// One run: checks, state, metrics, journal, then the report after a jitter.
async fn one_run(
    prepared: &Prepared,
    dir: &std::path::Path,
    known: &[Window],
    view: &Arc<Mutex<View>>,
) {
    let next_window = windows::next_after(known, Timestamp::now());
    view.lock().unwrap().status = "running the checks".into();
    notify(&[NotifyState::Status("running the checks")]);
    let ctx = prepared.context(SystemTime::now());
    // pkg.state judges the update timers against every window known, SSM's included.
    *ctx.shared.windows.lock().unwrap() = known.to_vec();
    let mut report = match run_checks(&ctx, &[]).await {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("the run failed: {e:#}");
            return;
        }
    };
    report.next_window = next_window.map(|w| w.start.clone());
    journal(&report);
    let state_dir = match lock_state(dir).await {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return;
        }
    };
    let mut state = state_dir.load().unwrap_or_default();
    state.record(&report, &new_run_id());
    if let Err(e) = state_dir.save(&state) {
        tracing::error!("{e}");
    }
    write_metrics(
        prepared,
        &report,
        state
            .delivery
            .as_ref()
            .and_then(|d| d.delivered_at.as_deref())
            .or(state.last_delivered_run.as_deref()),
    );
    let status = status_line(&report, next_window);
    view.lock().unwrap().status = status.clone();
    notify(&[NotifyState::Status(&status)]);
    drop(state_dir);

    if prepared.detected.mode != crate::host::mode::Mode::Local {
        // Spread a fleet's reports: many hosts share one window.
        let pause =
            crate::report::delivery::jitter(prepared.settings.report_jitter, fastrand::f64());
        tokio::time::sleep(pause).await;
        retry_delivery(prepared, dir).await;
    }
}

/// Takes the state lock off the runtime's thread: a `check --report` may
/// hold it for a whole run, and signals must still be answered meanwhile.
async fn lock_state(dir: &std::path::Path) -> Result<StateDir, String> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || StateDir::open(&dir))
        .await
        .map_err(|e| e.to_string())?
}

/// Sends the kept report (the newest run) and records how it went.
async fn retry_delivery(prepared: &Prepared, dir: &std::path::Path) {
    let Ok(state_dir) = lock_state(dir).await else {
        return;
    };
    let Ok(mut state) = state_dir.load() else {
        return;
    };
    if state
        .delivery
        .as_ref()
        .is_some_and(|d| d.state == DeliveryState::Delivered)
    {
        return;
    }
    let ctx = prepared.context(SystemTime::now());
    match deliver_last(&ctx, &state_dir, &mut state).await {
        Ok(Some(Ok(()))) => tracing::info!("the report reached SSM"),
        Ok(Some(Err(e))) => tracing::warn!("the report did not reach SSM: {e:?}"),
        Ok(None) => {}
        Err(e) => tracing::error!("{e:#}"),
    }
    if let Some(report) = &state.last_run {
        write_metrics(
            prepared,
            report,
            state
                .delivery
                .as_ref()
                .and_then(|d| d.delivered_at.as_deref()),
        );
    }
}

fn write_metrics(prepared: &Prepared, report: &Report, delivered_at: Option<&str>) {
    if let Some(path) = &prepared.settings.metrics_textfile {
        if let Err(e) = crate::report::metrics::write(
            path,
            &crate::report::metrics::render(report, delivered_at),
        ) {
            tracing::warn!("cannot write the metrics textfile {}: {e}", path.display());
        }
    }
}

/// Each check's outcome in the journal, with fields to filter on.
fn journal(report: &Report) {
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
                $c.summary
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

/// Answers the status socket.
async fn answer_socket(
    listener: tokio::net::UnixListener,
    view: Arc<Mutex<View>>,
    refresh: tokio::sync::mpsc::Sender<()>,
) {
    use tokio::io::AsyncWriteExt;
    while let Ok((mut stream, _)) = listener.accept().await {
        let view = view.clone();
        let refresh = refresh.clone();
        tokio::spawn(async move {
            let Ok(request) = socket::read_request(&mut stream).await else {
                return;
            };
            let answer = match request.line.as_str() {
                "status" => {
                    let state = state::read(&state::default_dir()).ok();
                    serde_json::json!({ "daemon": &*view.lock().unwrap(), "state": state })
                }
                "refresh" if request.root => {
                    let _ = refresh.try_send(());
                    serde_json::json!({ "refresh": "a run was started" })
                }
                "refresh" => serde_json::json!({ "error": "only root may ask for a run" }),
                other => {
                    serde_json::json!({ "error": format!("unknown request `{other}`; ask `status` or `refresh`") })
                }
            };
            let _ = stream.write_all(format!("{answer}\n").as_bytes()).await;
        });
    }
}
