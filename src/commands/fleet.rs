//! `ssm-preflight fleet`: the fleet view for an operator, as a table, JSON
//! or CSV; its exit code gates a pipeline (0 clear, 1 close to a window
//! task's error threshold, 2 over it, 3 could not look).

use super::cli::FleetArgs;
use super::safe;
use crate::aws::windows::valid_window_id;
use crate::fleet::classify::{State, Verdict};
use crate::fleet::view::{FleetReport, GroupView};
use crate::fleet::{self, FleetOptions};
use anstyle::{AnsiColor, Style};
use std::fmt::Write;
use std::io::IsTerminal;
use std::time::{Duration, Instant};
use unicode_width::{UnicodeWidthChar, UnicodeWidthStr};

/// Blocked nodes listed per group in the table.
const LISTED: usize = 20;

pub fn fleet(args: &FleetArgs) -> anyhow::Result<u8> {
    for id in &args.window {
        if !valid_window_id(id) {
            anyhow::bail!("--window {id:?} is not a maintenance window ID: they read mw- and 17 hex digits, such as mw-0c50858d01abcdef0 (`aws ssm describe-maintenance-windows` lists them)");
        }
    }
    if args.patch_group.iter().any(|g| g.trim().is_empty()) {
        anyhow::bail!("--patch-group needs a name, the value of the nodes' Patch Group tag, such as --patch-group production-linux (`aws ssm describe-patch-groups` lists the registered ones)");
    }
    if let Some(r) = &args.region {
        if !crate::aws::identity::valid_region(r) {
            anyhow::bail!("--region {r:?} is not a region code such as eu-west-1");
        }
    }
    let opts = FleetOptions {
        patch_groups: args.patch_group.clone(),
        windows: args.window.clone(),
        stale_after: args.stale_after,
        max_blocked: args.max_blocked,
        max_detail: usize::try_from(args.max_detail).unwrap_or(usize::MAX),
        region: args.region.clone(),
        profile: args.profile.clone(),
    };
    let rt = crate::run::runtime()?;
    let started = Instant::now();
    let report = rt.block_on(async {
        let progress = std::io::stderr()
            .is_terminal()
            .then(|| tokio::spawn(progress(started)));
        let report = fleet::fleet(&opts).await;
        if let Some(p) = progress {
            p.abort();
            eprint!("\r\x1b[K");
        }
        report
    })?;
    tracing::info!(
        calls = fleet::calls_made(),
        "the fleet view took {} calls to SSM in {:.1} s",
        fleet::calls_made(),
        started.elapsed().as_secs_f64()
    );
    for g in &args.patch_group {
        if report
            .groups
            .iter()
            .any(|v| v.patch_group == *g && v.counts.total() == 0)
        {
            anyhow::bail!("no managed node in {} carries the tag Patch Group (or PatchGroup) = {g:?}: check its spelling (tags are case-sensitive) and that the nodes show in Fleet Manager", report.region);
        }
    }
    // Nothing counted is not "clear": a pipeline reading exit 0 would
    // take an empty view for a ready fleet.
    if report.groups.iter().all(|g| g.counts.total() == 0) {
        let why = if !args.window.is_empty() {
            format!("the targets of {} reach no managed node in {} (targets that name resource groups or keys ssm-preflight cannot resolve are not counted; the notes above the table say which)", args.window.join(", "), report.region)
        } else {
            format!("there is no managed node in {}", report.region)
        };
        for g in &report.groups {
            for note in &g.notes {
                eprintln!("note: {}", safe(note));
            }
        }
        anyhow::bail!(
            "nothing was counted: {why}. Check --region and that the nodes show in Fleet Manager."
        );
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else if args.csv {
        print!("{}", csv(&report));
    } else {
        let mut out = anstream::stdout();
        let _ = std::io::Write::write_all(&mut out, table(&report).as_bytes());
    }
    Ok(report.exit_code())
}

/// A line on stderr while the view takes more than a second.
async fn progress(started: Instant) {
    tokio::time::sleep(Duration::from_secs(1)).await;
    loop {
        eprint!(
            "\r\x1b[Kreading the fleet from SSM: {} calls, {:.0} s",
            fleet::calls_made(),
            started.elapsed().as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn verdict_style(v: Verdict) -> Style {
    let c = match v {
        Verdict::Ok => AnsiColor::Green,
        Verdict::Close => AnsiColor::Yellow,
        Verdict::Crosses => AnsiColor::Red,
        Verdict::Scan => AnsiColor::Cyan,
    };
    Style::new().fg_color(Some(c.into())).bold()
}

/// The table for people: one line per group, then what each verdict means,
/// the notes, and the blocked nodes.
pub fn table(report: &FleetReport) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ssm-preflight fleet · {} · {} · a report older than {} is stale\n",
        report.region,
        report.generated_at,
        humantime::format_duration(Duration::from_secs(report.stale_after_s))
    );
    if report.groups.is_empty() {
        let _ = writeln!(
            out,
            "No managed node and no registered patch group in {}.",
            report.region
        );
        return out;
    }
    let width = report
        .groups
        .iter()
        .map(|g| safe(&g.patch_group).width())
        .max()
        .unwrap_or(5)
        .clamp(11, 40);
    let bold = Style::new().bold();
    let _ = writeln!(
        out,
        "{bold}{}  {:<20}  {:<20}  {:>5}  {:>5}  {:>7}  {:>5}  {:>6}  {:>7}  {:>5}  {:>6}  VERDICT{bold:#}",
        cell("PATCH GROUP", width), "WINDOW", "NEXT START", "NODES", "READY", "BLOCKED", "STALE", "SILENT", "OFFLINE", "LIMIT", "SHARE"
    );
    for g in &report.groups {
        let c = &g.counts;
        let style = verdict_style(g.threshold.verdict);
        let _ = writeln!(
            out,
            "{}  {}  {}  {:>5}  {:>5}  {:>7}  {:>5}  {:>6}  {:>7}  {:>5}  {:>5.1}%  {style}{}{style:#}",
            cell(&safe(&g.patch_group), width),
            cell(&safe(g.window.as_ref().map(|w| w.id.as_str()).unwrap_or("none")), 20),
            cell(
                &safe(
                    g.window
                        .as_ref()
                        .and_then(|w| w.next_start.as_deref())
                        .unwrap_or("-")
                ),
                20
            ),
            c.total(),
            c.ready,
            c.blocked,
            c.stale,
            c.silent,
            c.offline,
            cell(&safe(&g.threshold.limit), 5),
            g.threshold.share,
            g.threshold.verdict.as_str()
        );
    }
    for g in &report.groups {
        out.push_str(&group_details(g));
    }
    out
}

/// One group's paragraph: what its prediction means, its notes, and the
/// blocked nodes with the checks that block them. Names and check IDs come
/// from SSM, so they are escaped for the terminal.
fn group_details(g: &GroupView) -> String {
    let bold = Style::new().bold();
    let mut out = String::new();
    let _ = writeln!(out, "\n{bold}{}{bold:#}", safe(&g.patch_group));
    let _ = writeln!(out, "  {}", safe(&sentence(g)));
    if g.untargeted > 0 {
        let _ = writeln!(
            out,
            "  {} node(s) of this group are in no window: no maintenance window's patch task reaches them.",
            g.untargeted
        );
    }
    // A group split across windows: each window task's own prediction.
    if g.windows.len() > 1 {
        for w in &g.windows {
            let _ = writeln!(
                out,
                "  window {} ({}), task {}: {} of {} node(s) failing, limit {} — {}",
                safe(&w.window.id),
                safe(w.window.next_start.as_deref().unwrap_or("no start")),
                safe(&w.task),
                w.threshold.failing,
                w.counts.total(),
                safe(&w.threshold.limit),
                w.threshold.verdict.as_str()
            );
        }
    }
    for note in &g.notes {
        let _ = writeln!(out, "  note: {}", safe(note));
    }
    let blocked: Vec<_> = g
        .nodes
        .iter()
        .filter(|n| n.state == State::Blocked)
        .collect();
    for n in blocked.iter().take(LISTED) {
        let checks = if n.failing.is_empty() {
            "checks not read (--max-detail)".to_string()
        } else {
            n.failing.join(", ")
        };
        let _ = writeln!(
            out,
            "  blocked  {}  {}",
            safe(&n.instance_id),
            safe(&checks)
        );
    }
    if blocked.len() > LISTED {
        let _ = writeln!(
            out,
            "  … and {} more blocked node(s); --json or --csv lists every node.",
            blocked.len() - LISTED
        );
    }
    out
}

/// What the group's prediction means, in one sentence.
fn sentence(g: &GroupView) -> String {
    let t = &g.threshold;
    let total = g.counts.total();
    let limit = match t.source {
        "window task" => format!(
            "the window task's error threshold (MaxErrors {}, {} errors)",
            t.limit, t.allowed_errors
        ),
        _ => format!("--max-blocked {} ({} nodes)", t.limit, t.allowed_errors),
    };
    let who = format!(
        "{} of {total} nodes ({:.1}%) would fail or miss the patch run ({} blocked, {} silent, {} offline)",
        t.failing, t.share, g.counts.blocked, g.counts.silent, g.counts.offline
    );
    match t.verdict {
        Verdict::Ok => format!("Ready: {who}, well within {limit}."),
        Verdict::Scan => format!("Scan only: the window's patch task scans and installs nothing, so no rollout is predicted; {who}."),
        Verdict::Close => format!("Close: {who}; {} more would cross {limit}. Fix the blocked nodes (`ssm-preflight status` on each says how) before the window.", (t.allowed_errors + 1).saturating_sub(t.failing)),
        Verdict::Crosses => {
            let batches = g
                .window
                .as_ref()
                .and_then(|w| w.max_concurrency.as_deref())
                .map(|c| format!(" (MaxConcurrency {c})"))
                .unwrap_or_default();
            let stop = match t.stops_after {
                // Stopping after the last batch spares nobody: say so
                // rather than "stop after 50 of 50".
                Some(n) if n >= total => format!(" Every node would be started before the task stopped{batches}: the stop would spare none."),
                Some(n) => format!(" The rollout would stop after roughly {n} of {total} nodes{batches}, leaving about {} unpatched.", total - n),
                None => String::new(),
            };
            format!("Over: {who}, more than {limit}.{stop} Fix the blocked nodes and bring the offline and silent ones back (`ssm-preflight status` on each), or split the group, before the window.")
        }
    }
}

/// `text` in a column `width` terminal cells wide, by display width (a CJK
/// character takes two), cut with … when longer.
fn cell(text: &str, width: usize) -> String {
    let mut out = String::new();
    if text.width() <= width {
        out.push_str(text);
    } else {
        for c in text.chars() {
            if out.width() + c.width().unwrap_or(0) + 1 > width {
                break;
            }
            out.push(c);
        }
        out.push('…');
    }
    let pad = width.saturating_sub(out.width());
    out.extend(std::iter::repeat_n(' ', pad));
    out
}

/// One row per node, RFC 4180 quoting. Written by hand: six columns of
/// plain text do not need a CSV library's reader and serde machinery.
pub fn csv(report: &FleetReport) -> String {
    fn field(s: &str) -> String {
        if s.contains([',', '"', '\n', '\r']) {
            format!("\"{}\"", s.replace('"', "\"\""))
        } else {
            s.to_string()
        }
    }
    let mut out =
        String::from("patch_group,window_id,instance_id,state,report_age_s,ping,failing\n");
    for g in &report.groups {
        for n in &g.nodes {
            let window = n.window.as_deref().unwrap_or("");
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{}",
                field(&g.patch_group),
                field(window),
                field(&n.instance_id),
                n.state.as_str(),
                n.report_age_s.map(|a| a.to_string()).unwrap_or_default(),
                field(&n.ping),
                field(&n.failing.join(";"))
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_measured_in_terminal_cells_and_cut_with_an_ellipsis() {
        assert_eq!(cell("web", 6), "web   ");
        // Two cells per CJK character: padded to the same edge.
        assert_eq!(cell("本番", 6), "本番  ");
        assert_eq!(cell("本番", 6).width(), 6);
        assert_eq!(cell("production-linux-eu", 8), "product…");
        assert_eq!(cell("本番環境グループ", 7).width(), 7);
        assert!(cell("本番環境グループ", 7).ends_with('…'));
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        use crate::fleet::classify::{Counts, NodeView, Threshold};
        let report = FleetReport {
            generated_at: "2026-12-02T00:00:00Z".into(),
            region: "eu-west-1".into(),
            stale_after_s: 86_400,
            groups: vec![GroupView {
                patch_group: "web, \"prod\"".into(),
                window: None,
                counts: Counts::default(),
                threshold: Threshold {
                    limit: "10%".into(),
                    source: "--max-blocked",
                    share: 0.0,
                    verdict: Verdict::Ok,
                    allowed_errors: 0,
                    failing: 0,
                    stops_after: None,
                },
                untargeted: 0,
                windows: vec![],
                notes: vec![],
                nodes: vec![NodeView {
                    instance_id: "i-1".into(),
                    state: State::Blocked,
                    report_age_s: Some(60),
                    clock_ahead_s: None,
                    failing: vec!["disk.var".into(), "pkg.lock".into()],
                    ping: "Online".into(),
                    window: Some("mw-0c50858d01abcdef0".into()),
                }],
            }],
        };
        assert_eq!(
            csv(&report),
            "patch_group,window_id,instance_id,state,report_age_s,ping,failing\n\"web, \"\"prod\"\"\",mw-0c50858d01abcdef0,i-1,blocked,60,Online,disk.var;pkg.lock\n"
        );
    }
}
