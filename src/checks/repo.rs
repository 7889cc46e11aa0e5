//! `repo.reachable`: every enabled package repository answers from this
//! host, through the agent's proxy when it has one (the patch run inherits
//! the agent's environment).

use super::common::local_skip;
use super::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::aws::repos::{self, Answer, Repo};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "repo.reachable",
    group: Group::Network,
    title: "Package repositories reachable",
    severity: Severity::High,
    members: None,
};

pub fn plan(ctx: &Context) -> super::Check {
    let ctx2 = ctx.clone();
    let mut check = crate::checks::task(ctx, &ENTRY, ENTRY.id, async move {
        let ctx = ctx2;
        if let Some(skip) = local_skip(&ctx) {
            return skip;
        }
        let region = match &ctx.settings.aws.region {
            Some(r) => Some(r.clone()),
            None => ctx.identity().await.as_ref().ok().map(|i| i.region.clone()),
        };
        let root = ctx.root.clone();
        let configured = tokio::task::spawn_blocking(move || {
            let vars = repos::repo_vars(&root, region.as_deref());
            repos::configured(&root, &vars)
        })
        .await
        .unwrap_or_default();
        let skipped: Vec<Repo> = configured
            .iter()
            .filter(|r| matches!(r, Repo::Skip { .. }))
            .cloned()
            .collect();
        if configured.iter().all(|r| matches!(r, Repo::Skip { .. })) {
            return Outcome::skip(format!(
                "no network repository is configured in /etc/apt, /etc/yum.repos.d or /etc/zypp/repos.d{}",
                if skipped.is_empty() { String::new() } else { format!(" ({} local or unusable ones skipped)", skipped.len()) }
            ));
        }
        let proxy = ctx.agent_proxy().await;
        let client = match ctx.tls().and_then(|tls| repos::client(tls, proxy.as_ref())) {
            Ok(c) => c,
            Err(e) => {
                return Outcome::error(
                    format!("cannot set up the HTTP client: {e}"),
                    "Fix the agent's proxy setting or endpoints.ca_bundle.",
                )
            }
        };
        let answers = repos::fetch_all(&client, configured, ctx.settings.repos.timeout).await;
        judge(&answers, &skipped)
    });
    check.info.timeout = check
        .info
        .timeout
        .max(ctx.settings.repos.timeout * 2 + std::time::Duration::from_secs(1));
    check
}

pub fn judge(answers: &[Answer], skipped: &[Repo]) -> Outcome {
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| {
            let what = match &a.result {
                Ok(status) if (200..300).contains(status) => return None,
                Ok(status) => format!("HTTP {status}"),
                Err(e) => e.clone(),
            };
            Some(format!("{} ({}: {what})", a.repo.name(), a.fetched))
        })
        .collect();
    let slowest = answers.iter().map(|a| a.elapsed).max().unwrap_or_default();
    let mut outcome = if failed.is_empty() {
        Outcome::pass(format!(
            "all {} repositories answer (slowest in {} ms)",
            answers.len(),
            slowest.as_millis()
        ))
    } else {
        Outcome::fail(
            format!("{} of {} repositories do not answer: {}", failed.len(), answers.len(), failed.join("; ")),
            "Refresh with the package manager to see the same errors (`sudo apt-get update`, `sudo dnf makecache` or `sudo zypper refresh`); fix or disable the failing repositories, and give the package manager a way out to them: a proxy (Acquire::http::Proxy in /etc/apt/apt.conf.d, proxy= in /etc/dnf/dnf.conf), a NAT gateway, or the S3 gateway endpoint for Amazon Linux repositories.",
        )
    };
    for a in answers {
        let value = match &a.result {
            Ok(s) => format!("HTTP {s} in {} ms", a.elapsed.as_millis()),
            Err(e) => e.clone(),
        };
        outcome = outcome.detail(&format!("repo.{}", a.repo.name()), value);
    }
    for s in skipped {
        if let Repo::Skip { name, why, .. } = s {
            outcome = outcome.detail(&format!("repo.{name}"), format!("not checked: {why}"));
        }
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use std::time::Duration;

    fn answer(name: &str, result: Result<u16, String>) -> Answer {
        Answer {
            repo: Repo::Fetch {
                name: name.into(),
                file: "/etc/apt/sources.list".into(),
                index: format!("http://{name}/InRelease"),
                list_kind: None,
            },
            result,
            fetched: format!("http://{name}/InRelease"),
            elapsed: Duration::from_millis(30),
        }
    }

    #[test]
    fn verdicts() {
        let ok = judge(&[answer("a", Ok(200)), answer("b", Ok(200))], &[]);
        assert_eq!(ok.status, Status::Pass);
        assert_eq!(ok.summary, "all 2 repositories answer (slowest in 30 ms)");
        let bad = judge(
            &[
                answer("a", Ok(200)),
                answer("b", Ok(404)),
                answer("c", Err("no answer within 5s".into())),
            ],
            &[],
        );
        assert_eq!(bad.status, Status::Fail);
        assert_eq!(bad.summary, "2 of 3 repositories do not answer: b (http://b/InRelease: HTTP 404); c (http://c/InRelease: no answer within 5s)");
    }
}
