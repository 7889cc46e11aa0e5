//! The commands: what each does with the parsed command line, and its exit code.

mod check;
pub mod cli;
mod config_cmd;
mod fleet;
mod gate;
pub mod logging;
mod status;
mod table;
mod windows;

use crate::run::compliance;
use crate::run::deliver::SendError;
pub use crate::text::safe;
use cli::{Cli, Command, ConfigCommand, Global};

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
        Command::Daemon => crate::service::run(&options(&cli.global)),
        Command::Fleet(args) => fleet::fleet(args),
        Command::Hold(args) => status::hold(args.release),
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            // An error may quote a file or SSM: escaped, its own line breaks kept.
            eprintln!(
                "ssm-preflight: {}",
                crate::text::safe_lines(&format!("{e:#}"))
            );
            EXIT_COULD_NOT_RUN
        }
    }
}

/// Where and how to run, from the global options.
pub fn options(global: &Global) -> crate::run::Options {
    crate::run::Options {
        config: global.config.clone(),
        mode: global.mode,
        root: global.root.clone(),
    }
}

/// `prepare` inside `rt`: the worker that reads the files telling the
/// mode is then a thread of the runtime's blocking pool, which runs a
/// check next, instead of one more thread made for it alone.
pub fn prepare_on(
    rt: &tokio::runtime::Runtime,
    global: &Global,
) -> Result<crate::run::Prepared, crate::config::ConfigError> {
    let _inside = rt.enter();
    crate::run::prepare(&options(global))
}

/// A panic inside a check becomes that check's `error` result; log it
/// instead of letting the default hook write over the table.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        tracing::error!("panic: {info}");
    }));
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
