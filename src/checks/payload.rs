//! `payload.reachable`: whether this node can download the patch payload
//! `AWS-RunPatchBaseline` fetches before it patches — from an S3 bucket
//! `endpoint.s3` never asks about. An S3 gateway endpoint policy that does
//! not allow that bucket fails the patch run with exit 156 ("Unable to
//! download payload") while `endpoint.s3` passes.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::patching::CallError;
use crate::aws::payload::{self, Reach};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "payload.reachable",
    group: Group::Network,
    title: "Patch payload downloadable",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "the payload the current `AWS-RunPatchBaseline` downloads (`ssm:GetDocument`: its name, prefix and which regions keep the old `aws-ssm-<region>` bucket), at the URL the document builds for the region — `s3.dualstack.<region>.amazonaws.com/aws-ssm-<region>/…`, `aws-patch-manager-<region>.s3-accelerate.dualstack.amazonaws.com/…` in newer regions, `s3.<region>.amazonaws.com.cn` in China, `s3-fips-<region>` in GovCloud — with an anonymous `HEAD` through the agent's proxy, within `endpoints.timeout` (`endpoints.urls.payload` sends it to a mirror); without `ssm:GetDocument`, the region's candidate buckets (both the dualstack and the accelerate host outside China and GovCloud)",
        warns: "—",
        fails: "denied (HTTP 403: an S3 gateway endpoint or bucket policy), another HTTP answer, or unreachable (the step named); without the document, no candidate host answering; each is the patch run's exit 156, \"Unable to download payload\"",
        fix: "allow the bucket in the VPC endpoint's policy; a route to S3",
        cannot_see: "local mode, no identity, SSM not answering / `ssm:GetDocument` refused and a candidate host answers (the object cannot be named, so a policy on it is not seen; none answering fails) / a document that names no payload this tool can read",
        reports: "`skip` / `skip` naming the action and what answered / `error`",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let region = ctx.region_of(&id);
        let content = match payload::document(&ssm).await {
            Ok(c) => c,
            Err(denied @ CallError::Denied { .. }) => {
                return without_document(&ctx, &region, &denied).await
            }
            Err(e) => return call_outcome(&e),
        };
        let Some(spec) = payload::spec_from_document(&content) else {
            return Outcome::error(
                "the AWS-RunPatchBaseline document names no payload in a way ssm-preflight knows, so where the patch run downloads from could not be told",
                "Report this with `aws ssm get-document --name AWS-RunPatchBaseline --query DocumentVersion`: the document changed.",
            );
        };
        let url = payload::url(&spec, &region);
        let http = match client(&ctx).await {
            Ok(h) => h,
            Err(o) => return o,
        };
        let (asked, reach) = ask(&ctx, &http, &url).await;
        let outcome = judge(&url, &reach);
        if asked != url {
            outcome.detail("asked", asked)
        } else {
            outcome
        }
    })
}

async fn client(ctx: &Context) -> Result<reqwest::Client, Outcome> {
    ctx.aws_http().await.map_err(|e| {
        Outcome::error(
            format!("cannot set up the HTTPS client: {e}"),
            "Fix the agent's proxy setting or endpoints.ca_bundle.",
        )
    })
}

/// An anonymous HEAD of `url` within `endpoints.timeout`, sent where
/// `endpoints.urls.payload` says (a mirror; a test's fake): what was asked
/// and how it answered.
async fn ask(ctx: &Context, http: &reqwest::Client, url: &str) -> (String, Reach) {
    let asked = match ctx.settings.endpoints.urls.get("payload") {
        Some(base) => payload::redirected(url, base),
        None => url.to_string(),
    };
    let bound = ctx.settings.endpoints.timeout;
    let reach = tokio::time::timeout(bound, payload::head(http, &asked))
        .await
        .unwrap_or_else(|_| {
            Reach::Unreachable(format!(
                "no answer within {}",
                humantime::format_duration(bound)
            ))
        });
    (asked, reach)
}

/// Without the document (`ssm:GetDocument` denied) the payload's object
/// cannot be named, but the hosts its rules choose from can be reached or
/// not: none answering fails as the patch run would; one answering is a
/// skip, since a policy that denies the object itself was not looked at.
async fn without_document(ctx: &Context, region: &str, denied: &CallError) -> Outcome {
    let http = match client(ctx).await {
        Ok(h) => h,
        Err(o) => return o,
    };
    let asks = payload::candidate_buckets(region).into_iter().map(|url| {
        let http = &http;
        async move {
            let (_, reach) = ask(ctx, http, &url).await;
            (url, reach)
        }
    });
    let reached = futures_util::future::join_all(asks).await;
    judge_without_document(&denied.to_string(), &reached)
}

