//! When the host's own updaters are held off a window (`remediate.
//! hold_updaters`), pure: the span of each window's hold, what to do now
//! given the recorded hold, and what a reboot in between means. The D-Bus
//! actions and the state file are the run layer's.

use crate::config::schedule::window::Window;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// A hold in force, as the state file records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holding {
    pub window: String,
    pub window_id: Option<String>,
    /// RFC 3339: when it began and when it ends.
    pub began_at: String,
    pub until: String,
    /// The units masked.
    pub units: Vec<String>,
    /// The timers that were active, started again at the end.
    pub restart: Vec<String>,
    /// Updaters that were running when the hold began and still were after
    /// `updater_wait`: left to finish.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub left_running: Vec<String>,
    /// /proc/sys/kernel/random/boot_id when it began: a runtime mask does
    /// not outlive the boot.
    pub boot_id: String,
    /// RFC 3339: when the window opens. A reboot before it is not the
    /// patch run's: the hold is put back (absent in older state files).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window_start: Option<String>,
}

/// The last hold that ended, and how.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ended {
    pub window: String,
    pub ended_at: String,
    /// "the window ended", "a reboot removed the masks", "released by hand".
    pub how: String,
}

/// The hold's part of the state file.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct HoldState {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub holding: Option<Holding>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last: Option<Ended>,
    /// Why the last action failed, while it is being retried.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl HoldState {
    /// One line for `status`.
    pub fn sentence(&self) -> Option<String> {
        if let Some(h) = &self.holding {
            let window = match &h.window_id {
                Some(id) => format!("{} ({id})", h.window),
                None => h.window.clone(),
            };
            let mut s = format!(
                "holding {} until {}, for window {window}",
                h.units.join(", "),
                h.until
            );
            if !h.left_running.is_empty() {
                s.push_str(&format!(
                    "; {} was already running and was left to finish",
                    h.left_running.join(", ")
                ));
            }
            if let Some(e) = &self.error {
                s.push_str(&format!(
                    "; the last attempt to end it failed and is retried: {e}"
                ));
            }
            return Some(s);
        }
        if let Some(e) = &self.error {
            // The error already says what failed ("the updaters could not be held: …").
            return Some(format!("{e}; it is retried"));
        }
        self.last.as_ref().map(|l| {
            format!(
                "the last hold (window {}) ended at {}: {}",
                l.window, l.ended_at, l.how
            )
        })
    }
}

/// A hold: from `hold_before` ahead of a window's start to its end (its
/// real duration when known, else `hold_max`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    pub window: String,
    pub window_id: Option<String>,
    pub from: Timestamp,
    /// When the window opens (from + hold_before).
    pub start: Timestamp,
    pub until: Timestamp,
}

fn signed(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

/// The hold for one window; `None` when its start cannot be read.
pub fn span(window: &Window, hold_before: Duration, hold_max: Duration) -> Option<Span> {
    let start = window.start()?;
    let length = window
        .duration_secs
        .map(Duration::from_secs)
        .unwrap_or(hold_max)
        .min(hold_max);
    Some(Span {
        window: window.name.clone(),
        window_id: window.window_id.clone(),
        from: start.checked_sub(signed(hold_before)).unwrap_or(start),
        start,
        until: start.checked_add(signed(length)).unwrap_or(start),
    })
}

/// The hold in force at `now`, else the next one to start: the earliest
/// span that has not ended. Overlapping windows make one hold each, in turn.
pub fn current_or_next(
    windows: &[Window],
    now: Timestamp,
    hold_before: Duration,
    hold_max: Duration,
) -> Option<Span> {
    windows
        .iter()
        .filter_map(|w| span(w, hold_before, hold_max))
        .filter(|s| s.until > now)
        .min_by_key(|s| (s.from, s.until))
}

/// What the recorded hold says: held until a time, on a boot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Held {
    pub until: Timestamp,
    pub boot_id: String,
    /// When its window opens, if recorded.
    pub window_start: Option<Timestamp>,
}

/// What the daemon does about holding now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Stop and mask the updaters for this span.
    Begin(Span),
    /// The hold's time is over: unmask them.
    End,
    /// A runtime mask does not outlive a reboot: the hold recorded on an
    /// earlier boot is over by itself (record it ended; never re-mask).
    EndedByReboot,
    /// Nothing to do until `wake` (or never).
    Wait { wake: Option<Timestamp> },
}

/// The step for `now`: a recorded hold first (over by reboot, over by
/// time, or still on), else the span that has begun, else the next start.
/// A hold recorded on another boot ends without a new one for the same
/// window: the patch run that rebooted the host is under way or done.
pub fn step(now: Timestamp, held: Option<&Held>, boot_id: &str, next: Option<&Span>) -> Step {
    if let Some(h) = held {
        if h.boot_id != boot_id {
            return again(now, h, next).unwrap_or(Step::EndedByReboot);
        }
        if now >= h.until {
            return Step::End;
        }
        return Step::Wait {
            wake: Some(h.until),
        };
    }
    match next {
        Some(s) if s.from <= now && now < s.until => Step::Begin(s.clone()),
        Some(s) if s.from > now => Step::Wait { wake: Some(s.from) },
        _ => Step::Wait { wake: None },
    }
}

/// After a reboot ended a hold, the span of that same window must not
/// begin again: `next` is skipped when it is the window just held.
/// After the masks of `held` vanished (a reboot): a window that has not
/// opened yet is held again — the reboot was not the patch run's (often
/// the one `reboot.pending` asks for ahead of it).
pub fn again(now: Timestamp, held: &Held, next: Option<&Span>) -> Option<Step> {
    let start = held.window_start?;
    match next {
        Some(s) if now < start && s.start == start && s.from <= now => Some(Step::Begin(s.clone())),
        _ => None,
    }
}

