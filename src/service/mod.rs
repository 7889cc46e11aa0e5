//! `ssm-preflight daemon`, the service: runs the checks when the planner
//! says (a jittered baseline and lead times before each window), records
//! each run, reports it to SSM after the fleet jitter and retries with
//! backoff, answers the status socket, holds the host's updaters off a
//! window and speaks sd_notify. SIGHUP reloads the config (a bad one is
//! refused and the old one kept); SIGTERM stops at once, a run in progress
//! included (state writes are atomic).
//!
//! One object, [`Service`], owns everything the loop needs; each pass of
//! the loop plans (windows, the hold, the next wake-up from
//! `daemon::machine`), sleeps, and hands what woke it to one method. Every
//! retry instant lives in memory. A state file that cannot be written is
//! logged once per distinct error and written again with backoff; it never
//! makes the loop spin or send again.

pub mod clean;
mod cloud_cache;
pub mod hold;
pub mod instance;
pub mod metrics;
pub mod notify;
mod record;
pub mod socket;
mod view;

pub use record::message_id;
pub use view::{status_line, View};

use crate::config::schedule::window::{self as windows, Window};
use crate::daemon::machine::{self, Machine, Wake};
use crate::daemon::planner::{Planner, Why};
use crate::host::mode::Mode;
use crate::host::timer;
use crate::run::deliver::{self, SendError};
use crate::run::state::{self, Delivery};
use crate::run::{new_run_id, prepare, run_checks_reusing, send_report, Options, Prepared};
use cloud_cache::CloudCache;
use jiff::Timestamp;
use notify::{notify, watchdog_every, NotifyState};
use record::{Recorder, Spool};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::sync::mpsc;

fn ts(t: SystemTime) -> Timestamp {
    Timestamp::try_from(t).unwrap_or(Timestamp::UNIX_EPOCH)
}

pub fn run(options: &Options) -> anyhow::Result<u8> {
    // Before anything else: a second daemon must not touch the first one's socket.
    let runtime_dir = socket::runtime_dir();
    let instance = instance::claim(&runtime_dir)?;
    let prepared = prepare(options)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let served = rt.block_on(async {
        let service = Service::start(options, prepared, &runtime_dir)?;
        service.serve().await;
        anyhow::Ok(0)
    });
    rt.shutdown_background();
    drop(instance);
    served
}

/// A stop signal came while the service waited for something.
struct Stopped;

/// What every long wait still answers: SIGTERM, SIGINT and the watchdog,
/// pinged from the loop itself so that a stuck loop is restarted.
struct Stops {
    terminate: Signal,
    interrupt: Signal,
    watchdog: Option<tokio::time::Interval>,
}

impl Stops {
    async fn watchdog(watchdog: &mut Option<tokio::time::Interval>) {
        match watchdog {
            Some(interval) => {
                interval.tick().await;
                notify(&[NotifyState::Watchdog]);
            }
            None => std::future::pending().await,
        }
    }

    /// Awaits `work` while still answering a stop and pinging the watchdog.
    async fn guard<T>(&mut self, work: impl std::future::Future<Output = T>) -> Result<T, Stopped> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                _ = Self::watchdog(&mut self.watchdog) => {}
                _ = self.terminate.recv() => return Err(Stopped),
                _ = self.interrupt.recv() => return Err(Stopped),
            }
        }
    }
}

/// What else wakes the loop: SIGHUP, and the socket's `refresh` and
/// `release`. The service keeps a sender of each channel, so neither
/// closes while it runs.
struct Requests {
    hangup: Signal,
    refresh: mpsc::Receiver<()>,
    release: mpsc::Receiver<()>,
    _senders: (mpsc::Sender<()>, mpsc::Sender<()>),
}

/// Why one pass of the loop woke.
enum Woke {
    Due(Wake<Why>),
    /// Plan again: the hold's timer, the watchdog, a clock set, a timer error.
    Replan,
    Refresh,
    Release,
    Reload,
    Stop,
}

/// SSM's schedule, cached for `daemon.schedule_cache`.
#[derive(Default)]
struct WindowCache {
    fetched: Option<SystemTime>,
    from_ssm: Vec<Window>,
    note: Option<String>,
}

