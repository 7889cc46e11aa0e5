//! `ssm-preflight daemon`, the service: runs the checks when the planner
//! says (a jittered baseline and lead times before each window), records
//! each run, reports it to SSM after the fleet jitter and retries with
//! backoff, answers the status socket, and speaks sd_notify. SIGHUP reloads
//! the config (a bad one is refused and the old one kept); SIGTERM stops
//! at once, a run in progress included (state writes are atomic).
//!
//! The loop is `daemon::machine`'s state machine: every wake-up comes from
//! `next_wake`, and every retry instant lives in memory. A state file that
//! cannot be written is logged once per distinct error and written again
//! with backoff; it never makes the loop spin or send again.


pub mod clean;
pub mod hold;
pub mod instance;
pub mod metrics;
pub mod notify;
pub mod socket;

use crate::run::deliver::{self, SendError};
use crate::run::report::Report;
use crate::run::state::{self, Delivery, DeliveryState, State, StateDir, StateError};
use crate::run::{new_run_id, prepare, run_checks_reusing, send_report, Options, Prepared};
use crate::checks::Status;
use crate::config::schedule::window::{self as windows, Window};
use crate::daemon::machine::{self, Machine, Wake};
use notify::{notify, watchdog_every, NotifyState};
use crate::daemon::planner::{Planner, Why};
use crate::daemon::timer;
use crate::host::mode::Mode;
use jiff::Timestamp;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, Signal, SignalKind};

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

/// The newest run this daemon made, with its delivery: the spool, in memory.
struct Spool {
    report: Report,
    delivery: Delivery,
}

/// The state file as this daemon last wanted it written, and what to do
/// while it cannot be.
struct Recorder {
    dir: PathBuf,
    /// What the file should say, when the last write failed.
    unsaved: Arc<Mutex<Option<State>>>,
    last_error: Option<String>,
    retry: Option<(u32, Timestamp)>,
}

impl Recorder {
    /// Writes the spool into the state file under its lock (another writer,
    /// `check --report` or `gate`, may have recorded runs meanwhile).
    fn write(&mut self, spool: &Spool, view: &Mutex<View>) {
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
                view.lock().unwrap().state_error = None;
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
                self.retry = Some((attempt, ts(SystemTime::now() + delay)));
                view.lock().unwrap().state_error = Some(text);
            }
        }
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

fn write_spool(dir: &std::path::Path, spool: &Spool) -> Result<(), StateError> {
    let locked = StateDir::open(dir)?;
    let mut state = locked.load().unwrap_or_default();
    apply(&mut state, spool);
    locked.save(&state)
}

pub fn run(options: &Options) -> anyhow::Result<u8> {
    // Before anything else: a second daemon must not touch the first one's socket.
    let runtime_dir = socket::runtime_dir();
    let instance = instance::claim(&runtime_dir)?;
    let prepared = prepare(options)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let code = rt.block_on(serve(options, prepared, runtime_dir))?;
    rt.shutdown_background();
    drop(instance);
    Ok(code)
}

struct Signals {
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
}

/// Pings the watchdog from the loop itself: when the loop is stuck, systemd
/// hears nothing and restarts the service.
struct Watchdog(Option<tokio::time::Interval>);

