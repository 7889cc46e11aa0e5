//! Holding the host's own updaters off a maintenance window
//! (`remediate.hold_updaters`): the most reported cause of failed patch
//! runs on Debian and Ubuntu is unattended-upgrades holding the dpkg lock
//! when the window opens. From `hold_before` ahead of the window to its end
//! the daemon stops the update timers present and runtime-masks them and
//! the services they start (`systemctl mask --runtime`: links under
//! /run/systemd, gone at the next boot), then unmasks them and starts the
//! timers that were running. An updater already running is never stopped
//! mid-transaction: the hold waits for it (`updater_wait`) and says so.
//! `daemon::hold` decides when; this module acts and records.

use crate::daemon::hold::{self, Ended, Held, HoldState, Holding, Span, Step};
use crate::host::systemd::{self, BusError, SystemBus, UnitInfo};
use jiff::Timestamp;
use std::time::Duration;

/// The timers that start the host's updaters.
pub const TIMERS: &[&str] = &[
    "apt-daily.timer",
    "apt-daily-upgrade.timer",
    "dnf-automatic.timer",
    "dnf-automatic-install.timer",
    "dnf-automatic-download.timer",
    "dnf-automatic-notifyonly.timer",
    "dnf5-automatic.timer",
];

/// The services that run an update. Not `unattended-upgrades.service`: on
/// Debian and Ubuntu it only finishes an upgrade at shutdown, and stopping
/// it runs that. `yum-cron.service` is the switch of yum-cron's nightly run.
pub const SERVICES: &[&str] = &[
    "apt-daily.service",
    "apt-daily-upgrade.service",
    "dnf-automatic.service",
    "dnf-automatic-install.service",
    "dnf-automatic-download.service",
    "dnf-automatic-notifyonly.service",
    "dnf5-automatic.service",
    "yum-cron.service",
    "packagekit-offline-update.service",
];

/// The journal's MESSAGE_IDs for the hold's actions.
pub const MESSAGE_HOLD_BEGAN: &str = "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e70";
pub const MESSAGE_HOLD_ENDED: &str = "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e71";
pub const MESSAGE_HOLD_FAILED: &str = "5b1c3a0e7f2d4c6a9e8b1d2f3a4c5e72";