/// The running daemon.
pub struct Service {
    options: Options,
    prepared: Prepared,
    socket_path: PathBuf,
    view: Arc<Mutex<View>>,
    machine: Machine,
    planner: Planner,
    windows: WindowCache,
    cloud: CloudCache,
    recorder: Recorder,
    keeper: hold::Keeper,
    spool: Option<Spool>,
    stops: Stops,
    requests: Requests,
    /// What the last run found (the state file's at start): the next run's
    /// head start (its role's credentials, its windows).
    remembered: crate::facts::Remembered,
    /// Whether the updaters are held, as the metrics textfile last said.
    held: bool,
    /// A run or a send touched code since the daemon last slept.
    worked: bool,
    /// The kernel refused to take the binary's pages back: not asked again.
    pages_stay: bool,
}

impl Service {
    /// Binds the socket and serves it; takes the hold the state file left
    /// (one from before a reboot ends at the first pass).
    fn start(options: &Options, prepared: Prepared, runtime_dir: &Path) -> anyhow::Result<Service> {
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
        let recorder = Recorder::new(state_dir.clone());
        let (refresh_tx, refresh) = mpsc::channel(1);
        let (release_tx, release) = mpsc::channel(1);
        let answer = view::answer(
            view.clone(),
            recorder.unsaved.clone(),
            state_dir.clone(),
            refresh_tx.clone(),
            release_tx.clone(),
        );
        tokio::spawn(socket::serve(listener, answer));
        let bus = crate::host::systemd::SystemBus::new(None);
        let daemon = &prepared.settings.daemon;
        Ok(Service {
            options: options.clone(),
            planner: Planner::new(daemon.interval, daemon.lead_times.clone()),
            keeper: hold::Keeper::new(&prepared.root, &state_dir, bus),
            prepared,
            socket_path,
            view,
            machine: Machine::default(),
            windows: WindowCache::default(),
            cloud: CloudCache::default(),
            recorder,
            spool: None,
            stops: Stops {
                terminate: signal(SignalKind::terminate())?,
                interrupt: signal(SignalKind::interrupt())?,
                watchdog: watchdog_every().map(tokio::time::interval),
            },
            requests: Requests {
                hangup: signal(SignalKind::hangup())?,
                refresh,
                release,
                _senders: (refresh_tx, release_tx),
            },
            remembered: state::read(&state_dir)
                .map(|s| s.remembered())
                .unwrap_or_default(),
            held: false,
            worked: false,
            pages_stay: false,
        })
    }