impl Watchdog {
    async fn tick(&mut self) {
        match &mut self.0 {
            Some(interval) => {
                interval.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
            None => std::future::pending().await,
        }
    }
}

async fn serve(
    options: &Options,
    mut prepared: Prepared,
    runtime_dir: PathBuf,
) -> anyhow::Result<u8> {
    let state_dir = state::default_dir();
    let socket_path = runtime_dir.join(socket::SOCKET);
    let listener = socket::bind(&socket_path)
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", socket_path.display()))?;
    let view = Arc::new(Mutex::new(View {
        pid: std::process::id(),
        started_at: Timestamp::now().to_string(),
        status: "starting".into(),
        state: "idle".into(),
        ..Default::default()
    }));
    let mut cloud_cache = CloudCache::default();
    let mut recorder = Recorder {
        dir: state_dir.clone(),
        unsaved: Arc::new(Mutex::new(None)),
        last_error: None,
        retry: None,
    };
    // The service keeps a sender itself, so the channel never closes while it runs.
    let (refresh_tx, mut refresh_rx) = tokio::sync::mpsc::channel::<()>(1);
    let (release_tx, mut release_rx) = tokio::sync::mpsc::channel::<()>(1);
    tokio::spawn(socket::serve(
        listener,
        answer(
            view.clone(),
            recorder.unsaved.clone(),
            state_dir.clone(),
            refresh_tx.clone(),
            release_tx.clone(),
        ),
    ));
    // The hold of the host's updaters (remediate.hold_updaters), as the
    // state file left it: a hold from before a reboot ends at the first tick.
    let mut keeper = hold::Keeper::new(
        &prepared.root,
        &state_dir,
        crate::host::systemd::SystemBus::new(None),
    );
    let mut watchdog = Watchdog(watchdog_every().map(tokio::time::interval));
    let mut signals = Signals {
        hangup: signal(SignalKind::hangup())?,
        terminate: signal(SignalKind::terminate())?,
        interrupt: signal(SignalKind::interrupt())?,
    };
    let settings = prepared.settings.clone();
    let mut planner = Planner::new(settings.daemon.interval, settings.daemon.lead_times.clone());
    let mut cache = WindowCache {
        fetched: None,
        from_ssm: Vec::new(),
        note: None,
    };
    let mut machine = Machine::default();
    let mut spool: Option<Spool> = None;
    // Set when the loop did a run or a send: the code they touched is
    // handed back to the kernel before the daemon sleeps.
    let mut worked = false;
    notify(&[
        NotifyState::Ready,
        NotifyState::Status("ready: first run starting"),
    ]);
    tracing::info!(socket = %socket_path.display(), "ssm-preflight daemon serving");

    loop {
        let now = SystemTime::now();
        let known = refresh_windows(&prepared, &mut cache, now).await;
        let window_starts: Vec<Timestamp> = known.iter().filter_map(Window::start).collect();
        // The hold first: waiting for a running updater may take minutes,
        // with the watchdog still pinged.
        let remediate = prepared.settings.remediate.clone();
        // The config's windows still in progress count too: a daemon
        // started inside one holds for the rest of it. Not worked out when
        // nothing is held (the tick then only ends a hold left in force).
        let hold_windows = if remediate.hold_updaters {
            let mut all = known.clone();
            let back = jiff::SignedDuration::try_from(remediate.hold_max).unwrap_or_default();
            all.extend(windows::from_config(
                &prepared.settings.window,
                ts(now) - back,
                3,
            ));
            windows::merge(all)
        } else {
            Vec::new()
        };
        let Some(hold_wake) = unless_stopped(
            keeper.tick(ts(now), &hold_windows, &remediate),
            &mut signals,
            &mut watchdog,
        )
        .await
        else {
            break;
        };
        view.lock().unwrap().hold = keeper.state.sentence();
        // The textfile follows a hold as it begins and ends, not only at runs.
        let held = keeper.state.holding.is_some();
        if hold::HELD.swap(held, std::sync::atomic::Ordering::Relaxed) != held {
            if let Some(s) = &spool {
                write_metrics(&prepared, &s.report, s.delivery.delivered_at.as_deref());
            }
        }
        let planned = planner.next(ts(now), &window_starts);
        let (wake_at, wake) =
            machine::next_wake(machine.state(), planned, recorder.retry.map(|(_, at)| at));
        {
            let mut v = view.lock().unwrap();
            v.next_run = Some(format!("{:.0}", planned.0));
            v.next_run_reason = Some(describe(planned.1));
            v.next_window = windows::next_after(&known, ts(now)).cloned();
            v.windows_note = cache.note.clone();
            v.state = machine.state().name().into();
            v.next_report_attempt = match machine.state() {
                machine::State::RetryPending { at, .. } => Some(format!("{at:.0}")),
                _ => None,
            };
        }
        if std::mem::take(&mut worked) {
            release_code_pages();
        }
        tokio::select! {
            woke = timer::sleep_until(SystemTime::from(wake_at)), if wake != Wake::Never => {
                match woke {
                    Ok(timer::Woke::ClockChanged) => {
                        tracing::info!("the clock was set; planning again");
                        continue;
                    }
                    Ok(timer::Woke::Due) => {}
                    Err(e) => {
                        tracing::warn!("timer: {e}; sleeping a minute instead");
                        tokio::time::sleep(Duration::from_secs(60)).await;
                        continue;
                    }
                }
                match wake {
                    Wake::Run(why) => {
                        if !one_run(&prepared, &mut cloud_cache, &known, &view, &mut machine, &mut spool, &mut recorder, &mut signals, &mut watchdog).await {
                            break;
                        }
                        planner.ran(Timestamp::now(), why, fastrand::f64());
                        worked = true;
                    }
                    Wake::Send => {
                        if !send(&prepared, &mut machine, &mut spool, &mut recorder, &view, &mut signals, &mut watchdog).await {
                            break;
                        }
                        worked = true;
                    }
                    Wake::WriteState => {
                        if let Some(s) = &spool {
                            recorder.write(s, &view);
                        } else {
                            recorder.retry = None;
                        }
                    }
                    Wake::Never => {}
                }
            }
            woke = timer::sleep_until(SystemTime::from(hold_wake.unwrap_or(Timestamp::MAX))), if hold_wake.is_some() => {
                if let Err(e) = woke {
                    tracing::warn!("timer: {e}; sleeping a minute instead");
                    tokio::time::sleep(Duration::from_secs(60)).await;
                }
            }
            _ = release_rx.recv() => {
                match keeper.release().await {
                    Ok(what) => tracing::info!("hold --release: {what}"),
                    Err(why) => tracing::error!("hold --release: {why}"),
                }
                view.lock().unwrap().hold = keeper.state.sentence();
            }
            _ = refresh_rx.recv() => {
                tracing::info!("a run was asked for over the status socket");
                if !one_run(&prepared, &mut cloud_cache, &known, &view, &mut machine, &mut spool, &mut recorder, &mut signals, &mut watchdog).await {
                    break;
                }
                planner.ran(Timestamp::now(), Why::Baseline, fastrand::f64());
                worked = true;
            }
            _ = signals.hangup.recv() => {
                if let Err(e) = machine.reload() {
                    tracing::warn!("{e}");
                    continue;
                }
                notify(&[NotifyState::Reloading]);
                match prepare(options) {
                    Ok(p) => {
                        planner.reconfigure(p.settings.daemon.interval, p.settings.daemon.lead_times.clone());
                        prepared = p;
                        cache.fetched = None;
                        view.lock().unwrap().config_error = None;
                        tracing::info!("configuration reloaded");
                        // The group or the endpoints may have changed: ask SSM again.
                        cloud_cache = CloudCache::default();
                        // STATUS= keeps the last verdict, with the next window as the new config sees it.
                        let known = refresh_windows(&prepared, &mut cache, SystemTime::now()).await;
                        let next = windows::next_after(&known, Timestamp::now());
                        let status = match &spool {
                            Some(s) => format!("configuration reloaded; {}", status_line(&s.report, next)),
                            None => "configuration reloaded; no run yet".to_string(),
                        };
                        view.lock().unwrap().status = status.clone();
                        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
                    }
                    Err(e) => {
                        let status = format!("configuration reload refused, the old one is kept: {e}");
                        tracing::error!("{status}");
                        view.lock().unwrap().config_error = Some(e.to_string());
                        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
                    }
                }
                let _ = machine.reloaded();
            }
            _ = watchdog.tick() => {}
            _ = signals.terminate.recv() => break,
            _ = signals.interrupt.recv() => break,
        }
    }
    machine.stop();
    notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
    let _ = std::fs::remove_file(&socket_path);
    tracing::info!("ssm-preflight daemon stopped");
    Ok(0)
}

/// Hands the binary's pages back to the kernel once a run or a send is
/// done (`host::memory` says why). Where the kernel refuses (before Linux
/// 5.4, a seccomp filter without madvise) it is said once and not tried
/// again: the daemon then simply keeps its pages.
fn release_code_pages() {
    static REFUSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
    if REFUSED.load(std::sync::atomic::Ordering::Relaxed) {
        return;
    }
    match crate::host::memory::release_code_pages() {
        Ok(r) => tracing::debug!(
            before_kb = r.before_kb,
            after_kb = r.after_kb,
            "handed the binary's pages back until the next run: RSS {} kB -> {} kB",
            r.before_kb,
            r.after_kb
        ),
        Err(e) => {
            REFUSED.store(true, std::sync::atomic::Ordering::Relaxed);
            tracing::info!("the binary's pages stay resident between runs: {e}");
        }
    }
}

/// The socket's answers: `status` for anyone who may connect, `refresh`
/// for root.
fn answer(
    view: Arc<Mutex<View>>,
    unsaved: Arc<Mutex<Option<State>>>,
    state_dir: PathBuf,
    refresh: tokio::sync::mpsc::Sender<()>,
    release: tokio::sync::mpsc::Sender<()>,
) -> impl Fn(socket::Request) -> String + Send + Sync + 'static {
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
    if prepared.detected.mode == Mode::Local {
        cache.note = Some("local mode: SSM's schedule is not asked; only [[window]] entries from the config count".into());
    } else if stale {
        let ctx = prepared.context(now);
        match crate::run::windows::from_ssm(&ctx).await {
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
    }
    let mut all = windows::from_config(&settings.window, ts(now), 3);
    all.extend(cache.from_ssm.iter().cloned());
    windows::merge(all)
}

/// Awaits `work` while still answering SIGTERM and pinging the watchdog;
/// `None` when a stop signal came first.
async fn unless_stopped<T>(
    work: impl std::future::Future<Output = T>,
    signals: &mut Signals,
    watchdog: &mut Watchdog,
) -> Option<T> {
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Some(out),
            _ = watchdog.tick() => {}
            _ = signals.terminate.recv() => return None,
            _ = signals.interrupt.recv() => return None,
        }
    }
}

