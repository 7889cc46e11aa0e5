//! Logs go to journald as native entries when stderr is the journal
//! (systemd sets `JOURNAL_STREAM` to stderr's device:inode), to stderr as
//! text otherwise — coloured only when stderr is a terminal.

use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::prelude::*;

/// Whether `fd` is the stream systemd connected to the journal, per
/// systemd.exec(5): `JOURNAL_STREAM` holds its device and inode, which an
/// `fstat` of the descriptor itself must match. (Opening `/proc/self/fd/2`
/// instead fails on a socket with ENXIO, which sent every service line to
/// the journal as plain text.)
fn is_journal_stream(fd: BorrowedFd<'_>, journal_stream: Option<&str>) -> bool {
    let Some((dev, ino)) = journal_stream.and_then(|v| v.split_once(':')) else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    match nix::sys::stat::fstat(fd) {
        Ok(st) => st.st_dev == dev && st.st_ino == ino,
        Err(_) => false,
    }
}

/// What `-v` shows, as filter directives. The libraries' own info lines
/// stay out below -vv, and aws-config's profile credentials module, which
/// logs the credentials it loaded (their access key ID) at info, below
/// -vvv: the daemon runs at info into the journal.
fn directives(verbose: u8) -> &'static str {
    match verbose {
        0 => "warn",
        1 => "warn,ssm_preflight=info",
        2 => "info,ssm_preflight=debug,aws_config::profile::credentials=warn",
        _ => "trace",
    }
}

pub fn init(verbose: u8) {
    let level = directives(verbose);
    // RUST_LOG, when set, says more precisely what to show: `target=level`
    // directives, as `Targets` reads them. (Not `EnvFilter`: its span and
    // field filters bring the regex engine and its Unicode tables into the
    // binary, which every run maps; nobody filters this tool's logs by a
    // field's value.)
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|directives| directives.parse::<Targets>().ok())
        .unwrap_or_else(|| {
            level
                .parse()
                .expect("the built-in levels are valid directives")
        });
    let journal_stream = std::env::var("JOURNAL_STREAM").ok();
    if is_journal_stream(std::io::stderr().as_fd(), journal_stream.as_deref()) {
        if let Ok(journald) = tracing_journald::layer() {
            // No prefix: a check's fields are CHECK_ID, CHECK_STATUS,
            // PATCH_GROUP and MESSAGE_ID, as the README's journalctl lines use.
            let journald = journald
                .with_syslog_identifier("ssm-preflight".into())
                .with_field_prefix(None);
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(journald)
                .try_init();
            return;
        }
    }
    let ansi = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none();
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(ansi)
                .with_target(false),
        )
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixStream;

    fn dev_ino(fd: BorrowedFd<'_>) -> String {
        let st = nix::sys::stat::fstat(fd).unwrap();
        format!("{}:{}", st.st_dev, st.st_ino)
    }

    #[test]
    fn the_libraries_info_lines_need_vv() {
        use tracing::Level;
        let parsed = |v: u8| directives(v).parse::<Targets>().unwrap();
        let ours = "ssm_preflight::service";
        let sdk = "aws_config::profile::credentials";
        assert!(!parsed(0).would_enable(ours, &Level::INFO));
        assert!(parsed(0).would_enable(sdk, &Level::WARN));
        assert!(parsed(1).would_enable(ours, &Level::INFO));
        assert!(!parsed(1).would_enable(sdk, &Level::INFO));
        assert!(parsed(2).would_enable(ours, &Level::DEBUG));
        assert!(!parsed(2).would_enable(sdk, &Level::INFO));
        assert!(!parsed(2).would_enable("aws_config::profile::credentials::exec", &Level::INFO));
        assert!(parsed(2).would_enable("aws_smithy_runtime::client", &Level::INFO));
        assert!(!parsed(2).would_enable("aws_smithy_runtime::client", &Level::DEBUG));
        assert!(parsed(3).would_enable(sdk, &Level::TRACE));
    }

    #[test]
    fn a_socket_named_by_journal_stream_is_the_journal() {
        // systemd hands the service a stream socket; /proc/self/fd/N of a
        // socket cannot be opened, so only fstat sees it.
        let (ours, _peer) = UnixStream::pair().unwrap();
        let value = dev_ino(ours.as_fd());
        assert!(is_journal_stream(ours.as_fd(), Some(&value)));
    }

    #[test]
    fn another_descriptor_or_no_variable_is_not_the_journal() {
        let (ours, peer) = UnixStream::pair().unwrap();
        let peers = dev_ino(peer.as_fd());
        assert!(!is_journal_stream(ours.as_fd(), Some(&peers)));
        assert!(!is_journal_stream(ours.as_fd(), None));
        assert!(!is_journal_stream(ours.as_fd(), Some("garbage")));
        assert!(!is_journal_stream(ours.as_fd(), Some("1:x")));
    }
}
