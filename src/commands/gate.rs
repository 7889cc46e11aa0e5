//! `ssm-preflight gate`: the pre-install hook.

use super::cli::{GateArgs, Global};
use crate::config::units::format_age;
use crate::run::gate::LockWait;
use crate::run::state;
use crate::run::{new_run_id, recorded_simulation, run_checks_reusing, runtime, state_dir};
use std::time::SystemTime;

pub fn gate(global: &Global, args: &GateArgs) -> anyhow::Result<u8> {
    let rt = runtime()?;
    let prepared = super::prepare_on(&rt, global)?;
    let now = SystemTime::now();
    // The daemon's (or a recent check --report's) run, when fresh enough.
    let state = state::read(&state::default_dir());
    let recorded = state.as_ref().ok().and_then(|s| s.last_run.clone());
    let fresh = recorded.filter(|r| {
        humantime::parse_rfc3339(&r.started_at)
            .ok()
            .and_then(|t| now.duration_since(t).ok())
            .is_some_and(|age| age <= args.max_age)
    });
    let (mut report, source, ran_now) = match fresh {
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
            (r, source, false)
        }
        None => {
            let earlier = state.as_ref().map(|s| s.remembered()).unwrap_or_default();
            let ctx = prepared.context(now).remember(earlier);
            // The hook answers in seconds: the package manager's dry run
            // is the daemon's last one (its age in the summary), not one
            // made now, which can take a minute.
            let simulation = recorded_simulation(state, now);
            let report = rt.block_on(run_checks_reusing(&ctx, &[], &[simulation]))?;
            (
                report,
                "a run made now, the last one being older than --max-age".to_string(),
                true,
            )
        }
    };
    // A held package lock is waited out before the gate decides.
    let wait = rt.block_on(crate::run::gate::wait_out_locks(
        &prepared,
        &mut report,
        prepared.settings.gate.lock_wait,
    ))?;
    drop(rt);
    if ran_now {
        // Recorded so that status shows it (the wait included); a state
        // directory we cannot write must not stop the hook from answering.
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
    }
    match wait {
        LockWait::Free => {}
        LockWait::Released(d) => println!(
            "ssm-preflight: waited {}s for the package-manager lock holder to finish.",
            d.as_secs()
        ),
        LockWait::StillHeld(d) => println!(
            "ssm-preflight: the package-manager lock is still held after waiting {}s (gate.lock_wait).",
            d.as_secs()
        ),
    }
    let (text, code) = crate::run::gate::verdict(&report, &prepared.settings.gate, &source);
    print!("{text}");
    Ok(code)
}
