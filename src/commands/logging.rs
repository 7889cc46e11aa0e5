//! Logs go to journald as native entries when stderr is the journal
//! (systemd sets `JOURNAL_STREAM` to stderr's device:inode), to stderr as
//! text otherwise — coloured only when stderr is a terminal.

use std::any::TypeId;
use std::io::IsTerminal;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::OnceLock;
use tracing::span::{Attributes, Id, Record};
use tracing::subscriber::{Interest, Subscriber};
use tracing::{Event, Metadata};
use tracing_core::span::Current;
use tracing_subscriber::filter::{LevelFilter, Targets};
use tracing_subscriber::prelude::*;
use tracing_subscriber::Layer;

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
    let _ = OnFirstLine {
        ansi: std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
        filter,
        text: OnceLock::new(),
    }
    .try_init();
}

/// The stderr subscriber, made when it first has a line to write.
///
/// tracing-subscriber's registry allocates its span table for 4,096
/// threads when it is made: 32 KB written, 8 page faults and 46,000
/// instructions, at the start of every command. Most commands write no
/// log line at the default level, so until one does, the filter alone
/// answers which callsites are enabled; the first enabled event or span
/// makes the same fmt subscriber as always, and from then on everything
/// goes to it (no span can exist before it does: spans come from it).
struct OnFirstLine {
    filter: Targets,
    ansi: bool,
    text: OnceLock<Box<dyn Subscriber + Send + Sync>>,
}

impl OnFirstLine {
    fn text(&self) -> &(dyn Subscriber + Send + Sync) {
        self.text
            .get_or_init(|| {
                Box::new(
                    tracing_subscriber::registry()
                        .with(self.filter.clone())
                        .with(
                            tracing_subscriber::fmt::layer()
                                .with_writer(std::io::stderr)
                                .with_ansi(self.ansi)
                                .with_target(false),
                        ),
                )
            })
            .as_ref()
    }
}

impl Subscriber for OnFirstLine {
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        if self.enabled(metadata) {
            Interest::always()
        } else {
            Interest::never()
        }
    }

    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter
            .would_enable(metadata.target(), metadata.level())
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Layer::<tracing_subscriber::Registry>::max_level_hint(&self.filter)
    }

    fn new_span(&self, span: &Attributes<'_>) -> Id {
        self.text().new_span(span)
    }

    fn event(&self, event: &Event<'_>) {
        self.text().event(event)
    }

    // The rest concern spans, which only the made subscriber has.
    fn record(&self, span: &Id, values: &Record<'_>) {
        if let Some(text) = self.text.get() {
            text.record(span, values)
        }
    }

    fn record_follows_from(&self, span: &Id, follows: &Id) {
        if let Some(text) = self.text.get() {
            text.record_follows_from(span, follows)
        }
    }

    fn enter(&self, span: &Id) {
        if let Some(text) = self.text.get() {
            text.enter(span)
        }
    }

    fn exit(&self, span: &Id) {
        if let Some(text) = self.text.get() {
            text.exit(span)
        }
    }

    fn clone_span(&self, id: &Id) -> Id {
        match self.text.get() {
            Some(text) => text.clone_span(id),
            None => id.clone(),
        }
    }

    fn try_close(&self, id: Id) -> bool {
        self.text.get().is_some_and(|text| text.try_close(id))
    }

    fn current_span(&self) -> Current {
        match self.text.get() {
            Some(text) => text.current_span(),
            None => Current::none(),
        }
    }

    unsafe fn downcast_raw(&self, id: TypeId) -> Option<*const ()> {
        if id == TypeId::of::<Self>() {
            return Some(self as *const Self as *const ());
        }
        // SAFETY: the made subscriber answers for its own types, as
        // tracing-subscriber's layers forward the question.
        self.text
            .get()
            .and_then(|text| unsafe { text.downcast_raw(id) })
    }
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
        let ours = "ssm_preflight::run::service";
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
    fn the_text_subscriber_is_made_at_the_first_line_to_write() {
        let dispatch = tracing::Dispatch::new(OnFirstLine {
            filter: directives(0).parse().unwrap(),
            ansi: false,
            text: OnceLock::new(),
        });
        let made = || {
            dispatch
                .downcast_ref::<OnFirstLine>()
                .expect("it answers for its own type")
                .text
                .get()
                .is_some()
        };
        tracing::dispatcher::with_default(&dispatch, || {
            tracing::info!("below the level: nothing to write");
            let span = tracing::info_span!("below the level too");
            let _inside = span.enter();
        });
        assert!(!made());
        tracing::dispatcher::with_default(&dispatch, || {
            let span = tracing::warn_span!("a span at the level");
            let _inside = span.enter();
            tracing::warn!("a line to write, inside it");
        });
        assert!(made());
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
