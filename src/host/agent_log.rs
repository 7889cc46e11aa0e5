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
