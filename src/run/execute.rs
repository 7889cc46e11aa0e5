//! Runs checks concurrently, each under its own timeout, so a run takes about
//! as long as its slowest check and one hung or crashing check cannot take
//! the others down.

use crate::checks::{Check, CheckResult, Outcome, Work};
use std::time::{Duration, Instant};
use tokio::task::JoinSet;

/// Runs every check and returns the results in the order given.
pub async fn run(checks: Vec<Check>) -> Vec<CheckResult> {
    let mut set = JoinSet::new();
    let count = checks.len();
    for (index, Check { info, work }) in checks.into_iter().enumerate() {
        set.spawn(async move {
            let started = Instant::now();
            // Blocking file and syscall work runs on the blocking pool; a
            // check stuck in the kernel (a hung NFS statvfs) keeps its
            // thread, but the run moves on at the timeout.
            let handle = match work {
                Work::Blocking(run) => tokio::task::spawn_blocking(run),
                Work::Async(run) => tokio::spawn(run),
            };
            let abort = handle.abort_handle();
            let outcome = match tokio::time::timeout(info.timeout, handle).await {
                Ok(Ok(outcome)) => outcome,
                Ok(Err(join)) => crashed(join),
                Err(_) => {
                    abort.abort(); // an async check stops here; a blocking one cannot
                    timed_out(info.timeout, info.timeout_hint.as_deref())
                }
            };
            (index, info.result(outcome, started.elapsed()))
        });
    }
    let mut results: Vec<Option<CheckResult>> = (0..count).map(|_| None).collect();
    while let Some(joined) = set.join_next().await {
        // The wrapper task above cannot panic: the check's own panic is
        // caught by its spawn_blocking handle.
        let (index, result) = joined.expect("check wrapper task");
        results[index] = Some(result);
    }
    results.into_iter().flatten().collect()
}

fn timed_out(timeout: Duration, hint: Option<&str>) -> Outcome {
    Outcome::error(
        format!(
            "the check did not finish within its {} timeout{}",
            humantime::format_duration(timeout),
            hint.map(|h| format!(": {h}")).unwrap_or_default()
        ),
        "Run `ssm-preflight check -v` to see where it stops; if the host is just slow, raise `checks.timeout` in /etc/ssm-preflight/config.toml.",
    )
}

fn crashed(join: tokio::task::JoinError) -> Outcome {
    let message = if join.is_panic() {
        let payload = join.into_panic();
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".into())
    } else {
        "the check was cancelled".into()
    };
    Outcome::error(
        format!("the check crashed: {message}"),
        "This is a bug in ssm-preflight: report it with the output of `ssm-preflight check --json`.",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckInfo, Group, Severity, Status};
    use std::sync::{Arc, Barrier};

    fn check(id: &str, timeout_ms: u64, run: impl FnOnce() -> Outcome + Send + 'static) -> Check {
        Check {
            info: CheckInfo {
                id: id.into(),
                group: Group::Host,
                title: id.into(),
                severity: Severity::Low,
                timeout: Duration::from_millis(timeout_ms),
                timeout_hint: None,
            },
            work: Work::Blocking(Box::new(run)),
        }
    }

    #[tokio::test]
    async fn timeouts_and_panics_are_errors_and_the_rest_still_runs() {
        let results = run(vec![
            check("slow", 100, || {
                std::thread::sleep(Duration::from_millis(800));
                Outcome::pass("late")
            }),
            check("panics", 1000, || panic!("boom")),
            check("fine", 1000, || Outcome::pass("ok")),
        ])
        .await;
        assert_eq!(results.len(), 3);
        assert_eq!(results[0].id, "slow");
        assert_eq!(results[0].status, Status::Error);
        assert!(
            results[0].summary.contains("100ms timeout"),
            "{}",
            results[0].summary
        );
        assert_eq!(results[1].status, Status::Error);
        assert!(results[1].summary.contains("boom"));
        assert_eq!(results[2].status, Status::Pass);
    }

    #[tokio::test]
    async fn a_hung_async_check_times_out() {
        let hung = Check {
            info: CheckInfo {
                id: "hung".into(),
                group: Group::Agent,
                title: "hung".into(),
                severity: Severity::Low,
                timeout: Duration::from_millis(50),
                timeout_hint: Some("the hint".into()),
            },
            work: Work::Async(Box::pin(std::future::pending())),
        };
        let results = run(vec![hung]).await;
        assert_eq!(results[0].status, Status::Error);
        assert!(results[0].summary.contains("50ms timeout: the hint"));
    }

    #[tokio::test]
    async fn checks_run_concurrently() {
        // Each check waits for all four to arrive: run one after another,
        // the first would wait forever and time out.
        let barrier = Arc::new(Barrier::new(4));
        let checks = (0..4)
            .map(|i| {
                let barrier = barrier.clone();
                check(&format!("c{i}"), 10_000, move || {
                    barrier.wait();
                    Outcome::pass("ok")
                })
            })
            .collect();
        let results = run(checks).await;
        assert!(
            results.iter().all(|r| r.status == Status::Pass),
            "{results:?}"
        );
    }
}
