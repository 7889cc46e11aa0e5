//! A maintenance window's next start, from a `[[window]]` entry or from
//! SSM's schedule (read in `aws::windows`), and the merged list of them.

use super::{next_starts, Schedule};
use crate::config::WindowSettings;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// RFC 3339, UTC.
    pub start: String,
    pub name: String,
    /// `config` or `ssm`.
    pub source: String,
    pub window_id: Option<String>,
    /// How long it lasts, when known (`[[window]] duration`; SSM's schedule does not say).
    #[serde(default)]
    pub duration_secs: Option<u64>,
}

/// A window of unknown length is taken to last this long: the console's default.
pub const ASSUMED_DURATION: std::time::Duration = std::time::Duration::from_secs(4 * 3600);

impl Window {
    pub fn start(&self) -> Option<Timestamp> {
        self.start.parse().ok()
    }

    /// `[start, end)` as system times.
    pub fn span(&self) -> Option<(std::time::SystemTime, std::time::SystemTime)> {
        let start = std::time::SystemTime::from(self.start()?);
        let length = self
            .duration_secs
            .map(std::time::Duration::from_secs)
            .unwrap_or(ASSUMED_DURATION);
        Some((start, start + length))
    }
}

/// The next `count` starts of each configured window after `from`.
pub fn from_config(windows: &[WindowSettings], from: Timestamp, count: usize) -> Vec<Window> {
    let mut out = Vec::new();
    for w in windows {
        let Ok(tz) = jiff::tz::TimeZone::get(&w.timezone) else {
            continue;
        };
        for start in next_starts(&w.schedule, &tz, w.offset_days, from, count) {
            out.push(Window {
                start: start.to_string(),
                name: w.name.clone(),
                source: "config".into(),
                window_id: None,
                duration_secs: Some(w.duration.as_secs()),
            });
        }
    }
    out
}

/// `2026-12-13T02:00Z`, `2026-12-13T02:00:00Z`, `2026-12-13T02:00:00.000Z`,
/// with an offset, or without a zone (UTC): SSM's `ExecutionTime` is not
/// always one shape.
pub fn parse_execution_time(text: &str) -> Option<Timestamp> {
    let t = text.trim();
    if let Ok(ts) = t.parse::<Timestamp>() {
        return Some(ts);
    }
    let (body, zone) = match t.strip_suffix('Z') {
        Some(b) => (b, "Z"),
        None => (t, "Z"),
    };
    // Minutes without seconds.
    let with_seconds = if body.len() == 16 {
        format!("{body}:00{zone}")
    } else {
        format!("{body}{zone}")
    };
    with_seconds.parse().ok()
}

/// Sorted by start, each (start, window) once.
pub fn merge(mut windows: Vec<Window>) -> Vec<Window> {
    windows.sort_by(|a, b| a.start.cmp(&b.start).then(a.name.cmp(&b.name)));
    windows.dedup_by(|a, b| {
        a.start == b.start
            && (a.window_id.is_some() && a.window_id == b.window_id || a.name == b.name)
    });
    windows
}

/// The first window starting after `now`.
pub fn next_after(windows: &[Window], now: Timestamp) -> Option<&Window> {
    windows
        .iter()
        .filter(|w| w.start().is_some_and(|s| s > now))
        .min_by(|a, b| a.start.cmp(&b.start))
}

/// Explains one expression: its next `count` starts after `from`.
pub fn explain(
    expr: &str,
    timezone: &str,
    offset_days: i64,
    from: Timestamp,
    count: usize,
) -> Result<Vec<Timestamp>, String> {
    let schedule = Schedule::parse(expr).map_err(|e| format!("{expr}: {e}"))?;
    let tz = jiff::tz::TimeZone::get(timezone).map_err(|_| {
        format!(
            "`{timezone}` is not an IANA time zone; write one such as \"Europe/Paris\" or \"UTC\""
        )
    })?;
    if offset_days != 0 && !schedule.is_cron() {
        return Err(
            "--offset-days applies to cron() expressions only, as ScheduleOffset does".into(),
        );
    }
    Ok(next_starts(&schedule, &tz, offset_days, from, count))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn execution_times_are_read_leniently() {
        let want: Timestamp = "2026-12-13T02:00:00Z".parse().unwrap();
        for text in [
            "2026-12-13T02:00Z",
            "2026-12-13T02:00:00Z",
            "2026-12-13T02:00:00.000Z",
            "2026-12-13T03:00:00+01:00",
            "2026-12-13T02:00",
            " 2026-12-13T02:00Z ",
        ] {
            assert_eq!(parse_execution_time(text), Some(want), "{text}");
        }
        assert_eq!(parse_execution_time("soon"), None);
    }

    #[test]
    fn merging_removes_the_same_window_seen_twice() {
        let w = |start: &str, name: &str, id: Option<&str>, source: &str| Window {
            start: start.into(),
            name: name.into(),
            source: source.into(),
            window_id: id.map(String::from),
            duration_secs: None,
        };
        let merged = merge(vec![
            w("2026-12-13T02:00:00Z", "prod", Some("mw-1"), "ssm"),
            w("2026-12-06T02:00:00Z", "dev", Some("mw-2"), "ssm"),
            w("2026-12-13T02:00:00Z", "prod", Some("mw-1"), "ssm"),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].name, "dev");
        let now: Timestamp = "2026-12-07T00:00:00Z".parse().unwrap();
        assert_eq!(next_after(&merged, now).unwrap().name, "prod");
    }
}
