use clap::Parser;
use std::io::Write;

fn main() {
    let cli = ssm_preflight::cli::Cli::parse();
    // The service logs each run at info level; commands stay quiet unless asked.
    let daemon = matches!(cli.command, ssm_preflight::cli::Command::Daemon);
    ssm_preflight::logging::init(cli.global.verbose + u8::from(daemon));
    // One TLS backend for every client in the process, installed before any is built.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let code = ssm_preflight::app::run(cli);
    let _ = std::io::stdout().flush();
    // Exit here rather than return: a check still stuck in the kernel past
    // its timeout must not hold the process open.
    std::process::exit(code.into());
}