fn host_of(url: &str) -> &str {
    url.split("://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .unwrap_or(url)
}

pub fn judge_without_document(denied: &str, reached: &[(String, Reach)]) -> Outcome {
    let said = |reach: &Reach| match reach {
        Reach::Status(s) => format!("answers HTTP {s}"),
        Reach::Unreachable(why) => format!("cannot be reached: {why}"),
    };
    let hosts: Vec<&str> = reached.iter().map(|(u, _)| host_of(u)).collect();
    let each = reached
        .iter()
        .map(|(u, r)| format!("{} {}", host_of(u), said(r)))
        .collect::<Vec<_>>()
        .join("; ");
    let outcome = if reached
        .iter()
        .all(|(_, r)| matches!(r, Reach::Unreachable(_)))
    {
        Outcome::fail(
            format!("no host the patch payload is downloaded from can be reached ({each}); the patch run would exit 156, \"Unable to download payload\""),
            format!("Give the node a way to {} on 443: a NAT gateway, the agent's proxy, or an S3 gateway endpoint (whose policy allows the patch buckets). Add ssm:GetDocument to the node's role to have the payload itself checked ({denied}).", hosts.join(" or ")),
        )
    } else {
        Outcome::skip(format!(
            "{denied}, so the payload's object could not be named: {each}, but whether a policy lets this node download the payload was not looked at; add ssm:GetDocument to the node's role to have this checked (optional; /usr/share/ssm-preflight/iam/ssm-preflight-policy.json lists it)"
        ))
    };
    reached
        .iter()
        .fold(outcome, |o, (u, r)| o.detail(host_of(u), said(r)))
}

pub fn judge(url: &str, reach: &Reach) -> Outcome {
    let host = host_of(url);
    let outcome = match reach {
        Reach::Status(s) if (200..300).contains(s) => Outcome::pass(format!("the patch payload answers (HTTP {s}): {url}")),
        Reach::Status(403) => Outcome::fail(
            format!("the patch payload is denied (HTTP 403): {url}; the patch run would exit 156, \"Unable to download payload\""),
            format!("An S3 gateway endpoint policy (or a proxy) refuses this bucket: allow `s3:GetObject` on `arn:aws:s3:::{}/*` in the VPC endpoint's policy, or let the node reach {host} another way.", url.split('/').nth(3).filter(|_| !host.contains("s3-accelerate")).unwrap_or_else(|| host.split('.').next().unwrap_or(host))),
        ),
        Reach::Status(s) => Outcome::fail(
            format!("the patch payload answers HTTP {s}: {url}; the patch run would exit 156, \"Unable to download payload\""),
            "Check that the node reaches S3 in its own region directly (`curl -I` the URL); a proxy or firewall in between may answer for it.",
        ),
        Reach::Unreachable(why) => Outcome::fail(
            format!("the patch payload cannot be reached: {why} ({url}); the patch run would exit 156, \"Unable to download payload\""),
            format!("Give the node a way to {host} on 443: a NAT gateway, the agent's proxy, or an S3 gateway endpoint (whose policy allows the patch buckets)."),
        ),
    };
    outcome.detail("url", url)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const URL: &str = "https://s3.dualstack.eu-west-1.amazonaws.com/aws-ssm-eu-west-1/patchbaselineoperations/linux/payloads/patch-baseline-operations-1.80.tar.gz";

    #[test]
    fn answered_denied_and_unreachable() {
        assert_eq!(judge(URL, &Reach::Status(200)).status, Status::Pass);
        let denied = judge(URL, &Reach::Status(403));
        denied.assert_says(Status::Fail, "denied (HTTP 403)");
        assert!(denied.summary.contains("exit 156"));
        assert!(denied
            .remedy
            .unwrap()
            .contains("arn:aws:s3:::aws-ssm-eu-west-1/*"));
        let gone = judge(URL, &Reach::Unreachable("timed out connecting".into()));
        assert_eq!(gone.status, Status::Fail);
        assert!(gone
            .summary
            .contains("cannot be reached: timed out connecting"));
        let accel = "https://aws-patch-manager-ap-southeast-5.s3-accelerate.dualstack.amazonaws.com/x.tar.gz";
        assert!(judge(accel, &Reach::Status(403))
            .remedy
            .unwrap()
            .contains("arn:aws:s3:::aws-patch-manager-ap-southeast-5/*"));
    }

    #[test]
    fn without_the_document_the_hosts_are_reached_or_not() {
        let denied = "ssm:GetDocument answered AccessDeniedException: not authorized";
        let buckets = crate::aws::payload::candidate_buckets("eu-west-1");
        let gone = |why: &str| Reach::Unreachable(why.to_string());
        let none = judge_without_document(
            denied,
            &[
                (buckets[0].clone(), gone("timed out connecting")),
                (buckets[1].clone(), gone("DNS: no such host")),
            ],
        );
        none.assert_says(Status::Fail, "s3.dualstack.eu-west-1.amazonaws.com cannot be reached: timed out connecting; aws-patch-manager-eu-west-1.s3-accelerate.dualstack.amazonaws.com cannot be reached: DNS: no such host");
        assert!(none.summary.contains("exit 156"));
        assert!(none.remedy.unwrap().contains("Add ssm:GetDocument"));
        // One host answering: the network path is open, the object unseen.
        let one = judge_without_document(
            denied,
            &[
                (buckets[0].clone(), Reach::Status(403)),
                (buckets[1].clone(), gone("timed out connecting")),
            ],
        );
        one.assert_begins(Status::Skip, denied);
        assert!(one
            .summary
            .contains("s3.dualstack.eu-west-1.amazonaws.com answers HTTP 403"));
        assert_eq!(
            one.details["s3.dualstack.eu-west-1.amazonaws.com"],
            "answers HTTP 403"
        );
    }
}