/// The cloud checks' last results (how SSM sees the node): the daemon asks
/// SSM for them at most once per `daemon.schedule_cache`, whatever the
/// number of runs (a window's lead runs come minutes apart).
#[derive(Default)]
pub struct CloudCache {
    at: Option<SystemTime>,
    results: Vec<crate::checks::CheckResult>,
}

impl CloudCache {
    /// The results still fresh at `now`, each saying when it was asked.
    pub fn fresh(
        &self,
        now: SystemTime,
        ttl: std::time::Duration,
    ) -> Vec<crate::checks::CheckResult> {
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
            .filter(|c| c.group == crate::checks::Group::Cloud && c.status != Status::Error)
            .cloned()
            .collect();
        self.at = (!results.is_empty()).then_some(now);
        self.results = results;
    }
}

/// One run: checks, state, metrics, journal; its report is then due after
/// the jitter. `false` when a stop signal came.
#[allow(clippy::too_many_arguments)]
async fn one_run(
    prepared: &Prepared,
    cloud_cache: &mut CloudCache,
    known: &[Window],
    view: &Arc<Mutex<View>>,
    machine: &mut Machine,
    spool: &mut Option<Spool>,
    recorder: &mut Recorder,
    signals: &mut Signals,
    watchdog: &mut Watchdog,
) -> bool {
    if let Err(e) = machine.start_run() {
        tracing::warn!("{e}");
        return true;
    }
    let next_window = windows::next_after(known, Timestamp::now()).cloned();
    view.lock().unwrap().status = "running the checks".into();
    view.lock().unwrap().state = machine.state().name().into();
    notify(&[NotifyState::Status("running the checks")]);
    let ctx = prepared.context(SystemTime::now());
    // pkg.state judges the update timers against every window known, SSM's included.
    *ctx.shared.windows.lock().unwrap() = known.to_vec();
    let reuse = cloud_cache.fresh(ctx.now, prepared.settings.daemon.schedule_cache);
    let Some(result) =
        unless_stopped(run_checks_reusing(&ctx, &[], &reuse), signals, watchdog).await
    else {
        return false;
    };
    let mut report = match result {
        Ok(r) => r,
        Err(e) => {
            tracing::error!("the run failed: {e}");
            let _ = machine.run_done(None);
            return true;
        }
    };
    report.next_window = next_window.as_ref().map(|w| w.start.clone());
    if reuse.is_empty() {
        cloud_cache.keep(ctx.now, &report);
    }
    if prepared.settings.remediate.clean_package_cache {
        let Some(cleaned) = unless_stopped(
            clean::after_run(&ctx, &mut report),
            signals,
            watchdog,
        )
        .await
        else {
            return false;
        };
        if let Some(c) = cleaned {
            record_clean(&recorder.dir, c);
        }
    }
    journal(&report);
    let run = Spool {
        delivery: Delivery::not_sent(&new_run_id(), &report.started_at),
        report,
    };
    recorder.write(&run, view);
    write_metrics(prepared, &run.report, None);
    let status = status_line(&run.report, next_window.as_ref());
    view.lock().unwrap().status = status.clone();
    notify(&[NotifyState::Status(&status)]);
    *spool = Some(run);
    let send_at = (prepared.detected.mode != Mode::Local).then(|| {
        // Spread a fleet's reports: many hosts share one window.
        let pause = deliver::jitter(prepared.settings.report.jitter, fastrand::f64());
        ts(SystemTime::now() + pause)
    });
    let _ = machine.run_done(send_at);
    true
}

