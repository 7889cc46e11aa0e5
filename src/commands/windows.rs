//! `ssm-preflight windows`.

use super::cli::{Global, WindowsArgs};
use super::options;
use crate::config::schedule::window::{self as windows, Window};
use crate::host::mode::Mode;
use crate::run::{prepare, runtime};
use jiff::Timestamp;

/// The most start times one call lists: a year of daily windows, and a bound
/// on what one call may allocate.
const MAX_COUNT: usize = 1000;

pub fn windows(global: &Global, args: &WindowsArgs) -> anyhow::Result<u8> {
    if !(1..=MAX_COUNT).contains(&args.count) {
        anyhow::bail!(
            "--count {} is out of range; ask for 1 to {MAX_COUNT} start times",
            args.count
        );
    }
    if let Some(expr) = &args.explain {
        let from = match &args.from {
            Some(f) => f.parse::<Timestamp>().map_err(|e| {
                anyhow::anyhow!(
                    "--from `{f}` is not an RFC 3339 time such as 2026-01-01T00:00:00Z: {e}"
                )
            })?,
            None => Timestamp::now(),
        };
        let starts = windows::explain(expr, &args.timezone, args.offset_days, from, args.count)
            .map_err(anyhow::Error::msg)?;
        if args.json {
            let list: Vec<String> = starts.iter().map(|t| t.to_string()).collect();
            println!("{}", serde_json::to_string(&list)?);
        } else {
            let tz = jiff::tz::TimeZone::get(&args.timezone)?;
            if starts.is_empty() {
                println!("{expr} has no start after {from}.");
            }
            for t in starts {
                println!(
                    "{}  ({t})",
                    t.to_zoned(tz.clone()).strftime("%a %Y-%m-%d %H:%M %Z")
                );
            }
        }
        return Ok(0);
    }

    let prepared = prepare(&options(global))?;
    let now = Timestamp::now();
    let mut found = windows::from_config(&prepared.settings.window, now, args.count);
    let note = if prepared.detected.mode != Mode::Local {
        let ctx = prepared.context(std::time::SystemTime::now());
        let rt = runtime()?;
        let read = rt.block_on(crate::run::windows::from_ssm(&ctx));
        drop(rt);
        match read {
            Ok(from_ssm) => {
                found.extend(from_ssm.windows);
                from_ssm.not_read
            }
            Err(e) => Some(e.to_string()),
        }
    } else {
        Some("local mode: SSM's schedule is not asked; only [[window]] entries from the config are shown".to_string())
    };
    let mut found = windows::merge(found);
    found.truncate(args.count);
    if args.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&serde_json::json!({ "windows": found, "note": note }))?
        );
        return Ok(0);
    }
    if found.is_empty() {
        println!("No maintenance window is known for this host.");
    }
    for w in &found {
        println!("{}  {}  (from {})", w.start, w.name, describe_source(w));
    }
    if let Some(note) = note {
        println!("Note: {note}");
    }
    Ok(0)
}

fn describe_source(w: &Window) -> String {
    let id = w.window_id.as_deref().unwrap_or("its ID unknown");
    match &w.source[..] {
        "ssm" => format!("SSM maintenance window, {id}"),
        "association" => format!("State Manager association, {id}"),
        "patch-policy" => format!("Quick Setup patch policy, association {id}"),
        _ => "the config".into(),
    }
}
