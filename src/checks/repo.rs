//! `repo.reachable`: every enabled package repository answers from this
//! host, through the agent's proxy when it has one (the patch run inherits
//! the agent's environment).

use super::common::local_skip;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::repos::{self, Repo};
use crate::network::repos::{self as fetch, Answer, FetchError};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "repo.reachable",
    group: Group::Network,
    title: "Package repositories reachable",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "apt sources (one-line `.list`, deb822 `.sources`), yum/dnf and zypper `.repo` files with their `$releasever`/`$basearch`/`$awsregion` variables; each enabled repository's `InRelease` (then `Release`), `repodata/repomd.xml` or mirror list fetched through the agent's proxy, within `repos.timeout` (5 s), with the TLS settings its package manager uses (yum/dnf `sslcacert`, `sslclientcert`, `sslclientkey`, `sslverify`, also from `[main]`; apt `Acquire::https::[host::]CaInfo`, `SslCert`, `SslKey`, `Verify-Peer`: RHUI's CA and entitlement); `file:`, `cdrom:` and zypper service-plugin sources are listed as not checked",
        warns: "a certificate or key file the TLS settings name cannot be read by this user (not asked)",
        fails: "a repository does not answer, or answers other than 2xx; a certificate or key file its TLS settings name is missing or not PEM",
        fix: "`apt-get update` / `dnf makecache` shows the same; a proxy for the package manager, a NAT gateway, the S3 gateway endpoint",
        cannot_see: "local mode / a repository file it may not read",
        reports: "`skip` / `warn` naming the file (a failing repository stays `fail`)",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let mut check = crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let ready = match prepare(&ctx, ENTRY.id).await {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        };
        let skipped: Vec<Repo> = ready
            .repos
            .iter()
            .filter(|r| matches!(r, Repo::Skip { .. }))
            .cloned()
            .collect();
        let answers = fetch::fetch_all(
            &ctx.indexes(),
            &ready.clients,
            ready.repos,
            ctx.settings.repos.timeout,
        )
        .await;
        with_unreadable(judge(&answers, &skipped), &ready.unreadable, ENTRY.id)
    });
    check.info.timeout = check
        .info
        .timeout
        .max(ctx.settings.repos.timeout * 2 + std::time::Duration::from_secs(1));
    check
}

/// The host's repositories with an HTTP client for each TLS setting, as
/// the package manager would talk to them; or the outcome when there is
/// nothing to ask (`check`: the check asking, for the remedy).
pub struct Prepared {
    /// Every configured repository, those not asked (`Repo::Skip`) too.
    pub repos: Vec<Repo>,
    /// Repository files that could not be read, with why.
    pub unreadable: Vec<String>,
    pub clients: fetch::Clients,
}

pub async fn prepare(ctx: &Context, check: &str) -> Result<Prepared, Outcome> {
    if let Some(skip) = local_skip(ctx) {
        return Err(skip);
    }
    let region = match &ctx.settings.aws.region {
        Some(r) => Some(r.clone()),
        // apt's sources are asked at once, beside IMDS, not after it.
        None if repos::may_name_the_region(&ctx.root) => {
            ctx.identity().await.as_ref().ok().map(|i| i.region.clone())
        }
        None => None,
    };
    let root = ctx.root.clone();
    let configured = tokio::task::spawn_blocking(move || {
        let vars = repos::repo_vars(&root, region.as_deref());
        repos::configured(&root, &vars)
    })
    .await
    .unwrap_or_default();
    let unreadable = configured.unreadable;
    let configured = configured.repos;
    if configured.iter().all(|r| matches!(r, Repo::Skip { .. })) {
        if !unreadable.is_empty() {
            return Err(with_unreadable(
                Outcome::pass("no readable repository file lists a network repository"),
                &unreadable,
                check,
            ));
        }
        let skipped = configured.len();
        return Err(Outcome::skip(format!(
            "no network repository is configured in /etc/apt, /etc/yum.repos.d or /etc/zypp/repos.d{}",
            if skipped == 0 { String::new() } else { format!(" ({skipped} local or unusable ones skipped)") }
        )));
    }
    let proxy = ctx.agent_proxy().await;
    let connect_within = ctx.settings.endpoints.timeout;
    let made = ctx.tls().map_err(|e| e.to_string()).and_then(|tls| {
        fetch::client(tls, proxy.as_ref(), &[], connect_within).map_err(|e| e.to_string())
    });
    let client = made.map_err(|e| {
        Outcome::error(
            format!("cannot set up the HTTP client: {e}"),
            "Fix the agent's proxy setting or endpoints.ca_bundle.",
        )
    })?;
    use crate::network::tls::RepoTlsError;
    let rhui = configured
        .iter()
        .any(|r| matches!(r, Repo::Fetch { tls, .. } if tls.rhui_identity));
    let rhui_headers = if rhui {
        ctx.rhui_headers().await
    } else {
        Ok(Vec::new())
    };
    let bundle = ctx.settings.endpoints.ca_bundle.clone();
    let clients = fetch::clients(&configured, &client, |tls| {
        let headers = match (&rhui_headers, tls.rhui_identity) {
            (Err(e), true) => return Err(RepoTlsError::NotReadable(format!("the instance's signed identity, which AWS RHUI wants with each request, could not be read: {e}"))),
            (Ok(h), true) => h.as_slice(),
            (_, false) => &[],
        };
        let config = crate::network::tls::repo_config(tls, &ctx.root, bundle.as_deref())?;
        fetch::client(config, proxy.as_ref(), headers, connect_within)
            .map_err(|e| RepoTlsError::Unusable(e.to_string()))
    });
    Ok(Prepared {
        repos: configured,
        unreadable,
        clients,
    })
}

