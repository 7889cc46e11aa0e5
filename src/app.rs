//! The commands: what each does with the parsed command line, and its exit code.

use crate::checks::{self, Context};
use crate::cli::{CheckArgs, Cli, Command, ConfigCommand, Global};
use crate::config::{self, ConfigError, Loaded};
use crate::host::{mode, os_release::OsRelease, Root};
use crate::report::{self, HostSummary, Report};
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Exit code for "could not run": a bad config, a bad argument, an internal error.
pub const EXIT_COULD_NOT_RUN: u8 = 3;

pub fn run(cli: Cli) -> u8 {
    install_panic_hook();
    let result = match &cli.command {
        Command::Check(args) => check(&cli.global, args),
        Command::Config(ConfigCommand::Show) => config_show(&cli.global),
        Command::Config(ConfigCommand::Validate { path }) => {
            config_validate(&cli.global, path.as_ref())
        }
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

fn config_path(global: &Global) -> (PathBuf, bool) {
    match &global.config {
        Some(p) => (p.clone(), true),
        None => (PathBuf::from(config::DEFAULT_CONFIG), false),
    }
}

fn load_config(global: &Global) -> Result<Loaded, ConfigError> {
    let (path, explicit) = config_path(global);
    config::load(&path, explicit)
}

fn check(global: &Global, args: &CheckArgs) -> anyhow::Result<u8> {
    let loaded = load_config(global)?;
    let settings = Arc::new(loaded.settings);
    let root = Root::new(&global.root);
    let detected = mode::detect(&root, global.mode.unwrap_or(settings.mode));
    tracing::info!(mode = detected.mode.as_str(), reason = %detected.reason, "mode decided");

    for name in &args.only {
        if !checks::is_known_selector(name) {
            anyhow::bail!(
                "--only names `{name}`, which is no check; use check IDs, families or groups from: {}",
                checks::known_selectors().join(", ")
            );
        }
    }
    let started_at = SystemTime::now();
    let ctx = Context::new(
        root.clone(),
        settings.clone(),
        detected.clone(),
        None,
        started_at,
    );
    let planned = checks::plan_all(&ctx);
    let available: Vec<String> = planned.iter().map(|c| c.info.id.clone()).collect();
    let selected: Vec<_> = planned
        .into_iter()
        .filter(|c| {
            if args.only.is_empty() {
                !settings
                    .disabled
                    .iter()
                    .any(|d| checks::selects(d, &c.info.id, c.info.group))
            } else {
                args.only
                    .iter()
                    .any(|o| checks::selects(o, &c.info.id, c.info.group))
            }
        })
        .collect();
    if selected.is_empty() && !args.only.is_empty() {
        anyhow::bail!(
            "no check on this host matches --only {}; the checks here are: {}",
            args.only.join(","),
            available.join(", ")
        );
    }

    let clock = Instant::now();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let results = runtime.block_on(crate::engine::run(selected));
    // Do not wait for a check thread stuck past its timeout.
    runtime.shutdown_background();

    // What the checks learned (IMDS, tags) fills in what local files could not.
    let identity = ctx.shared.identity();
    let host = HostSummary {
        mode: detected.mode,
        instance_id: identity
            .map(|i| i.instance_id.clone())
            .or(detected.instance_id),
        region: settings
            .aws
            .region
            .clone()
            .or_else(|| identity.map(|i| i.region.clone()))
            .or(detected.region),
        patch_group: ctx
            .shared
            .patch_group
            .get()
            .cloned()
            .or_else(|| settings.patch_group.clone()),
        os: OsRelease::read(&root)
            .ok()
            .flatten()
            .map(|(os, _)| os.pretty_name),
    };
    let report = Report::new(host, started_at, clock.elapsed(), results);
    for c in &report.checks {
        tracing::debug!(check = %c.id, status = c.status.as_str(), duration_ms = c.duration_ms, "{}", c.summary);
    }
    let mut out = anstream::stdout();
    if args.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        write!(out, "{}", report::render_table(&report))?;
    }
    Ok(report.verdict.exit_code())
}

fn config_show(global: &Global) -> anyhow::Result<u8> {
    let loaded = load_config(global)?;
    let mut out = std::io::stdout().lock();
    if loaded.files.is_empty() {
        writeln!(
            out,
            "# no config file found; every value is a built-in default"
        )?;
    } else {
        let names: Vec<String> = loaded
            .files
            .iter()
            .map(|f| f.display().to_string())
            .collect();
        writeln!(out, "# read, later files winning: {}", names.join(", "))?;
    }
    for (key, value) in config::effective_values(&loaded.settings) {
        let origin = origin_of(&loaded, &key);
        writeln!(out, "{key} = {value}  # {origin}")?;
    }
    Ok(0)
}

/// The file and line that set a key, or that set the table it falls back to.
fn origin_of(loaded: &Loaded, key: &str) -> String {
    if let Some(o) = loaded.origins.get(key) {
        return o.to_string();
    }
    "built-in default".to_string()
}

fn config_validate(global: &Global, path: Option<&PathBuf>) -> anyhow::Result<u8> {
    match path {
        Some(p) => {
            config::validate_file(p)?;
            println!("{} is valid", p.display());
        }
        None => {
            let loaded = load_config(global)?;
            if loaded.files.is_empty() {
                println!("no config file found; the built-in defaults apply");
            } else {
                let names: Vec<String> = loaded
                    .files
                    .iter()
                    .map(|f| f.display().to_string())
                    .collect();
                println!("valid: {}", names.join(", "));
            }
        }
    }
    Ok(0)
}