/// This boot's ID: a hold recorded with another ended at a reboot.
pub fn boot_id(root: &crate::host::Root) -> String {
    std::fs::read_to_string(root.path("/proc/sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

/// Whether a service is doing its work now (a oneshot updater is
/// `activating`/`start` while it runs).
fn running(u: &UnitInfo) -> bool {
    matches!(
        u.active_state.as_str(),
        "activating" | "active" | "deactivating"
    ) && matches!(
        u.sub_state.as_str(),
        "running" | "start" | "start-pre" | "start-post" | "reload" | "stop" | "stop-post"
    )
}

/// The updater units present on this host, looked up at once.
pub async fn present(bus: &SystemBus) -> Result<Vec<UnitInfo>, BusError> {
    let names: Vec<&str> = TIMERS.iter().chain(SERVICES).copied().collect();
    let found = futures_util::future::join_all(names.iter().map(|n| systemd::unit(bus, n))).await;
    let mut out = Vec::new();
    for f in found {
        let u = f?;
        if u.exists() && u.load_state != "masked" {
            out.push(u);
        }
    }
    Ok(out)
}

/// What a hold would do now, for `check` (a dry run: nothing changes).
pub async fn plan(bus: &SystemBus) -> Result<Vec<String>, BusError> {
    Ok(present(bus).await?.into_iter().map(|u| u.name).collect())
}

/// Begins a hold: waits (bounded) for an updater that is running, stops
/// the active timers, masks every updater unit present for this boot.
pub async fn begin(
    bus: &SystemBus,
    span: &Span,
    wait: Duration,
    boot_id: &str,
) -> Result<Holding, BusError> {
    let mut units = present(bus).await?;
    let started = std::time::Instant::now();
    loop {
        let busy: Vec<&UnitInfo> = units
            .iter()
            .filter(|u| u.name.ends_with(".service") && running(u))
            .collect();
        if busy.is_empty() || started.elapsed() >= wait {
            break;
        }
        tracing::info!(
            "holding the updaters: {} is running; waiting for it to finish (up to {})",
            busy.iter()
                .map(|u| u.name.as_str())
                .collect::<Vec<_>>()
                .join(", "),
            humantime::format_duration(wait)
        );
        tokio::time::sleep(Duration::from_secs(2).min(wait)).await;
        units = present(bus).await?;
    }
    let left_running: Vec<String> = units
        .iter()
        .filter(|u| u.name.ends_with(".service") && running(u))
        .map(|u| u.name.clone())
        .collect();
    let restart: Vec<String> = units
        .iter()
        .filter(|u| u.name.ends_with(".timer") && u.active_state == "active")
        .map(|u| u.name.clone())
        .collect();
    for t in &restart {
        systemd::stop_unit(bus, t).await?;
    }
    let names: Vec<String> = units.iter().map(|u| u.name.clone()).collect();
    if !names.is_empty() {
        systemd::mask_runtime(bus, &names).await?;
    }
    Ok(Holding {
        window: span.window.clone(),
        window_id: span.window_id.clone(),
        began_at: Timestamp::now().to_string(),
        until: span.until.to_string(),
        units: names,
        restart,
        left_running,
        boot_id: boot_id.to_string(),
        window_start: Some(span.start.to_string()),
    })
}

/// Ends a hold: unmasks its units and starts the timers it stopped.
pub async fn end(bus: &SystemBus, holding: &Holding) -> Result<(), BusError> {
    if !holding.units.is_empty() {
        systemd::unmask_runtime(bus, &holding.units).await?;
    }
    for t in &holding.restart {
        systemd::start_unit(bus, t).await?;
    }
    Ok(())
}

/// `hold --release` could not end the hold; the daemon keeps trying.
#[derive(Debug, thiserror::Error)]
#[error("{units} could not be unmasked: {why}; the daemon retries")]
pub struct ReleaseError {
    units: String,
    why: BusError,
}

/// The daemon's hold: what the state file says, acted on when due.
pub struct Keeper {
    bus: SystemBus,
    boot_id: String,
    dir: std::path::PathBuf,
    pub state: HoldState,
    /// A hold that ended early (a reboot, a release by hand) is not begun
    /// again for the same window: spans ending by then are skipped.
    done_until: Option<Timestamp>,
    retry: Option<(u32, Timestamp)>,
    last_logged: Option<String>,
    /// Whether the masks of a hold found in the state file were looked at.
    verified: bool,
}

fn parse(t: &str) -> Option<Timestamp> {
    t.parse().ok()
}

impl Keeper {
    /// The hold as the state file in `dir` recorded it.
    pub fn new(root: &crate::host::Root, dir: &std::path::Path, bus: SystemBus) -> Keeper {
        let state = crate::run::state::read(dir)
            .map(|s| s.hold)
            .unwrap_or_default();
        Keeper {
            bus,
            boot_id: boot_id(root),
            dir: dir.to_path_buf(),
            state,
            done_until: None,
            retry: None,
            last_logged: None,
            verified: false,
        }
    }

    /// A hold the state file records on this boot whose units are no longer
    /// runtime-masked: a reboot the boot ID cannot show (in a container the
    /// kernel's boot ID outlives the container), or an unmask by hand.
    async fn masks_gone(&self, holding: &Holding) -> bool {
        if holding.units.is_empty() {
            return false;
        }
        for unit in &holding.units {
            match systemd::unit_file_state(&self.bus, unit).await {
                Ok(state) if state == "masked-runtime" => return false,
                Ok(_) => {}
                // Not asked: keep the record, the end unmasks anyway.
                Err(_) => return false,
            }
        }
        true
    }

    /// Writes the hold into the state file under its lock. A failure is
    /// logged; the hold goes on from memory.
    fn save(&self) {
        let result = crate::run::state::StateDir::open(&self.dir).and_then(|locked| {
            let mut s = locked.load().unwrap_or_default();
            s.hold = self.state.clone();
            locked.save(&s)
        });
        if let Err(e) = result {
            tracing::error!("the hold of the updaters is not recorded: {e}");
        }
    }

    fn ended(&mut self, window: String, how: &str, until: Option<Timestamp>) {
        tracing::info!(
            message_id = MESSAGE_HOLD_ENDED,
            "the hold of the updaters for window {} ended: {how}",
            crate::text::safe(&window)
        );
        self.state.holding = None;
        self.state.error = None;
        self.state.last = Some(Ended {
            window,
            ended_at: Timestamp::now().to_string(),
            how: how.to_string(),
        });
        self.done_until = until.max(self.done_until);
        self.retry = None;
        self.last_logged = None;
        self.save();
    }

    fn failed(&mut self, what: &str, e: &BusError) -> Timestamp {
        let mut text = format!("{what}: {e}");
        if text.contains("AccessDenied")
            || text.contains("Access denied")
            || text.contains("Interactive authentication required")
        {
            text.push_str(" (systemd wants CAP_SYS_ADMIN for this: install /usr/share/ssm-preflight/remediate.conf as a drop-in, as /usr/share/doc/ssm-preflight/docs/remediation.md says)");
        }
        // Once per distinct error: a bus that stays down must not flood the journal.
        if self.last_logged.as_deref() != Some(text.as_str()) {
            tracing::error!(message_id = MESSAGE_HOLD_FAILED, "{text}; retrying");
            self.last_logged = Some(text.clone());
        }
        self.state.error = Some(text);
        self.save();
        let attempt = self.retry.map_or(1, |(a, _)| a.saturating_add(1));
        let delay = crate::daemon::machine::backoff(
            attempt,
            Duration::from_secs(5),
            Duration::from_secs(300),
            fastrand::f64(),
        );
        let at = Timestamp::now() + jiff::SignedDuration::try_from(delay).unwrap_or_default();
        self.retry = Some((attempt, at));
        at
    }

    /// Does what is due at `now` and says when to look again (`None`:
    /// nothing to hold). With `hold_updaters` off, a hold still in force
    /// ends now.
    pub async fn tick(
        &mut self,
        now: Timestamp,
        windows: &[crate::config::schedule::window::Window],
        settings: &crate::config::RemediateSettings,
    ) -> Option<Timestamp> {
        if let Some((_, at)) = self.retry {
            if now < at {
                return Some(at);
            }
        }
        let step = self.due(now, windows, settings).await;
        tracing::debug!(?step, "the hold of the updaters");
        match step {
            Step::Begin(span) => {
                if let Some(h) = &self.state.holding {
                    // Only a hold whose masks vanished before its window
                    // opened is begun again while recorded.
                    tracing::info!(
                        "a reboot before window {} opened ({}) removed the runtime masks of the updaters; they are put back",
                        h.window,
                        span.start
                    );
                }
                Some(self.begin(&span, settings).await)
            }
            Step::End => {
                let h = self.state.holding.clone()?;
                Some(self.end(&h, now, settings).await)
            }
            Step::EndedByReboot => {
                let h = self.state.holding.clone()?;
                let how = if h.boot_id != self.boot_id {
                    "a reboot removed the runtime masks (the patch run rebooted the host)"
                } else {
                    "its runtime masks were gone when the daemon started (a reboot, or an unmask by hand)"
                };
                self.ended(h.window.clone(), how, parse(&h.until));
                Some(now)
            }
            Step::Wait { wake } => wake,
        }
    }

    /// What is due at `now`, from the recorded hold and the next window's
    /// span; at the first tick, also whether the recorded masks are gone.
    async fn due(
        &mut self,
        now: Timestamp,
        windows: &[crate::config::schedule::window::Window],
        settings: &crate::config::RemediateSettings,
    ) -> Step {
        let held = self.state.holding.as_ref().map(|h| Held {
            until: parse(&h.until).unwrap_or(now),
            boot_id: h.boot_id.clone(),
            window_start: h.window_start.as_deref().and_then(parse),
        });
        let next = if settings.hold_updaters {
            hold::skip_ended(
                hold::current_or_next(windows, now, settings.hold_before, settings.hold_max),
                self.done_until,
            )
        } else {
            None
        };
        let mut step = match &held {
            Some(h) if !settings.hold_updaters && h.boot_id == self.boot_id => Step::End,
            _ => hold::step(now, held.as_ref(), &self.boot_id, next.as_ref()),
        };
        if !self.verified {
            self.verified = true;
            if let (Some(h), Step::Wait { .. } | Step::End) = (&self.state.holding, &step) {
                if self.masks_gone(h).await {
                    step = held
                        .as_ref()
                        .and_then(|h| hold::again(now, h, next.as_ref()))
                        .unwrap_or(Step::EndedByReboot);
                }
            }
        }
        step
    }

    /// Begins the hold of `span`; when to look again.
    async fn begin(
        &mut self,
        span: &Span,
        settings: &crate::config::RemediateSettings,
    ) -> Timestamp {
        match begin(&self.bus, span, settings.updater_wait, &self.boot_id).await {
            Ok(h) => {
                tracing::info!(
                    message_id = MESSAGE_HOLD_BEGAN,
                    "holding {} until {} for window {}{}",
                    if h.units.is_empty() {
                        "nothing (no updater unit on this host)".to_string()
                    } else {
                        h.units.join(", ")
                    },
                    h.until,
                    crate::text::safe(&h.window),
                    if h.left_running.is_empty() {
                        String::new()
                    } else {
                        format!(
                            "; {} was still running after {} and is left to finish",
                            h.left_running.join(", "),
                            humantime::format_duration(settings.updater_wait)
                        )
                    }
                );
                self.state.holding = Some(h);
                self.state.error = None;
                self.retry = None;
                self.last_logged = None;
                self.save();
                span.until
            }
            Err(e) => self.failed("the updaters could not be held", &e),
        }
    }

    /// Ends the hold `h` as its window ended (or as the setting was turned
    /// off); when to look again.
    async fn end(
        &mut self,
        h: &Holding,
        now: Timestamp,
        settings: &crate::config::RemediateSettings,
    ) -> Timestamp {
        match end(&self.bus, h).await {
            Ok(()) => {
                let how = if settings.hold_updaters {
                    "the window ended; the updaters are unmasked"
                } else {
                    "remediate.hold_updaters was turned off; the updaters are unmasked"
                };
                self.ended(h.window.clone(), how, parse(&h.until));
                now
            }
            Err(e) => self.failed(&format!("{} could not be unmasked", h.units.join(", ")), &e),
        }
    }

    /// `ssm-preflight hold --release`: ends the hold now; the same window is
    /// not held again.
    pub async fn release(&mut self) -> Result<String, ReleaseError> {
        let Some(h) = self.state.holding.clone() else {
            return Ok("no hold is in force".into());
        };
        if h.boot_id != self.boot_id {
            self.ended(
                h.window.clone(),
                "a reboot removed the runtime masks",
                parse(&h.until),
            );
            return Ok(format!(
                "the hold for window {} had already ended with a reboot",
                h.window
            ));
        }
        match end(&self.bus, &h).await {
            Ok(()) => {
                self.ended(
                    h.window.clone(),
                    "released by hand (ssm-preflight hold --release)",
                    parse(&h.until),
                );
                Ok(format!("released: {} unmasked", h.units.join(", ")))
            }
            Err(e) => {
                self.failed(&format!("{} could not be unmasked", h.units.join(", ")), &e);
                Err(ReleaseError {
                    units: h.units.join(", "),
                    why: e,
                })
            }
        }
    }
}

/// What the daemon would do about the updaters, for `check` (a dry run:
/// nothing is stopped or masked).
pub async fn dry_run(ctx: &crate::checks::Context) -> String {
    use crate::config::schedule::window as windows;
    let settings = &ctx.settings.remediate;
    let now = Timestamp::try_from(ctx.now).unwrap_or_else(|_| Timestamp::now());
    let mut known = windows::from_config(&ctx.settings.window, now, 3);
    if ctx.host.mode != crate::host::mode::Mode::Local {
        known.extend(
            crate::run::windows::from_ssm(ctx)
                .await
                .map(|found| found.windows)
                .unwrap_or_default(),
        );
    }
    let Some(span) = crate::daemon::hold::current_or_next(
        &windows::merge(known),
        now,
        settings.hold_before,
        settings.hold_max,
    ) else {
        return "Remediate (dry run): hold_updaters is on, but no maintenance window is known: nothing would be held.".into();
    };
    let units = match plan(&ctx.shared.bus).await {
        Ok(u) if u.is_empty() => "no updater unit (none of apt-daily, dnf-automatic, yum-cron, PackageKit's offline update is installed)".to_string(),
        Ok(u) => u.join(", "),
        Err(e) => format!("the updater units (systemd cannot be asked now: {e})"),
    };
    format!(
        "Remediate (dry run): the daemon would hold {units} from {} until {}, for window {}{}.",
        span.from,
        span.until,
        span.window,
        span.window_id
            .map(|id| format!(" ({id})"))
            .unwrap_or_default()
    )
}
