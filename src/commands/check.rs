//! `ssm-preflight check` and `ssm-preflight report`.

use super::cli::{CheckArgs, Global};
use super::{delivery_sentence, options, prepare_on};
use crate::host::mode::Mode;
use crate::run::state::DeliveryState;
use crate::run::{
    deliver_last, new_run_id, prepare, recorded_simulation, run_checks_reusing, runtime, state_dir,
};
use std::io::Write;
use std::time::SystemTime;

pub fn check(global: &Global, args: &CheckArgs) -> anyhow::Result<u8> {
    if args.report && !args.only.is_empty() {
        // A custom compliance type is uploaded COMPLETE: a partial run would
        // replace the node's whole list in SSM, and the gate would decide on it.
        anyhow::bail!(
            "--report sends the node's whole compliance to SSM, which replaces every item it had, so it needs a full run: drop --only {} (or run `ssm-preflight check --only {}` without --report to look at those checks alone)",
            args.only.join(","),
            args.only.join(",")
        );
    }
    let rt = runtime()?;
    let prepared = prepare_on(&rt, global)?;
    if args.report && prepared.detected.mode == Mode::Local {
        anyhow::bail!(
            "--report needs a managed node, but this host runs in local mode ({}); use --mode ec2 or --mode hybrid",
            prepared.detected.reason
        );
    }
    // Take the state lock before the run, so a concurrent run cannot slip
    // an older report in after ours.
    let dir = if args.report {
        Some(state_dir()?)
    } else {
        None
    };
    let recorded = crate::run::state::read(&crate::run::state::default_dir());
    let earlier = recorded
        .as_ref()
        .map(|s| s.remembered())
        .unwrap_or_default();
    let ctx = prepared.context(SystemTime::now()).remember(earlier);
    // A report sent to SSM is a whole run: the dry run then runs now too.
    let reuse = if args.simulate || args.report {
        Vec::new()
    } else {
        vec![recorded_simulation(recorded, SystemTime::now())]
    };
    let report = rt.block_on(run_checks_reusing(&ctx, &args.only, &reuse))?;

    if args.json {
        // Straight to stdout: JSON holds no colour to strip, and anstream's
        // stripping scans every byte (60,000 instructions for one report).
        let mut text = serde_json::to_string_pretty(&report)?;
        text.push('\n');
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
    } else {
        let mut out = anstream::stdout();
        write!(out, "{}", super::table::render_table(&report, args.all))?;
        if prepared.settings.remediate.hold_updaters {
            writeln!(out, "{}", rt.block_on(crate::service::hold::dry_run(&ctx)))?;
        }
        if prepared.settings.remediate.clean_package_cache {
            writeln!(
                out,
                "{}",
                crate::service::clean::dry_run(&report, &ctx.root)
            )?;
        }
        out.flush()?;
    }

    if let Some(dir) = dir {
        let mut state = dir.load().unwrap_or_else(|e| {
            tracing::warn!("starting a new state file: {e}");
            Default::default()
        });
        state.record(&report, &new_run_id());
        dir.save(&state)?;
        if let Some(result) = rt.block_on(deliver_last(&ctx, &dir, &mut state))? {
            eprintln!(
                "{}",
                delivery_sentence(&result, &dir.path(), report.host.instance_id.as_deref())
            );
        }
    }
    // Not waiting for a check thread stuck past its timeout.
    drop(rt);
    Ok(report.verdict.exit_code())
}

/// Sends the last run's report if it has not reached SSM.
pub fn report_pending(global: &Global) -> anyhow::Result<u8> {
    let prepared = prepare(&options(global))?;
    let dir = state_dir()?;
    let mut state = dir.load()?;
    let Some(delivery) = state.delivery.clone() else {
        println!(
            "Nothing to send: no run has been recorded yet. Run `ssm-preflight check --report`."
        );
        return Ok(0);
    };
    if delivery.state == DeliveryState::Delivered {
        println!(
            "Nothing to send: the report of the run at {} reached SSM at {}.",
            delivery.run_started_at,
            delivery
                .delivered_at
                .as_deref()
                .unwrap_or("an unknown time")
        );
        return Ok(0);
    }
    let ctx = prepared.context(SystemTime::now());
    let rt = runtime()?;
    let instance = state
        .last_run
        .as_ref()
        .and_then(|r| r.host.instance_id.clone());
    match rt.block_on(deliver_last(&ctx, &dir, &mut state))? {
        Some(result) => {
            println!(
                "{}",
                delivery_sentence(&result, &dir.path(), instance.as_deref())
            );
            Ok(if result.is_ok() { 0 } else { 1 })
        }
        None => {
            println!("Nothing to send: a newer report has already reached SSM.");
            Ok(0)
        }
    }
}
