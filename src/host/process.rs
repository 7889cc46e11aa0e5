//! What `/proc/<pid>` says about a process: its command line and how long
//! it has been running (from its start time in clock ticks since boot).

use super::Root;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProcessInfo {
    pub pid: u32,
    /// The command line, or the short name in brackets for kernel threads.
    pub command: String,
    /// How long it has been running, when `/proc/<pid>/stat` and `/proc/uptime` say.
    pub running_for: Option<Duration>,
}

/// Whether the process exists under `root` (a fixture tree's `proc/<pid>` too).
pub fn is_alive(root: &Root, pid: u32) -> bool {
    root.path(&format!("/proc/{pid}")).is_dir()
}

pub fn info(root: &Root, pid: u32) -> Option<ProcessInfo> {
    if !is_alive(root, pid) {
        return None;
    }
    let stat = std::fs::read_to_string(root.path(&format!("/proc/{pid}/stat"))).ok();
    let cmdline = std::fs::read(root.path(&format!("/proc/{pid}/cmdline"))).unwrap_or_default();
    let mut command = cmdline
        .split(|b| *b == 0)
        .filter(|a| !a.is_empty())
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect::<Vec<_>>()
        .join(" ")
        // One line in a summary: a newline inside an argument must not break it.
        .replace(|c: char| c.is_control(), " ");
    if command.is_empty() {
        command = stat
            .as_deref()
            .and_then(comm_from_stat)
            .map(|c| format!("[{c}]"))
            .unwrap_or_else(|| "?".into());
    }
    const MAX: usize = 200;
    if command.len() > MAX {
        let cut = (0..=MAX)
            .rev()
            .find(|i| command.is_char_boundary(*i))
            .unwrap_or(0);
        command.truncate(cut);
        command.push('…');
    }
    let uptime = std::fs::read_to_string(root.path("/proc/uptime")).ok();
    let running_for = match (stat.as_deref(), uptime.as_deref()) {
        (Some(stat), Some(uptime)) => running_for(stat, uptime, clock_ticks()),
        _ => None,
    };
    Some(ProcessInfo {
        pid,
        command,
        running_for,
    })
}

fn clock_ticks() -> u64 {
    nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .and_then(|t| u64::try_from(t).ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// The name in `pid (name) state …`; the name may itself hold spaces and parentheses.
fn comm_from_stat(stat: &str) -> Option<&str> {
    let open = stat.find('(')?;
    let close = stat.rfind(')')?;
    stat.get(open + 1..close)
}

/// Age from field 22 of `/proc/<pid>/stat` (start time, ticks after boot)
/// and the first figure of `/proc/uptime` (seconds since boot).
pub fn running_for(stat: &str, uptime: &str, ticks_per_second: u64) -> Option<Duration> {
    let after_comm = &stat[stat.rfind(')')? + 1..];
    // Fields after the name start at field 3 (state); start time is field 22.
    let start_ticks: u64 = after_comm.split_whitespace().nth(22 - 3)?.parse().ok()?;
    let uptime: f64 = uptime
        .split_whitespace()
        .next()?
        .parse()
        .ok()
        .filter(|u: &f64| u.is_finite())?;
    let started = start_ticks as f64 / ticks_per_second.max(1) as f64;
    // `1e400` or `nan` in /proc/uptime is no age, not a crash.
    Duration::try_from_secs_f64((uptime - started).max(0.0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn age_from_stat_and_uptime() {
        let stat =
            "4242 (unattended-upgr) S 1 4242 4242 0 -1 4194560 0 0 0 0 0 0 0 0 20 0 1 0 100000 0 0";
        assert_eq!(
            running_for(stat, "1192.50 100.0\n", 100),
            Some(Duration::from_secs_f64(192.5))
        );
        let odd = "7 (a) b (c)) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 500 0 0";
        assert_eq!(comm_from_stat(odd), Some("a) b (c)"));
        assert_eq!(
            running_for(odd, "10.0 1", 100),
            Some(Duration::from_secs(5))
        );
        assert_eq!(running_for("garbage", "10", 100), None);
        assert_eq!(running_for(stat, "", 100), None);
        // Figures no real /proc has are no age, and never a crash.
        assert_eq!(running_for(stat, "1e400 0", 100), None);
        assert_eq!(running_for(stat, "nan 0", 100), None);
        assert_eq!(running_for(stat, "1192.5 0", 0), Some(Duration::ZERO));
    }
}

/// The effective user ID of a process, from the `Uid:` line of its status.
pub fn effective_uid(root: &Root, pid: u32) -> Option<u32> {
    let status = std::fs::read_to_string(root.path(&format!("/proc/{pid}/status"))).ok()?;
    parse_effective_uid(&status)
}

/// `Uid:\treal\teffective\tsaved\tfs` → effective.
pub fn parse_effective_uid(status: &str) -> Option<u32> {
    let line = status.lines().find(|l| l.starts_with("Uid:"))?;
    line.split_whitespace().nth(2)?.parse().ok()
}

/// The environment a process started with (`/proc/<pid>/environ`).
pub fn environment(root: &Root, pid: u32) -> std::io::Result<Vec<(String, String)>> {
    let raw = std::fs::read(root.path(&format!("/proc/{pid}/environ")))?;
    Ok(raw
        .split(|b| *b == 0)
        .filter_map(|entry| {
            let entry = String::from_utf8_lossy(entry);
            let (k, v) = entry.split_once('=')?;
            Some((k.to_string(), v.to_string()))
        })
        .collect())
}

#[cfg(test)]
mod uid_tests {
    #[test]
    fn effective_uid_is_the_second_figure() {
        let status = "Name:\tamazon-ssm-agen\nUid:\t1000\t0\t0\t0\nGid:\t0\t0\t0\t0\n";
        assert_eq!(super::parse_effective_uid(status), Some(0));
        assert_eq!(super::parse_effective_uid("Name: x\n"), None);
    }
}