/// Records the last clean of the package cache in the state file; a
/// failure is logged (the run's own record says the rest).
fn record_clean(dir: &std::path::Path, cleaned: crate::run::state::Cleaned) {
    let result = StateDir::open(dir).and_then(|locked| {
        let mut s = locked.load().unwrap_or_default();
        s.cleaned = Some(cleaned);
        locked.save(&s)
    });
    if let Err(e) = result {
        tracing::error!("the package cache's clean is not recorded: {e}");
    }
}

/// Sends the spooled report and records how it went. `false` when a stop
/// signal came.
async fn send(
    prepared: &Prepared,
    machine: &mut Machine,
    spool: &mut Option<Spool>,
    recorder: &mut Recorder,
    view: &Arc<Mutex<View>>,
    signals: &mut Signals,
    watchdog: &mut Watchdog,
) -> bool {
    let Some(run) = spool.as_mut() else {
        let _ = machine.report_settled();
        return true;
    };
    // A newer report (from `check --report`) already reached SSM: ours
    // would replace it, since COMPLETE uploads replace.
    let newer_delivered = state::read(&recorder.dir)
        .ok()
        .and_then(|s| s.last_delivered_run)
        .is_some_and(|d| d > run.report.started_at);
    if newer_delivered {
        let _ = machine.report_settled();
        return true;
    }
    let ctx = prepared.context(SystemTime::now());
    let Some(result) = unless_stopped(
        send_report(&ctx, &run.report, &run.delivery.run_id),
        signals,
        watchdog,
    )
    .await
    else {
        return false;
    };
    deliver::record(
        &mut run.delivery,
        &result,
        SystemTime::now(),
        fastrand::f64(),
    );
    match &result {
        Ok(()) => {
            tracing::info!("the report reached SSM");
            let _ = machine.report_settled();
        }
        Err(SendError::Permanent { error, .. }) => {
            tracing::warn!("SSM refused the report: {error}");
            let _ = machine.report_settled();
        }
        Err(SendError::Retryable(why)) => {
            let at = run
                .delivery
                .next_attempt
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .unwrap_or_else(|| ts(SystemTime::now() + Duration::from_secs(60)));
            if let Ok(attempt) = machine.retry_at(at) {
                tracing::warn!(
                    "the report did not reach SSM ({why}); attempt {} at {at:.0}",
                    attempt + 1
                );
            }
        }
    }
    recorder.write(run, view);
    write_metrics(prepared, &run.report, run.delivery.delivered_at.as_deref());
    true
}

fn write_metrics(prepared: &Prepared, report: &Report, delivered_at: Option<&str>) {
    if let Some(path) = &prepared.settings.metrics.textfile {
        let remediate = &prepared.settings.remediate;
        let cleaned = remediate
            .clean_package_cache
            .then(|| {
                state::read(&state::default_dir())
                    .ok()
                    .and_then(|s| s.cleaned)
            })
            .flatten();
        let remediation = metrics::Remediation {
            updaters_held: remediate
                .hold_updaters
                .then(|| hold::HELD.load(std::sync::atomic::Ordering::Relaxed)),
            cleaned: cleaned.as_ref(),
        };
        let text = metrics::render(report, delivered_at, &remediation);
        if let Err(e) = metrics::write(path, &text) {
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

#[cfg(test)]
mod cloud_cache_tests {
    use super::*;
    use crate::checks::{CheckResult, Group, Severity};
    use crate::host::mode::Mode;
    use crate::run::report::HostSummary;
    use std::time::{Duration, UNIX_EPOCH};

    fn result(id: &str, group: Group, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            group,
            title: id.into(),
            status,
            severity: Severity::Medium,
            summary: format!("{id} summary"),
            remedy: None,
            details: Default::default(),
            duration_ms: 40,
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
