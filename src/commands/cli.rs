//! The command line. Nothing else parses arguments.

use crate::config::ModeSetting;
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

#[derive(Debug, Parser)]
#[command(
    name = "ssm-preflight",
    version,
    about = "Finds what will break an AWS Systems Manager Patch Manager run on this host, before the maintenance window opens."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// The main config file; its config.d/ drop-ins are read from beside it.
    #[arg(long, global = true, value_name = "PATH", env = "SSM_PREFLIGHT_CONFIG")]
    pub config: Option<PathBuf>,

    /// Where this host runs; overrides `mode` in the config. `auto` decides
    /// from local files only, and `local` contacts no network at all.
    #[arg(long, global = true, value_parser = parse_mode, value_name = "auto|ec2|hybrid|local")]
    pub mode: Option<ModeSetting>,

    /// Read host files under DIR instead of / (fixture trees, a mounted image).
    #[arg(long, global = true, value_name = "DIR", default_value = "/")]
    pub root: PathBuf,

    /// More log output on stderr (-v info, -vv debug, -vvv trace).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
}

// `defer`: each command's arguments are defined when that command is the
// one run, not all ten for every run (`fleet` alone has a dozen): a
// `check` spent 225,000 instructions in clap before (BENCHMARKS.md).
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Run the checks now and print the results.
    ///
    /// Exit code: 0 all pass or skip, 1 a warning, 2 a failure, 3 could not run.
    Check(CheckArgs),
    /// Show or validate the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Show the last run, whether its report reached SSM, and why not.
    Status(StatusArgs),
    /// Send the last run's report to SSM now, if it has not reached it.
    Report,
    /// The pre-install hook: exit 1, saying why, when this host must not be patched.
    ///
    /// Uses the last run when it is younger than --max-age, else runs the checks now.
    Gate(GateArgs),
    /// The host's next maintenance windows, or (--explain) the next starts
    /// of a schedule expression.
    Windows(WindowsArgs),
    /// Run as the service: before each window and between them, reporting each run.
    Daemon,
    /// The hold of this host's own updaters around a window
    /// (`remediate.hold_updaters`); `--release` (root) ends it now.
    Hold(HoldArgs),
    /// For an operator: which nodes of a patch group or window will be
    /// patched, held back by the gate, or fail — read from SSM with your
    /// own AWS credentials.
    ///
    /// Exit code: 0 every group clear of its window task's error threshold,
    /// 1 one close to it (a fifth of its allowance, or one failure, from crossing), 2 one over it, 3 could not look.
    Fleet(FleetArgs),
}

#[derive(Debug, Args)]
pub struct HoldArgs {
    /// End the hold now: unmask the updaters and start their timers again.
    #[arg(long)]
    pub release: bool,
}

#[derive(Debug, Args)]
pub struct FleetArgs {
    /// A patch group (the Patch Group or PatchGroup tag's value); repeat for more.
    #[arg(long = "patch-group", value_name = "NAME")]
    pub patch_group: Vec<String>,
    /// A maintenance window: the nodes its targets name; repeat for more.
    #[arg(long, value_name = "mw-…")]
    pub window: Vec<String>,
    /// A report older than this is stale, such as "24h" or "3d".
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    pub stale_after: std::time::Duration,
    /// The threshold for a group no window's patch task covers, such as "10%".
    #[arg(long, default_value = "10%", value_parser = parse_percent, value_name = "PERCENT")]
    pub max_blocked: f64,
    /// Read the failing checks of at most this many non-compliant nodes
    /// (one call each); the rest count as blocked.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(0..=100_000))]
    pub max_detail: u64,
    /// Print JSON.
    #[arg(long, conflicts_with = "csv")]
    pub json: bool,
    /// Print CSV, one row per node.
    #[arg(long)]
    pub csv: bool,
    /// The AWS region (else AWS_REGION or your profile's).
    #[arg(long)]
    pub region: Option<String>,
    /// The AWS CLI profile to use (else AWS_PROFILE or default).
    #[arg(long)]
    pub profile: Option<String>,
}

fn parse_percent(text: &str) -> Result<f64, String> {
    let number = text.trim().trim_end_matches('%');
    match number.parse::<f64>() {
        // Hundredths of a point are the finest share a fleet shows; a
        // finer one would print as hundreds of digits.
        Ok(p) if (0.0..=100.0).contains(&p) => Ok((p * 100.0).round() / 100.0),
        _ => Err(format!(
            "{text:?} is not a share between 0% and 100%, such as 10%"
        )),
    }
}

#[derive(Debug, Args)]
pub struct WindowsArgs {
    /// How many start times to show.
    #[arg(long, default_value_t = 5)]
    pub count: usize,
    /// Print JSON: for --explain, an array of RFC 3339 UTC times.
    #[arg(long)]
    pub json: bool,
    /// A schedule expression to explain: cron(…), rate(…) or at(…).
    #[arg(long, value_name = "EXPR")]
    pub explain: Option<String>,
    /// The window's time zone (its ScheduleTimezone), an IANA name.
    #[arg(long, default_value = "UTC", requires = "explain")]
    pub timezone: String,
    /// Days after the cron date (the window's ScheduleOffset).
    #[arg(long, default_value_t = 0, requires = "explain")]
    pub offset_days: i64,
    /// Start times strictly after this instant (RFC 3339); default now.
    #[arg(long, value_name = "RFC3339", requires = "explain")]
    pub from: Option<String>,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Print the status as JSON.
    #[arg(long)]
    pub json: bool,
    /// Ask the daemon to run the checks now (root only).
    #[arg(long)]
    pub refresh: bool,
}

#[derive(Debug, Args)]
pub struct GateArgs {
    /// How old the last run may be to decide on it, such as "30m".
    #[arg(long, default_value = "30m", value_parser = parse_duration)]
    pub max_age: std::time::Duration,
}

fn parse_mode(text: &str) -> Result<ModeSetting, String> {
    text.parse()
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    crate::config::units::HumanDuration::parse(text).map(|d| d.0)
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,

    /// Run only these checks: IDs (`pkg.lock`), families (`disk`) or groups
    /// (`host`), comma-separated. Overrides `checks.disable`.
    #[arg(long, value_delimiter = ',', value_name = "ID,...")]
    pub only: Vec<String>,

    /// Also send the results to SSM as compliance (Custom:PatchPreflight)
    /// and record them in the state file; a report SSM cannot take now is kept.
    #[arg(long)]
    pub report: bool,

    /// List every skipped check on its own line (the table folds skipped
    /// checks that share a reason into one line).
    #[arg(long)]
    pub all: bool,

    /// Run the package manager's dry run (pkg.simulate) now, instead of
    /// showing the daemon's last one; it takes seconds.
    #[arg(long)]
    pub simulate: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Print the effective settings and the file and line each came from.
    Show,
    /// Check a config file (default: the main file and its drop-ins).
    Validate {
        /// One file to check on its own.
        path: Option<PathBuf>,
    },
}
