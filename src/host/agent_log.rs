//! The agent's own logs, read from the end: they grow to tens of megabytes
//! and only the recent lines matter.

use super::Root;
use std::io::{Read, Seek, SeekFrom};
use std::time::SystemTime;

pub const AGENT_LOG: &str = "/var/log/amazon/ssm/amazon-ssm-agent.log";
pub const ERRORS_LOG: &str = "/var/log/amazon/ssm/errors.log";

/// How much of each file's end is read: hours of a busy agent's log.
const TAIL_BYTES: u64 = 256 * 1024;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorLine {
    pub at: SystemTime,
    pub text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Facts {
    /// When the agent log was last written; `None` when there is none.
    pub modified: Option<SystemTime>,
    /// ERROR lines from both files, oldest first.
    pub errors: Vec<ErrorLine>,
    pub unreadable: Option<String>,
}

/// The last `TAIL_BYTES` of a file, from the first whole line.
fn tail(path: &std::path::Path) -> std::io::Result<Option<(SystemTime, String)>> {
    let mut file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let meta = file.metadata()?;
    let start = meta.len().saturating_sub(TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut buf = Vec::with_capacity((meta.len() - start) as usize);
    file.read_to_end(&mut buf)?;
    let mut text = String::from_utf8_lossy(&buf).into_owned();
    if start > 0 {
        // The first line was cut by the seek.
        text = text
            .split_once('\n')
            .map(|(_, rest)| rest.to_string())
            .unwrap_or_default();
    }
    Ok(Some((meta.modified()?, text)))
}

/// The time zone the host's programs write local time in: the TZif file
/// `<root>/etc/localtime`, named after its link into the zoneinfo tree;
/// UTC when there is none or it cannot be read.
///
/// Read here instead of with jiff's `TimeZone::system()`: that looks the
/// link's name up in jiff's zoneinfo database, which lists the whole of
/// `/usr/share/zoneinfo` (some 20 directories and 600 files) on first use,
/// in every run; and it would read this machine's zone, not the root's.
pub fn local_timezone(root: &Root) -> jiff::tz::TimeZone {
    // A TZif file is a few KiB; anything far larger is not one.
    const MAX: u64 = 256 * 1024;
    let link = root.path("/etc/localtime");
    let target = std::fs::read_link(&link).ok();
    let name = target
        .as_ref()
        .and_then(|t| {
            let t = t.to_string_lossy();
            t.split_once("zoneinfo/").map(|(_, name)| name.to_string())
        })
        .unwrap_or_else(|| "localtime".to_string());
    // An absolute link points into the root's own tree, not this machine's.
    let path = match &target {
        Some(t) if t.is_absolute() => root.path(&t.to_string_lossy()),
        _ => link,
    };
    let data = std::fs::metadata(&path)
        .ok()
        .filter(|m| m.is_file() && m.len() <= MAX)
        .and_then(|_| std::fs::read(&path).ok());
    data.and_then(|bytes| jiff::tz::TimeZone::tzif(&name, &bytes).ok())
        .unwrap_or(jiff::tz::TimeZone::UTC)
}

pub fn gather(root: &Root, tz: &jiff::tz::TimeZone) -> Facts {
    let mut facts = Facts::default();
    for path in [AGENT_LOG, ERRORS_LOG] {
        match tail(&root.path(path)) {
            Ok(Some((modified, text))) => {
                if path == AGENT_LOG {
                    facts.modified = Some(modified);
                }
                facts.errors.extend(error_lines(&text, tz));
            }
            Ok(None) => {}
            Err(e) => facts.unreadable = Some(format!("{path}: {e}")),
        }
    }
    facts.errors.sort_by_key(|e| e.at);
    facts.errors.dedup();
    facts
}

/// Lines like `2024-05-01 10:23:45 ERROR [ssm-agent-worker] …` (the agent
/// writes local time, with or without fractions of a second).
pub fn error_lines(text: &str, tz: &jiff::tz::TimeZone) -> Vec<ErrorLine> {
    text.lines()
        .filter_map(|line| {
            let stamp = line.get(..19)?;
            let rest = line[19..].trim_start_matches(|c: char| c == '.' || c.is_ascii_digit());
            let rest = rest.trim_start();
            if !rest.starts_with("ERROR") {
                return None;
            }
            let civil: jiff::civil::DateTime = stamp.replacen(' ', "T", 1).parse().ok()?;
            let at = civil.to_zoned(tz.clone()).ok()?.timestamp();
            Some(ErrorLine {
                at: SystemTime::from(at),
                text: line.trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const PARIS: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/zoneinfo/Europe/Paris"
    );

    fn offset_in_july(tz: &jiff::tz::TimeZone) -> i32 {
        let t: jiff::Timestamp = "2026-07-01T12:00:00Z".parse().unwrap();
        tz.to_offset(t).seconds()
    }

    #[test]
    fn the_roots_localtime_named_by_its_link() {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir(root.path().join("etc")).unwrap();
        let localtime = root.path().join("etc/localtime");
        let root_of = |dir: &std::path::Path| Root::new(dir.to_path_buf());
        // No /etc/localtime: UTC.
        let none = local_timezone(&root_of(root.path()));
        assert_eq!(offset_in_july(&none), 0);
        // A link into the root's zoneinfo tree, as Debian and Amazon Linux
        // make it: absolute, so read under the root.
        // (A zone only the root has: this machine's would not be found.)
        let zoneinfo = root.path().join("usr/share/zoneinfo/Test");
        std::fs::create_dir_all(&zoneinfo).unwrap();
        std::fs::copy(PARIS, zoneinfo.join("Only_In_Root")).unwrap();
        std::os::unix::fs::symlink("/usr/share/zoneinfo/Test/Only_In_Root", &localtime).unwrap();
        let linked = local_timezone(&root_of(root.path()));
        assert_eq!(linked.iana_name(), Some("Test/Only_In_Root"));
        assert_eq!(offset_in_july(&linked), 2 * 3600);
        // A relative link, followed as the file system does.
        std::fs::remove_file(&localtime).unwrap();
        std::os::unix::fs::symlink("../usr/share/zoneinfo/Test/Only_In_Root", &localtime).unwrap();
        let relative = local_timezone(&root_of(root.path()));
        assert_eq!(relative.iana_name(), Some("Test/Only_In_Root"));
        assert_eq!(offset_in_july(&relative), 2 * 3600);
        // A copy: the same zone, without a name.
        std::fs::remove_file(&localtime).unwrap();
        std::fs::copy(PARIS, &localtime).unwrap();
        assert_eq!(
            offset_in_july(&local_timezone(&root_of(root.path()))),
            2 * 3600
        );
        // Not a TZif file, or a FIFO (never opened: it would block): UTC.
        std::fs::write(&localtime, "not a zone").unwrap();
        assert_eq!(offset_in_july(&local_timezone(&root_of(root.path()))), 0);
        std::fs::remove_file(&localtime).unwrap();
        nix::unistd::mkfifo(&localtime, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert_eq!(offset_in_july(&local_timezone(&root_of(root.path()))), 0);
    }
}
