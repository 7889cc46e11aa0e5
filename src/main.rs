use clap::Parser;
use std::io::Write;

fn main() {
    let cli = match ssm_preflight::commands::cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are answers, not errors; any other
            // argument problem is "could not run" (3), never clap's 2, which
            // the exit-code contract reserves for a failed check.
            let code = if e.use_stderr() {
                ssm_preflight::commands::EXIT_COULD_NOT_RUN
            } else {
                0
            };
            std::process::exit(code.into());
        }
    };
    // The service logs each run at info level; commands stay quiet unless asked.
    let daemon = matches!(cli.command, ssm_preflight::commands::cli::Command::Daemon);
    ssm_preflight::commands::logging::init(cli.global.verbose + u8::from(daemon));
    // One TLS backend for every client in the process, installed before any is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let code = ssm_preflight::commands::run(cli);
    let _ = std::io::stdout().flush();
    // Exit here rather than return: a check still stuck in the kernel past
    // its timeout must not hold the process open.
    std::process::exit(code.into());
}
