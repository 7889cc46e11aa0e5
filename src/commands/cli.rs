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

#[derive(Debug, Subcommand)]
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
