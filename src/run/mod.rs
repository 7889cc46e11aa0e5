//! One run, as both the commands and the service make it: prepare (config,
//! mode, identity), execute (the checks, concurrently, each under its
//! timeout), record (the state file), deliver (SSM, with spool and retry),
//! and the windows it is planned around. Below the commands; above the
//! checks, the daemon's machinery and the facts.

pub mod compliance;
pub mod deliver;
pub mod execute;
pub mod gate;
pub mod report;
pub mod state;
pub mod windows;

use crate::checks::{self, Context};
use crate::config::{self, ConfigError, Loaded, ModeSetting, Settings};
use crate::host::mode::{self, Detected, Mode};
use crate::host::{os_release::OsRelease, Root};
use deliver::SendError;
use report::{HostSummary, Report};
use state::{DeliveryState, State, StateDir};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

/// What the command line says about where and how to run.
#[derive(Debug, Clone)]
pub struct Options {
    /// The main config file; `None` for the default (which may be missing).
    pub config: Option<PathBuf>,
    /// Overrides `mode` in the config.
    pub mode: Option<ModeSetting>,
    /// The directory that stands for `/`.
    pub root: PathBuf,
}

/// Why a run could not be prepared or made.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("{0}")]
    Selection(String),
    #[error("cannot start the async runtime: {0}")]
    Runtime(#[source] std::io::Error),
}

/// Loads the config and checks what only the registry can tell: that every
/// selector it names is a check.
pub fn load_config(options: &Options) -> Result<Loaded, ConfigError> {
    let loaded = match &options.config {
        Some(p) => config::load(p, true)?,
        None => config::load(&PathBuf::from(config::DEFAULT_CONFIG), false)?,
    };
    check_selectors(&loaded)?;
    Ok(loaded)
}

/// `config validate PATH`: one file on its own, selectors included.
pub fn validate_file(path: &std::path::Path) -> Result<(), ConfigError> {
    check_selectors(&config::validate_file(path)?)
}

fn check_selectors(loaded: &Loaded) -> Result<(), ConfigError> {
    let s = &loaded.settings;
    for (key, list) in [
        ("checks.disable", &s.checks.disable),
        ("gate.checks", &s.gate.checks),
    ] {
        if let Some(name) = list.iter().find(|n| !checks::is_known_selector(n)) {
            return Err(config::invalid(
                &loaded.origins,
                key,
                format!(
                    "`{key}` names `{name}`, which is no check; write check IDs, families or groups from: {}",
                    checks::known_selectors().join(", ")
                ),
            ));
        }
    }
    Ok(())
}

/// The settings and where this host runs: what every run starts from.
pub struct Prepared {
    pub settings: Arc<Settings>,
    pub root: Root,
    pub detected: Detected,
}

pub fn prepare(options: &Options) -> Result<Prepared, ConfigError> {
    let root = Root::new(&options.root);
    // On the real root, the files that tell the mode are read while the
    // config loads: the config only says how to weigh them.
    let real_root = options.root == std::path::Path::new("/");
    let early = (real_root && options.mode != Some(ModeSetting::Local)).then(|| {
        let root = root.clone();
        crate::host::start(move || mode::signals(&root))
    });
    let settings = Arc::new(load_config(options)?.settings);
    let setting = options.mode.unwrap_or(settings.mode);
    let detected = if options.mode.is_none() && settings.mode == ModeSetting::Auto && !real_root {
        // A tree under --root (a fixture, a mounted image) is not this host:
        // its registration or DMI files must not send checks to real AWS.
        Detected {
            mode: Mode::Local,
            reason: format!("--root {} is not /, so auto means local and nothing is contacted; pass --mode ec2 or --mode hybrid to check the tree as a managed node", options.root.display()),
            instance_id: None,
            region: None,
        }
    } else {
        // Its files live under /var and /sys: one bounded look at them all,
        // so a hung mount cannot hold every command at its start.
        let budget = std::time::Duration::from_secs(1);
        let detected = if setting == ModeSetting::Local {
            Some(mode::detect(&root, setting))
        } else {
            let pending = early.unwrap_or_else(|| {
                let root = root.clone();
                crate::host::start(move || mode::signals(&root))
            });
            pending
                .wait(budget)
                .map(|signals| mode::decide(&signals, setting))
        };
        detected.unwrap_or_else(|| Detected {
            mode: Mode::Local,
            reason: "the files that tell the mode (the hybrid registration under /var, DMI under /sys) did not answer within 1s, so nothing is contacted: a mount is hung".into(),
            instance_id: None,
            region: None,
        })
    };
    tracing::info!(mode = detected.mode.as_str(), reason = %detected.reason, "mode decided");
    Ok(Prepared {
        settings,
        root,
        detected,
    })
}

