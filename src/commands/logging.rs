//! Logs go to journald when stderr is the journal (systemd sets
//! `JOURNAL_STREAM` to stderr's device:inode), to stderr otherwise.

use std::os::unix::fs::MetadataExt;
use tracing_subscriber::prelude::*;
use tracing_subscriber::EnvFilter;

/// Whether stderr is connected to the journal, per systemd.exec(5).
fn stderr_is_journal() -> bool {
    let Ok(value) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = value.split_once(':') else {
        return false;
    };
    let stderr = std::fs::File::open("/proc/self/fd/2").and_then(|f| f.metadata());
    match (stderr, dev.parse::<u64>(), ino.parse::<u64>()) {
        (Ok(meta), Ok(dev), Ok(ino)) => meta.dev() == dev && meta.ino() == ino,
        _ => false,
    }
}

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "warn",
        1 => "info",
        2 => "debug",
        _ => "trace",
    };
    // RUST_LOG, when set, says more precisely what to show.
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    if stderr_is_journal() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald.with_syslog_identifier("ssm-preflight".into()))
                .try_init();
            return;
        }
    }
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_target(false),
        )
        .try_init();
}
