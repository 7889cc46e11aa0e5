//! `ssm-preflight gate`: the pre-install hook.

use super::cli::{GateArgs, Global};
use super::options;
use crate::config::units::format_age;
use crate::run::state;
use crate::run::{new_run_id, prepare, run_checks, runtime, state_dir};
use std::time::SystemTime;

pub fn gate(global: &Global, args: &GateArgs) -> anyhow::Result<u8> {
    let prepared = prepare(&options(global))?;
    let now = SystemTime::now();
    // The daemon's (or a recent check --report's) run, when fresh enough.
    let recorded = state::read(&state::default_dir())
        .ok()
        .and_then(|s| s.last_run);
    let fresh = recorded.filter(|r| {
        humantime::parse_rfc3339(&r.started_at)
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age <= args.max_age)
    });
    let (report, source) = match fresh {
        Some(r) => {
            let age = humantime::parse_rfc3339(&r.started_at)
                .ok()
                .and_then(|t| now.duration_since(t).ok())
                .unwrap_or_default();
            let source = format!(
                "the run of {} ago, younger than --max-age {}",
                format_age(age),
                format_age(args.max_age)
            );
            (r, source)
        }
        None => {
            let ctx = prepared.context(now);
            let rt = runtime()?;
            let report = rt.block_on(run_checks(&ctx, &[]))?;
            rt.shutdown_background();
            // Recorded so that status shows it; a state directory we cannot
            // write must not stop the hook from answering.
            match state_dir() {
                Ok(dir) => {
                    let mut s = dir.load().unwrap_or_default();
                    s.record(&report, &new_run_id());
                    if let Err(e) = dir.save(&s) {
                        tracing::warn!("{e}");
                    }
                }
                Err(e) => tracing::warn!("{e}"),
            }
            (
                report,
                "a run made now, the last one being older than --max-age".to_string(),
            )
        }
    };
    let (text, code) = crate::run::gate::verdict(&report, &prepared.settings.gate, &source);
    print!("{text}");
    Ok(code)
}