    async fn serve(mut self) {
        notify(&[
            NotifyState::Ready,
            NotifyState::Status("ready: first run starting"),
        ]);
        tracing::info!(socket = %self.socket_path.display(), "ssm-preflight daemon serving");
        while self.pass().await.is_ok() {}
        self.machine.stop();
        notify(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
        let _ = std::fs::remove_file(&self.socket_path);
        tracing::info!("ssm-preflight daemon stopped");
    }

    /// One pass: plan, sleep until something is due, act on it.
    async fn pass(&mut self) -> Result<(), Stopped> {
        let now = SystemTime::now();
        let known = self.known_windows(now).await;
        // The hold first: waiting for a running updater may take minutes,
        // with the watchdog still pinged.
        let hold_wake = self.hold(now, &known).await?;
        let (wake_at, wake) = self.plan(now, &known);
        if std::mem::take(&mut self.worked) {
            self.release_code_pages();
        }
        match self.wait(wake_at, wake, hold_wake).await {
            Woke::Due(Wake::Run(why)) => self.run_now(&known, why).await?,
            Woke::Due(Wake::Send) => self.send().await?,
            Woke::Due(Wake::WriteState) => self.write_state(),
            Woke::Due(Wake::Never) | Woke::Replan => {}
            Woke::Refresh => {
                tracing::info!("a run was asked for over the status socket");
                self.run_now(&known, Why::Baseline).await?;
            }
            Woke::Release => self.release_hold().await,
            Woke::Reload => self.reload().await,
            Woke::Stop => return Err(Stopped),
        }
        Ok(())
    }

    /// Sleeps until the machine's wake-up, the hold's, a request or a signal.
    async fn wait(&mut self, at: Timestamp, wake: Wake<Why>, hold: Option<Timestamp>) -> Woke {
        let hold_at = SystemTime::from(hold.unwrap_or(Timestamp::MAX));
        let woke = tokio::select! {
            woke = timer::sleep_until(SystemTime::from(at)), if wake != Wake::Never => {
                match woke {
                    Ok(timer::Woke::Due) => return Woke::Due(wake),
                    Ok(timer::Woke::ClockChanged) => {
                        tracing::info!("the clock was set; planning again");
                        return Woke::Replan;
                    }
                    Err(e) => e,
                }
            }
            woke = timer::sleep_until(hold_at), if hold.is_some() => match woke {
                Ok(_) => return Woke::Replan,
                Err(e) => e,
            },
            _ = self.requests.release.recv() => return Woke::Release,
            _ = self.requests.refresh.recv() => return Woke::Refresh,
            _ = self.requests.hangup.recv() => return Woke::Reload,
            _ = Stops::watchdog(&mut self.stops.watchdog) => return Woke::Replan,
            _ = self.stops.terminate.recv() => return Woke::Stop,
            _ = self.stops.interrupt.recv() => return Woke::Stop,
        };
        tracing::warn!("timer: {woke}; sleeping a minute instead");
        tokio::time::sleep(Duration::from_secs(60)).await;
        Woke::Replan
    }

    /// The config's windows, plus SSM's (asked again once the cache is stale).
    async fn known_windows(&mut self, now: SystemTime) -> Vec<Window> {
        let settings = self.prepared.settings.clone();
        let stale = self.windows.fetched.is_none_or(|f| {
            now.duration_since(f).unwrap_or_default() >= settings.daemon.schedule_cache
        });
        if self.prepared.detected.mode == Mode::Local {
            self.windows.note = Some("local mode: SSM's schedule is not asked; only [[window]] entries from the config count".into());
        } else if stale {
            let found = crate::run::windows::from_ssm(&self.context(now)).await;
            let cache = &mut self.windows;
            match found {
                Ok(found) => {
                    cache.from_ssm = found.windows;
                    cache.note = found.not_read;
                }
                Err(e) => {
                    tracing::warn!(
                        "maintenance windows from SSM: {}",
                        crate::text::safe(&e.to_string())
                    );
                    cache.note = Some(e.to_string());
                }
            }
            cache.fetched = Some(now);
        }
        let mut all = windows::from_config(&settings.window, ts(now), 3);
        all.extend(self.windows.from_ssm.iter().cloned());
        windows::merge(all)
    }

    /// Acts on the hold of the host's updaters (`remediate.hold_updaters`);
    /// when it next wants a look.
    async fn hold(
        &mut self,
        now: SystemTime,
        known: &[Window],
    ) -> Result<Option<Timestamp>, Stopped> {
        let settings = self.prepared.settings.clone();
        let remediate = &settings.remediate;
        // Not worked out when nothing is held: the pass then only ends a
        // hold left in force.
        let spans = if remediate.hold_updaters {
            hold_windows(&settings, known, now)
        } else {
            Vec::new()
        };
        let wake = self
            .stops
            .guard(self.keeper.tick(ts(now), &spans, remediate))
            .await?;
        self.view.lock().unwrap().hold = self.keeper.state.sentence();
        // The textfile follows a hold as it begins and ends, not only at runs.
        let held = self.keeper.state.holding.is_some();
        if std::mem::replace(&mut self.held, held) != held {
            self.write_metrics();
        }
        Ok(wake)
    }

    /// The next wake-up, shown in the view.
    fn plan(&mut self, now: SystemTime, known: &[Window]) -> (Timestamp, Wake<Why>) {
        let starts: Vec<Timestamp> = known.iter().filter_map(Window::start).collect();
        let planned = self.planner.next(ts(now), &starts);
        let retry = self.recorder.retry.map(|(_, at)| at);
        let next = machine::next_wake(self.machine.state(), planned, retry);
        let mut v = self.view.lock().unwrap();
        v.next_run = Some(format!("{:.0}", planned.0));
        v.next_run_reason = Some(view::describe(planned.1));
        v.next_window = windows::next_after(known, ts(now)).cloned();
        v.windows_note = self.windows.note.clone();
        v.state = self.machine.state().name().into();
        v.next_report_attempt = match self.machine.state() {
            machine::State::RetryPending { at, .. } => Some(format!("{at:.0}")),
            _ => None,
        };
        next
    }

    /// A run, then the planner told it ran.
    async fn run_now(&mut self, known: &[Window], why: Why) -> Result<(), Stopped> {
        self.one_run(known).await?;
        self.planner.ran(Timestamp::now(), why, fastrand::f64());
        self.worked = true;
        Ok(())
    }

    /// A run's facts, remembering what the last run found.
    fn context(&self, now: SystemTime) -> crate::facts::Context {
        self.prepared.context(now).remember(self.remembered.clone())
    }

    /// One run: checks, state, metrics, journal; its report is then due
    /// after the jitter.
    async fn one_run(&mut self, known: &[Window]) -> Result<(), Stopped> {
        if let Err(e) = self.machine.start_run() {
            tracing::warn!("{e}");
            return Ok(());
        }
        let next_window = windows::next_after(known, Timestamp::now()).cloned();
        self.view.lock().unwrap().state = self.machine.state().name().into();
        self.say("running the checks");
        let ctx = self.context(SystemTime::now());
        // pkg.state judges the update timers against every window known, SSM's included.
        *ctx.shared.windows.lock().unwrap() = known.to_vec();
        let settings = self.prepared.settings.clone();
        let reuse = self.cloud.fresh(ctx.now, settings.daemon.schedule_cache);
        let result = self
            .stops
            .guard(run_checks_reusing(&ctx, &[], &reuse))
            .await?;
        let mut report = match result {
            Ok(r) => r,
            Err(e) => {
                tracing::error!("the run failed: {e}");
                let _ = self.machine.run_done(None);
                return Ok(());
            }
        };
        report.next_window = next_window.as_ref().map(|w| w.start.clone());
        self.remembered = report.remembered();
        if reuse.is_empty() {
            self.cloud.keep(ctx.now, &report);
        }
        if settings.remediate.clean_package_cache {
            let cleaned = self
                .stops
                .guard(clean::after_run(&ctx, &mut report))
                .await?;
            if let Some(c) = cleaned {
                self.recorder.record_clean(c);
            }
        }
        record::journal(&report);
        let status = status_line(&report, next_window.as_ref());
        self.spool = Some(Spool {
            delivery: Delivery::not_sent(&new_run_id(), &report.started_at),
            report,
        });
        self.write_state();
        self.write_metrics();
        self.say(&status);
        let send_at = (self.prepared.detected.mode != Mode::Local).then(|| {
            // Spread a fleet's reports: many hosts share one window.
            let pause = deliver::jitter(settings.report.jitter, fastrand::f64());
            ts(SystemTime::now() + pause)
        });
        let _ = self.machine.run_done(send_at);
        Ok(())
    }

    /// Sends the spooled report and records how it went.
    async fn send(&mut self) -> Result<(), Stopped> {
        let ctx = self.context(SystemTime::now());
        let Some(run) = self.spool.as_mut() else {
            let _ = self.machine.report_settled();
            return Ok(());
        };
        if self.recorder.newer_delivered(&run.report) {
            let _ = self.machine.report_settled();
            return Ok(());
        }
        let result = self
            .stops
            .guard(send_report(&ctx, &run.report, &run.delivery.run_id))
            .await?;
        let now = SystemTime::now();
        deliver::record(&mut run.delivery, &result, now, fastrand::f64());
        let next_attempt = run
            .delivery
            .next_attempt
            .as_deref()
            .and_then(|t| t.parse().ok());
        self.settle(
            &result,
            next_attempt.unwrap_or_else(|| ts(now + Duration::from_secs(60))),
        );
        self.write_state();
        self.write_metrics();
        self.worked = true;
        Ok(())
    }

    /// The machine told how a send went: settled, or retried at `retry_at`.
    fn settle(&mut self, result: &Result<(), SendError>, retry_at: Timestamp) {
        match result {
            Ok(()) => {
                tracing::info!("the report reached SSM");
                let _ = self.machine.report_settled();
            }
            Err(SendError::Permanent { error, .. }) => {
                tracing::warn!(
                    "SSM refused the report: {}",
                    crate::text::safe(&error.to_string())
                );
                let _ = self.machine.report_settled();
            }
            Err(SendError::Retryable(why)) => {
                if let Ok(attempt) = self.machine.retry_at(retry_at) {
                    tracing::warn!(
                        "the report did not reach SSM ({}); attempt {} at {retry_at:.0}",
                        crate::text::safe(&why.to_string()),
                        attempt + 1
                    );
                }
            }
        }
    }

    /// SIGHUP: the config read again; a bad one is refused and the old one kept.
    async fn reload(&mut self) {
        if let Err(e) = self.machine.reload() {
            tracing::warn!("{e}");
            return;
        }
        notify(&[NotifyState::Reloading]);
        match prepare(&self.options) {
            Ok(prepared) => self.reconfigure(prepared).await,
            Err(e) => {
                let status = format!("configuration reload refused, the old one is kept: {e}");
                tracing::error!("{status}");
                self.view.lock().unwrap().config_error = Some(e.to_string());
                notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
            }
        }
        let _ = self.machine.reloaded();
    }

    async fn reconfigure(&mut self, prepared: Prepared) {
        let daemon = &prepared.settings.daemon;
        self.planner
            .reconfigure(daemon.interval, daemon.lead_times.clone());
        self.prepared = prepared;
        self.windows.fetched = None;
        self.view.lock().unwrap().config_error = None;
        tracing::info!("configuration reloaded");
        // The group or the endpoints may have changed: ask SSM again.
        self.cloud = CloudCache::default();
        // STATUS= keeps the last verdict, with the next window as the new config sees it.
        let known = self.known_windows(SystemTime::now()).await;
        let next = windows::next_after(&known, Timestamp::now());
        let status = match &self.spool {
            Some(s) => format!("configuration reloaded; {}", status_line(&s.report, next)),
            None => "configuration reloaded; no run yet".to_string(),
        };
        self.view.lock().unwrap().status = status.clone();
        notify(&[NotifyState::Ready, NotifyState::Status(&status)]);
    }

    /// `hold --release`: the hold ends now.
    async fn release_hold(&mut self) {
        match self.keeper.release().await {
            Ok(what) => tracing::info!("hold --release: {what}"),
            Err(why) => tracing::error!("hold --release: {why}"),
        }
        self.view.lock().unwrap().hold = self.keeper.state.sentence();
    }

    /// The spool into the state file, or the pending retry dropped when
    /// there is nothing to write.
    fn write_state(&mut self) {
        match &self.spool {
            Some(spool) => {
                let error = self.recorder.write(spool);
                self.view.lock().unwrap().state_error = error;
            }
            None => self.recorder.retry = None,
        }
    }

    fn write_metrics(&self) {
        let (Some(spool), settings) = (&self.spool, &self.prepared.settings) else {
            return;
        };
        if settings.metrics.textfile.is_none() {
            return;
        }
        let cleaned = settings
            .remediate
            .clean_package_cache
            .then(|| self.recorder.cleaned())
            .flatten();
        record::write_metrics(settings, spool, self.held, cleaned.as_ref());
    }

    /// The status line in the view and in systemd's `STATUS=`.
    fn say(&self, status: &str) {
        self.view.lock().unwrap().status = status.to_string();
        notify(&[NotifyState::Status(status)]);
    }

    /// Hands the binary's pages back to the kernel once a run or a send is
    /// done (`host::memory` says why). Where the kernel refuses (before
    /// Linux 5.4, a seccomp filter without madvise) it is said once and not
    /// tried again: the daemon then simply keeps its pages.
    fn release_code_pages(&mut self) {
        if self.pages_stay {
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
                self.pages_stay = true;
                tracing::info!("the binary's pages stay resident between runs: {e}");
            }
        }
    }
}

/// The windows a hold is worked out for: those known, and the config's
/// still in progress (a daemon started inside one holds for the rest of it).
fn hold_windows(
    settings: &crate::config::Settings,
    known: &[Window],
    now: SystemTime,
) -> Vec<Window> {
    let mut all = known.to_vec();
    let back = jiff::SignedDuration::try_from(settings.remediate.hold_max).unwrap_or_default();
    all.extend(windows::from_config(&settings.window, ts(now) - back, 3));
    windows::merge(all)
}