/// Repository files that could not be read: what they list was not tried,
/// so a pass becomes a warning naming them (issue #17).
pub fn with_unreadable(outcome: Outcome, unreadable: &[String], check: &str) -> Outcome {
    if unreadable.is_empty() {
        return outcome;
    }
    let files = unreadable.join(", ");
    let outcome = outcome.detail("unreadable", &files);
    if outcome.status != super::Status::Pass {
        return Outcome {
            summary: format!("{}; could not read {files}", outcome.summary),
            ..outcome
        };
    }
    let details = outcome.details.clone();
    Outcome {
        details,
        ..Outcome::warn(
            format!("{}, but the repositories in {files} were not tried: the file could not be read", outcome.summary),
            format!("Run ssm-preflight as root (`sudo ssm-preflight check --only {check}`) so it can read every repository file."),
        )
    }
}

pub fn judge(answers: &[Answer], skipped: &[Repo]) -> Outcome {
    let failed: Vec<String> = answers
        .iter()
        .filter_map(|a| {
            let what = match &a.result {
                Ok(status) if (200..300).contains(status) => return None,
                Ok(status) => format!("HTTP {status}"),
                Err(FetchError::NotReadable(_)) => return None,
                Err(e) => e.to_string(),
            };
            Some(format!("{} ({}: {what})", a.repo.name(), a.fetched))
        })
        .collect();
    let not_read: Vec<String> = answers
        .iter()
        .filter_map(|a| match &a.result {
            Err(FetchError::NotReadable(why)) => Some(format!("{} ({why})", a.repo.name())),
            _ => None,
        })
        .collect();
    let asked = answers.len() - not_read.len();
    let slowest = answers.iter().map(|a| a.elapsed).max().unwrap_or_default();
    let mut outcome = if failed.is_empty() && !not_read.is_empty() {
        Outcome::warn(
            format!(
                "{asked} of {} repositories answer; {} could not be asked: {}",
                answers.len(),
                not_read.len(),
                not_read.join("; ")
            ),
            "Run the check as root (`sudo ssm-preflight check --only repo.reachable`): the patch run reads these files as root.",
        )
    } else if failed.is_empty() {
        Outcome::pass(format!(
            "all {} repositories answer (slowest in {} ms)",
            answers.len(),
            slowest.as_millis()
        ))
    } else {
        let unusable = answers
            .iter()
            .any(|a| matches!(a.result, Err(FetchError::Unusable(_))));
        let refresh = "Refresh with the package manager to see the same errors (`sudo apt-get update`, `sudo dnf makecache` or `sudo zypper refresh`)";
        if unusable {
            Outcome::fail(
                format!("{} of {} repositories cannot be used: {}", failed.len(), answers.len(), failed.join("; ")),
                format!("{refresh}. Put back the certificate or key file the repository's TLS settings name, or correct the setting (on RHEL on EC2, `sudo dnf reinstall rh-amazon-rhui-client` restores RHUI's certificates and key)."),
            )
        } else {
            Outcome::fail(
                format!("{} of {} repositories do not answer: {}", failed.len(), answers.len(), failed.join("; ")),
                format!("{refresh}; fix or disable the failing repositories, and give the package manager a way out to them: a proxy (Acquire::http::Proxy in /etc/apt/apt.conf.d, proxy= in /etc/dnf/dnf.conf), a NAT gateway, or the S3 gateway endpoint for Amazon Linux repositories."),
            )
        }
    };
    for a in answers {
        let value = match &a.result {
            Ok(s) => format!("HTTP {s} in {} ms", a.elapsed.as_millis()),
            Err(e) => e.to_string(),
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
                tls: Default::default(),
                keys: Default::default(),
            },
            result: result.map_err(crate::network::repos::FetchError::Failed),
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

    #[test]
    fn an_unreadable_repository_file_is_not_all_answering() {
        // Issue #17 item 6: a .repo file that cannot be read (here a
        // directory of that name, which fails for root too) is named.
        let dir = tempfile::tempdir().unwrap();
        let repos_d = dir.path().join("etc/yum.repos.d");
        std::fs::create_dir_all(repos_d.join("broken.repo")).unwrap();
        std::fs::write(
            repos_d.join("ok.repo"),
            "[base]\nbaseurl=http://mirror.example/base/\nenabled=1\n",
        )
        .unwrap();
        let root = crate::host::Root::new(dir.path());
        let found = repos::configured(&root, &Default::default());
        assert_eq!(found.repos.len(), 1, "{:?}", found.repos);
        assert_eq!(found.unreadable.len(), 1, "{:?}", found.unreadable);
        assert!(found.unreadable[0].starts_with("/etc/yum.repos.d/broken.repo ("));
        let o = with_unreadable(
            judge(&[answer("a", Ok(200))], &[]),
            &found.unreadable,
            ENTRY.id,
        );
        assert_eq!(o.status, Status::Warn);
        assert!(o.summary.starts_with("all 1 repositories answer (slowest in 30 ms), but the repositories in /etc/yum.repos.d/broken.repo ("), "{}", o.summary);
        assert!(o
            .remedy
            .unwrap()
            .contains("sudo ssm-preflight check --only repo.reachable"));
        // A failure stays a failure, with the file named.
        let bad = with_unreadable(
            judge(&[answer("b", Ok(404))], &[]),
            &found.unreadable,
            ENTRY.id,
        );
        bad.assert_says(Status::Fail, "could not read /etc/yum.repos.d/broken.repo");
    }
}