impl Prepared {
    pub fn context(&self, now: SystemTime) -> Context {
        Context::new(
            self.root.clone(),
            self.settings.clone(),
            self.detected.clone(),
            None,
            now,
        )
    }
}

/// A command's async runtime: one thread, with the I/O and time drivers.
pub fn runtime() -> Result<CommandRuntime, RunError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map(|rt| CommandRuntime(Some(rt)))
        .map_err(RunError::Runtime)
}

/// A runtime that does not wait for its blocking threads when dropped.
///
/// Dropping a tokio runtime waits for every blocking task, and a check or
/// the mode read still stuck in the kernel past its timeout (a hung mount)
/// would then hold the command on whatever path it ends by, an early
/// error among them; their results are no longer wanted.
pub struct CommandRuntime(Option<tokio::runtime::Runtime>);

impl std::ops::Deref for CommandRuntime {
    type Target = tokio::runtime::Runtime;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("the runtime is there until dropped")
    }
}

impl Drop for CommandRuntime {
    fn drop(&mut self) {
        if let Some(rt) = self.0.take() {
            rt.shutdown_background();
        }
    }
}

/// Runs the selected checks (all but `checks.disable`, or `only`) and
/// assembles the report.
pub async fn run_checks(ctx: &Context, only: &[String]) -> Result<Report, RunError> {
    run_checks_reusing(ctx, only, &[]).await
}

/// `run_checks`, taking the results in `reuse` instead of running those
/// checks again (the daemon's cloud checks, asked of SSM at most once per
/// `daemon.schedule_cache`); each keeps its place in the report.
pub async fn run_checks_reusing(
    ctx: &Context,
    only: &[String],
    reuse: &[checks::CheckResult],
) -> Result<Report, RunError> {
    let selected = select(ctx, only)?;
    let clock = Instant::now();
    let order: Vec<String> = selected.iter().map(|c| c.info.id.clone()).collect();
    let fresh: Vec<_> = selected
        .into_iter()
        .filter(|c| !reuse.iter().any(|r| r.id == c.info.id))
        .collect();
    // The IMDS round trip heads every cloud check's chain of calls: it is
    // asked first, not once each check has been spawned and polled (a
    // thread started per blocking check, on the runtime's one thread).
    let asks_aws = fresh.iter().any(|c| c.info.group != checks::Group::Host);
    if !ctx.is_local() && asks_aws {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let _ = ctx.identity().await;
        });
    }
    let mut fresh = execute::run(fresh).await.into_iter();
    let results: Vec<checks::CheckResult> = order
        .iter()
        .filter_map(|id| match reuse.iter().find(|r| r.id == *id) {
            Some(r) => Some(r.clone()),
            None => fresh.next(),
        })
        .collect();
    for c in &results {
        tracing::debug!(check = %c.id, status = c.status.as_str(), duration_ms = c.duration_ms, "{}", c.summary);
    }
    log_critical_path(&results, clock.elapsed());
    Ok(Report::new(
        host_summary(ctx),
        ctx.now,
        clock.elapsed(),
        results,
    ))
}

