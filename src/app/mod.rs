//! The commands: what each does with the parsed command line, and its exit code.

mod check;
mod config_cmd;
mod gate;
mod status;
mod windows;

pub use windows::windows_from_ssm;

use crate::checks::{self, aws_facts, Context};
use crate::cli::{Cli, Command, ConfigCommand, Global};
use crate::config::{self, ConfigError, Loaded, Settings};
use crate::host::mode::{self, Detected, Mode};
use crate::host::{os_release::OsRelease, Root};
use crate::report::delivery::{self, SendError};
use crate::report::state::{self, DeliveryState, State, StateDir};
use crate::report::{compliance, HostSummary, Report};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Exit code for "could not run": a bad config, a bad argument, an internal error.
pub const EXIT_COULD_NOT_RUN: u8 = 3;

pub fn run(cli: Cli) -> u8 {
    install_panic_hook();
    let result = match &cli.command {
        Command::Check(args) => check::check(&cli.global, args),
        Command::Config(ConfigCommand::Show) => config_cmd::config_show(&cli.global),
        Command::Config(ConfigCommand::Validate { path }) => {
            config_cmd::config_validate(&cli.global, path.as_ref())
        }
        Command::Status(args) => status::status(&cli.global, args),
        Command::Report => check::report_pending(&cli.global),
        Command::Gate(args) => gate::gate(&cli.global, args),
        Command::Windows(args) => windows::windows(&cli.global, args),
        Command::Daemon => crate::daemon::run(&cli.global),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ssm-preflight: {e:#}");
            EXIT_COULD_NOT_RUN
        }
    }
}

/// A panic inside a check becomes that check's `error` result; log it
/// instead of letting the default hook write over the table.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
    }));
}

fn load_config(global: &Global) -> Result<Loaded, ConfigError> {
    match &global.config {
        Some(p) => config::load(p, true),
        None => config::load(&PathBuf::from(config::DEFAULT_CONFIG), false),
    }
}

/// The settings and where this host runs: what every command starts from.
pub struct Prepared {
    pub settings: Arc<Settings>,
    pub root: Root,
    pub detected: Detected,
}

pub fn prepare(global: &Global) -> Result<Prepared, ConfigError> {
    let settings = Arc::new(load_config(global)?.settings);
    let root = Root::new(&global.root);
    let detected = mode::detect(&root, global.mode.unwrap_or(settings.mode));
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

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?)
}

/// Runs the selected checks (all but `checks.disable`, or `only`) and
/// assembles the report.
pub async fn run_checks(ctx: &Context, only: &[String]) -> anyhow::Result<Report> {
    for name in only {
        if !checks::is_known_selector(name) {
            anyhow::bail!(
                "--only names `{name}`, which is no check; use check IDs, families or groups from: {}",
                checks::known_selectors().join(", ")
            );
        }
    }
    let planned = checks::plan_all(ctx);
    let available: Vec<String> = planned.iter().map(|c| c.info.id.clone()).collect();
    let selected: Vec<_> = planned
        .into_iter()
        .filter(|c| {
            if only.is_empty() {
                !ctx.settings
                    .disabled
                    .iter()
                    .any(|d| checks::selects(d, &c.info.id, c.info.group))
            } else {
                only.iter()
                    .any(|o| checks::selects(o, &c.info.id, c.info.group))
            }
        })
        .collect();
    if selected.is_empty() && !only.is_empty() {
        anyhow::bail!(
            "no check on this host matches --only {}; the checks here are: {}",
            only.join(","),
            available.join(", ")
        );
    }
    let clock = Instant::now();
    let results = crate::engine::run(selected).await;
    for c in &results {
        tracing::debug!(check = %c.id, status = c.status.as_str(), duration_ms = c.duration_ms, "{}", c.summary);
    }
    Ok(Report::new(
        host_summary(ctx),
        ctx.now,
        clock.elapsed(),
        results,
    ))
}

/// What the run learned of the host: local files first, then what the
/// checks found out (IMDS, tags).
fn host_summary(ctx: &Context) -> HostSummary {
    let identity = ctx.shared.identity();
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
            .or_else(|| ctx.settings.patch_group.clone()),
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
    let identity = match aws_facts::identity(ctx).await {
        Ok(id) => id.clone(),
        Err(crate::aws::identity::IdentityError::NotLooked(why)) => {
            return Err(SendError::Permanent { error: why.clone(), remedy: "Let ssm-preflight ask the instance metadata service (unset AWS_EC2_METADATA_DISABLED).".into() })
        }
        Err(crate::aws::identity::IdentityError::Failed { what, remedy }) => {
            return Err(SendError::Retryable(format!("cannot tell the node's identity: {what} ({remedy})")))
        }
    };
    let ssm = aws_facts::ssm_client(ctx, &identity).map_err(|e| SendError::Permanent {
        error: e,
        remedy: "Give the agent credentials (credentials.role says how); ssm-preflight uses the same ones.".into(),
    })?;
    let upload = compliance::upload(report, &identity.instance_id, run_id);
    delivery::send(&ssm, &upload).await
}

/// Delivers the state's last run unless a newer report already reached
/// SSM, records the attempt, and says what happened.
pub async fn deliver_last(
    ctx: &Context,
    dir: &StateDir,
    state: &mut State,
) -> anyhow::Result<Option<Result<(), SendError>>> {
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
    delivery::record(&mut delivery, &result, SystemTime::now(), fastrand::f64());
    if delivery.state == DeliveryState::Delivered {
        state.last_delivered_run = Some(report.started_at.clone());
    }
    state.delivery = Some(delivery);
    dir.save(state).map_err(anyhow::Error::msg)?;
    Ok(Some(result))
}

/// One sentence on how a delivery went, for the person at the terminal.
pub fn delivery_sentence(
    result: &Result<(), SendError>,
    state_file: &std::path::Path,
    instance: Option<&str>,
) -> String {
    match result {
        Ok(()) => format!(
            "Report: sent to SSM as {} compliance for {}.",
            compliance::COMPLIANCE_TYPE,
            instance.unwrap_or("this node")
        ),
        Err(SendError::Retryable(why)) => format!(
            "Report: not sent yet — {why}. It is kept in {} and will be sent when SSM answers (by the daemon, or now with `ssm-preflight report`).",
            state_file.display()
        ),
        Err(SendError::Permanent { error, remedy }) => format!("Report: SSM refused it — {error}. {remedy}"),
    }
}

/// The state directory for commands that record runs.
pub fn state_dir() -> anyhow::Result<StateDir> {
    StateDir::open(&state::default_dir()).map_err(anyhow::Error::msg)
}
