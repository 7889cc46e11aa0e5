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
    #[arg(long, global = true, value_enum)]
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