/// `pkg.simulate` for a `check` that does not run it now (a dry run takes
/// seconds, `check` milliseconds): the daemon's last result, saying how
/// old it is, else a skip saying how to run it.
pub fn recorded_simulation(
    state: Result<state::State, state::StateError>,
    now: SystemTime,
) -> checks::CheckResult {
    let entry = &checks::pkg_simulate::ENTRY;
    let how = "`ssm-preflight check --simulate` runs it now";
    let recorded = state.as_ref().ok().and_then(|s| {
        let run = s.last_run.as_ref()?;
        let result = run.checks.iter().find(|c| c.id == entry.id)?.clone();
        let at: jiff::Timestamp = run.started_at.parse().ok()?;
        let ago = now.duration_since(SystemTime::from(at)).unwrap_or_default();
        Some((result, ago))
    });
    if let Some((mut result, ago)) = recorded {
        result.summary = format!(
            "{} (the daemon's dry run {} ago; {how})",
            result.summary,
            humantime::format_duration(Duration::from_secs(ago.as_secs()))
        );
        return result;
    }
    let why = match state {
        Err(e) => format!("the daemon's last dry run could not be read ({e})"),
        Ok(_) => "no dry run recorded yet (the daemon runs one on each of its runs)".into(),
    };
    checks::CheckResult {
        id: entry.id.into(),
        group: entry.group,
        title: entry.title.into(),
        status: checks::Status::Skip,
        severity: entry.severity,
        summary: format!("{why}; {how}"),
        remedy: None,
        details: Default::default(),
        duration_ms: 0,
    }
}

/// The checks to run: all but `checks.disable`, or those `only` names.
fn select(ctx: &Context, only: &[String]) -> Result<Vec<checks::Check>, RunError> {
    if let Some(name) = only.iter().find(|n| !checks::is_known_selector(n)) {
        return Err(RunError::Selection(format!(
            "--only names `{name}`, which is no check; use check IDs, families or groups from: {}",
            checks::known_selectors().join(", ")
        )));
    }
    let disabled = &ctx.settings.checks.disable;
    let wanted = |id: &str, group: checks::Group| {
        if only.is_empty() {
            !disabled.iter().any(|d| checks::selects(d, id, group))
        } else {
            only.iter().any(|o| checks::selects(o, id, group))
        }
    };
    // Entries nothing selects are not planned at all.
    let planned = checks::plan_where(ctx, |entry| {
        if only.is_empty() {
            wanted(entry.id, entry.group)
        } else {
            only.iter().any(|o| checks::reaches(o, entry))
        }
    });
    let selected: Vec<_> = planned
        .into_iter()
        .filter(|c| wanted(&c.info.id, c.info.group))
        .collect();
    if selected.is_empty() && !only.is_empty() {
        let available: Vec<String> = checks::plan_all(ctx)
            .iter()
            .map(|c| c.info.id.clone())
            .collect();
        return Err(RunError::Selection(format!(
            "no check on this host matches --only {}; the checks here are: {}",
            only.join(","),
            available.join(", ")
        )));
    }
    Ok(selected)
}

/// The checks run at once, each waiting on what it needs (the identity,
/// an endpoint's probe, the SSM client): the slowest one off the host is
/// the AWS side's critical path, the chain of dependent requests the run
/// waits for (`-v` shows it).
fn log_critical_path(results: &[checks::CheckResult], run: std::time::Duration) {
    let slowest = results
        .iter()
        .filter(|c| {
            !matches!(c.group, checks::Group::Host | checks::Group::Agent)
                || c.id == "agent.version"
        })
        .filter(|c| c.status != checks::Status::Skip)
        .max_by_key(|c| c.duration_ms);
    if let Some(slowest) = slowest {
        tracing::info!(
            check = %slowest.id,
            duration_ms = slowest.duration_ms,
            "the AWS side's critical path is {} at {} ms of the run's {} ms",
            slowest.id,
            slowest.duration_ms,
            run.as_millis()
        );
    }
}