pub fn skip_ended(next: Option<Span>, ended_until: Option<Timestamp>) -> Option<Span> {
    match (next, ended_until) {
        (Some(s), Some(until)) if s.until <= until => None,
        (next, _) => next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn window(start: &str, hours: Option<u64>) -> Window {
        Window {
            start: start.into(),
            name: "production-linux".into(),
            source: "config".into(),
            window_id: Some("mw-0123456789abcdef0".into()),
            duration_secs: hours.map(|h| h * 3600),
        }
    }

    const MIN15: Duration = Duration::from_secs(15 * 60);
    const H4: Duration = Duration::from_secs(4 * 3600);

    #[test]
    fn a_window_s_timeline() {
        let w = [window("2026-12-20T02:00:00Z", Some(3))];
        let boot = "boot-a";
        let next = current_or_next(&w, t("2026-12-20T00:00:00Z"), MIN15, H4).unwrap();
        assert_eq!(next.from, t("2026-12-20T01:45:00Z"));
        assert_eq!(
            next.until,
            t("2026-12-20T05:00:00Z"),
            "the window's own 3 h"
        );
        // Before the lead time: wake at it.
        assert_eq!(
            step(t("2026-12-20T00:00:00Z"), None, boot, Some(&next)),
            Step::Wait {
                wake: Some(t("2026-12-20T01:45:00Z"))
            }
        );
        // At it: begin.
        assert_eq!(
            step(t("2026-12-20T01:45:00Z"), None, boot, Some(&next)),
            Step::Begin(next.clone())
        );
        // Held: wait for the end, then end.
        let held = Held {
            until: next.until,
            boot_id: boot.into(),
            window_start: Some(next.start),
        };
        assert_eq!(
            step(t("2026-12-20T03:00:00Z"), Some(&held), boot, Some(&next)),
            Step::Wait {
                wake: Some(next.until)
            }
        );
        assert_eq!(
            step(t("2026-12-20T05:00:00Z"), Some(&held), boot, Some(&next)),
            Step::End
        );
        // After the window: nothing left of it.
        assert_eq!(
            current_or_next(&w, t("2026-12-20T05:00:00Z"), MIN15, H4),
            None
        );
    }

    #[test]
    fn a_window_of_unknown_length_holds_at_most_hold_max() {
        let w = [window("2026-12-20T02:00:00Z", None)];
        let s = current_or_next(&w, t("2026-12-20T00:00:00Z"), MIN15, H4).unwrap();
        assert_eq!(s.until, t("2026-12-20T06:00:00Z"));
        let long = [window("2026-12-20T02:00:00Z", Some(24))];
        let s = current_or_next(&long, t("2026-12-20T00:00:00Z"), MIN15, H4).unwrap();
        assert_eq!(
            s.until,
            t("2026-12-20T06:00:00Z"),
            "hold_max bounds a long window too"
        );
    }

    #[test]
    fn a_reboot_in_the_middle_ends_the_hold_without_a_new_one() {
        let w = [window("2026-12-20T02:00:00Z", Some(3))];
        let now = t("2026-12-20T03:00:00Z");
        let held = Held {
            until: t("2026-12-20T05:00:00Z"),
            boot_id: "boot-a".into(),
            window_start: Some(t("2026-12-20T02:00:00Z")),
        };
        let next = current_or_next(&w, now, MIN15, H4);
        assert_eq!(
            step(now, Some(&held), "boot-b", next.as_ref()),
            Step::EndedByReboot
        );
        // The same window's span is not begun again once it ended by reboot.
        let next = skip_ended(next, Some(held.until));
        assert_eq!(
            step(now, None, "boot-b", next.as_ref()),
            Step::Wait { wake: None }
        );
    }

    #[test]
    fn a_reboot_before_the_window_opens_puts_the_hold_back() {
        // Issue #26 item 11: held from 01:45, a reboot at 01:49 ended the
        // hold for good and the updaters ran into the window.
        let w = [window("2026-12-20T02:00:00Z", Some(3))];
        let now = t("2026-12-20T01:49:00Z");
        let next = current_or_next(&w, now, MIN15, H4).unwrap();
        let held = Held {
            until: next.until,
            boot_id: "boot-a".into(),
            window_start: Some(next.start),
        };
        assert_eq!(
            step(now, Some(&held), "boot-b", Some(&next)),
            Step::Begin(next.clone())
        );
        // Masks gone on the same boot (a container's reboot): the same.
        assert_eq!(
            again(now, &held, Some(&next)),
            Some(Step::Begin(next.clone()))
        );
        // Once the window has opened, the reboot is the patch run's.
        let later = t("2026-12-20T02:30:00Z");
        assert_eq!(
            step(later, Some(&held), "boot-b", Some(&next)),
            Step::EndedByReboot
        );
        // A state file from before the window's start was recorded: as before.
        let old = Held {
            window_start: None,
            ..held
        };
        assert_eq!(
            step(now, Some(&old), "boot-b", Some(&next)),
            Step::EndedByReboot
        );
    }

    #[test]
    fn the_earliest_unfinished_window_comes_first() {
        let w = [
            window("2026-12-27T02:00:00Z", Some(3)),
            window("2026-12-20T02:00:00Z", Some(3)),
        ];
        let s = current_or_next(&w, t("2026-12-19T00:00:00Z"), MIN15, H4).unwrap();
        assert_eq!(s.from, t("2026-12-20T01:45:00Z"));
        let s = current_or_next(&w, t("2026-12-20T06:00:00Z"), MIN15, H4).unwrap();
        assert_eq!(s.from, t("2026-12-27T01:45:00Z"));
    }
}