/// What the run learned of the host: local files first, then what the
/// checks found out (IMDS, tags).
fn host_summary(ctx: &Context) -> HostSummary {
    let identity = ctx.known_identity();
    HostSummary {
        mode: ctx.host.mode,
        instance_id: identity
            .map(|i| i.instance_id.clone())
            .or(ctx.host.instance_id.clone()),
        region: ctx
            .settings
            .aws
            .region
            .clone()
            .or_else(|| identity.map(|i| i.region.clone()))
            .or(ctx.host.region.clone()),
        patch_group: ctx
            .shared
            .patch_group
            .get()
            .cloned()
            .or_else(|| ctx.settings.patch_group.value.clone()),
        // /etc is on the root filesystem, which cannot hang without the
        // whole host; a FIFO there is refused at once.
        os: OsRelease::read(&ctx.root)
            .ok()
            .flatten()
            .map(|(os, _)| os.pretty_name),
    }
}

/// A new run's identifier, the compliance `ExecutionId`.
pub fn new_run_id() -> String {
    uuid::Uuid::new_v4().to_string()
}

/// Sends one report to SSM: the node's identity and credentials, then one
/// PutComplianceItems call.
pub async fn send_report(ctx: &Context, report: &Report, run_id: &str) -> Result<(), SendError> {
    if ctx.host.mode == Mode::Local {
        return Err(SendError::Permanent {
            error: "this host runs in local mode, which reports nothing to SSM".into(),
            remedy: "Run with --mode ec2 or --mode hybrid (or mode = \"auto\" on a managed node)."
                .into(),
        });
    }
    let identity = match ctx.identity().await {
        Ok(id) => id.clone(),
        Err(crate::aws::identity::IdentityError::NotLooked(why)) => {
            return Err(SendError::Permanent { error: why.clone(), remedy: "Let ssm-preflight ask the instance metadata service (unset AWS_EC2_METADATA_DISABLED).".into() })
        }
        Err(crate::aws::identity::IdentityError::Failed { what, remedy }) => {
            return Err(SendError::Retryable(format!("cannot tell the node's identity: {what} ({remedy})")))
        }
    };
    let ssm = ctx.ssm_client(&identity).map_err(|e| SendError::Permanent {
        error: e.to_string(),
        remedy: "Give the agent credentials (credentials.role says how); ssm-preflight uses the same ones.".into(),
    })?;
    let upload = compliance::upload(report, &ctx.settings.gate, &identity.instance_id, run_id);
    crate::aws::compliance::send(&ssm, &upload).await
}

/// Delivers the state's last run unless a newer report already reached
/// SSM, records the attempt, and says what happened.
pub async fn deliver_last(
    ctx: &Context,
    dir: &StateDir,
    state: &mut State,
) -> Result<Option<Result<(), SendError>>, state::StateError> {
    let (Some(report), Some(delivery)) = (state.last_run.clone(), state.delivery.clone()) else {
        return Ok(None);
    };
    // Never an older report after a newer one: COMPLETE uploads replace.
    if state
        .last_delivered_run
        .as_deref()
        .is_some_and(|d| d > report.started_at.as_str())
    {
        return Ok(None);
    }
    let result = send_report(ctx, &report, &delivery.run_id).await;
    let mut delivery = delivery;
    deliver::record(&mut delivery, &result, SystemTime::now(), fastrand::f64());
    if delivery.state == DeliveryState::Delivered {
        state.last_delivered_run = Some(report.started_at.clone());
    }
    state.delivery = Some(delivery);
    dir.save(state)?;
    Ok(Some(result))
}

/// The state directory for commands that record runs.
pub fn state_dir() -> Result<StateDir, state::StateError> {
    StateDir::open(&state::default_dir())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    #[test]
    fn a_command_runtime_does_not_wait_for_a_stuck_blocking_thread() {
        let rt = super::runtime().unwrap();
        let (_stuck, wait) = std::sync::mpsc::channel::<()>();
        // Stuck for 10 s, as a read of a hung mount is (for ever, there).
        rt.spawn_blocking(move || wait.recv_timeout(Duration::from_secs(10)));
        let started = Instant::now();
        drop(rt);
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "dropping the runtime waited {:?} for its blocking thread",
            started.elapsed()
        );
    }
}
