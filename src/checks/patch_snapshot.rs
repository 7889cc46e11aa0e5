//! `patch.snapshot`: the patch run's own first call, made ahead of it.
//! `AWS-RunPatchBaseline` asks SSM for this node's deployable patch
//! snapshot with the node's credentials, then downloads it from a presigned
//! S3 URL; a role without the action, an operating system SSM does not
//! patch, or an S3 endpoint policy that refuses the snapshot bucket fails
//! the run while every other check passes (issue #28).

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity, Status};
use crate::aws::snapshot::{self, Deployable, Download, SnapshotError};
use crate::config::units::format_bytes;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patch.snapshot",
    group: Group::Cloud,
    title: "The patch run's snapshot",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "`ssm:GetDeployablePatchSnapshotForInstance` for this node with its credentials and a fresh snapshot ID, as the payload calls it (the `Product` SSM answers in the details); then one GET of the presigned URL through the agent's proxy, within `endpoints.timeout`, at most 5 MiB (its size and, when it is JSON, the baseline's name, operating system, rule and patch counts in the details). The URL is a credential: never printed, logged or stored",
        warns: "the snapshot answers, but not in a shape this reads (kept as not understood)",
        fails: "the action refused (the payload's first call would be too), SSM's `UnsupportedOperatingSystem`, the download refused (403: an S3 endpoint or bucket policy) or unanswered",
        fix: "AmazonSSMManagedInstanceCore on the node's role; the S3 VPC endpoint policy allowing `arn:aws:s3:::patch-baseline-snapshot-<region>/*`",
        cannot_see: "local mode, no identity or no credentials / SSM does not answer",
        reports: "`skip` / `error`",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let os = crate::host::os_release::OsRelease::read(&ctx.root)
            .ok()
            .flatten()
            .map(|(os, _)| os);
        let listed = os
            .as_ref()
            .map(|os| super::os_supported::judge(os).status == Status::Pass);
        let answer = snapshot::deployable(&ssm, &id.instance_id).await;
        let got = match &answer {
            Ok(Deployable { url: Some(url), .. }) => Some(match ctx.aws_http().await {
                Ok(client) => {
                    snapshot::download(&client, url, ctx.settings.endpoints.timeout).await
                }
                Err(e) => Download::NoAnswer(format!("no HTTP client: {e}")),
            }),
            _ => None,
        };
        judge(&answer, got.as_ref(), &id.region, listed)
    })
}

/// `listed`: whether os.supported's own list takes this host's OS.
pub fn judge(
    answer: &Result<Deployable, SnapshotError>,
    got: Option<&Download>,
    region: &str,
    listed: Option<bool>,
) -> Outcome {
    let bucket = format!("patch-baseline-snapshot-{region}");
    let d = match answer {
        Err(SnapshotError::Denied(message)) => {
            return Outcome::fail(
                format!("{} was refused ({message}): the patch run makes this call first, with the same credentials, and would fail", snapshot::ACTION),
                format!("Attach the AWS managed policy AmazonSSMManagedInstanceCore to the node's role (it allows {}), or add the action to the role's policy; an SCP or permissions boundary that denies it must allow it.", snapshot::ACTION),
            )
        }
        Err(SnapshotError::Unsupported(message)) => {
            let ours = match listed {
                Some(true) => " (ssm-preflight's own list, os.supported, takes this version; SSM's answer is the one the patch run gets)",
                _ => "",
            };
            return Outcome::fail(
                format!("SSM will not patch this node: UnsupportedOperatingSystem: {message}{ours}"),
                "Move the node to an operating system version Patch Manager supports (see \"Patch Manager prerequisites\" in the Systems Manager guide), or leave it out of the patch group.",
            );
        }
        Err(SnapshotError::Failed(why)) => {
            return Outcome::error(
                format!("{} gave no answer: {why}", snapshot::ACTION),
                "endpoint.ssm and credentials.valid say whether SSM can be reached with the node's credentials; run `ssm-preflight check` again once they pass.",
            )
        }
        Ok(d) => d,
    };
    let product = d.product.as_deref().unwrap_or("a product SSM did not name");
    let outcome = match (&d.url, got) {
        (None, _) | (Some(_), None) => Outcome::fail(
            format!("SSM answered the snapshot call for {product} without a download URL: the patch run would have no baseline to apply"),
            "Run the call again later; if it persists, open a case with AWS Support naming the instance and the snapshot ID in the details.",
        ),
        (Some(url), Some(Download::Status(403))) => Outcome::fail(
            format!("the patch snapshot's download from {} answered 403: an S3 endpoint or bucket policy refuses the snapshot bucket {bucket}", url.host()),
            format!("Allow s3:GetObject on arn:aws:s3:::{bucket}/* in the S3 VPC endpoint's policy (and any proxy's allow list); AWS-RunPatchBaseline downloads its snapshot from there."),
        ),
        (Some(url), Some(Download::Status(code))) => Outcome::fail(
            format!("the patch snapshot's download from {} answered HTTP {code}", url.host()),
            format!("The patch run downloads the same URL: see that the node reaches s3 ({bucket}) directly or through the agent's proxy (endpoint.s3 checks the route)."),
        ),
        (Some(url), Some(Download::NoAnswer(why))) => Outcome::fail(
            format!("the patch snapshot's download from {} got no answer: {why}", url.host()),
            format!("The patch run downloads the same URL: give the node a route to S3 (a gateway or interface endpoint for s3, a NAT gateway, or the agent's proxy) that allows the bucket {bucket}."),
        ),
        (Some(_), Some(Download::Got { body, truncated })) => {
            let size = format!(
                "{}{}",
                format_bytes(body.len() as u64),
                if *truncated { " (read no further)" } else { "" }
            );
            match snapshot::baseline_fields(body) {
                Some(fields) => {
                    let baseline = fields
                        .iter()
                        .find(|(k, _)| *k == "baseline")
                        .map(|(_, v)| format!(" of baseline {v}"))
                        .unwrap_or_default();
                    fields.into_iter().fold(
                        Outcome::pass(format!("SSM hands this node its patch snapshot for {product}, and the snapshot downloads: {size}{baseline}")),
                        |o, (k, v)| o.detail(k, v),
                    )
                }
                None => Outcome::warn(
                    format!("SSM hands this node its patch snapshot for {product} and it downloads ({size}), but it is not in a shape ssm-preflight reads: not understood"),
                    "Nothing to fix on the node; report the shape to ssm-preflight's maintainers so it can be read.",
                ),
            }
        }
    };
    let outcome = outcome.detail("snapshot_id", &d.snapshot_id);
    match &d.product {
        Some(p) => outcome.detail("product", p),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok() -> Result<Deployable, SnapshotError> {
        Ok(Deployable {
            snapshot_id: "4f1d".into(),
            product: Some("Debian12".into()),
            url: Some(crate::aws::snapshot::tests_presigned()),
        })
    }

    #[test]
    fn each_answer_gets_its_verdict() {
        let got = Download::Got {
            body: br#"{"patchBaseline": {"name": "prod-debian"}}"#.to_vec(),
            truncated: false,
        };
        let pass = judge(&ok(), Some(&got), "eu-west-1", Some(true));
        pass.assert_says(Status::Pass, "its patch snapshot for Debian12, and the snapshot downloads: 42 B of baseline prod-debian");
        assert_eq!(pass.details["product"], "Debian12");
        judge(&ok(), Some(&Download::Status(403)), "eu-west-1", None).assert_says(
            Status::Fail,
            "refuses the snapshot bucket patch-baseline-snapshot-eu-west-1",
        );
        judge(
            &ok(),
            Some(&Download::NoAnswer("no answer within 3s".into())),
            "eu-west-1",
            None,
        )
        .assert_says(Status::Fail, "got no answer: no answer within 3s");
        let odd = Download::Got {
            body: b"<xml/>".to_vec(),
            truncated: false,
        };
        judge(&ok(), Some(&odd), "eu-west-1", None).assert_says(Status::Warn, "not understood");
        judge(
            &Err(SnapshotError::Denied("not authorized".into())),
            None,
            "eu-west-1",
            None,
        )
        .assert_says(Status::Fail, "the patch run makes this call first");
        judge(
            &Err(SnapshotError::Unsupported("Unsupported operating system: Debian 13".into())),
            None,
            "eu-west-1",
            Some(true),
        )
        .assert_says(Status::Fail, "UnsupportedOperatingSystem: Unsupported operating system: Debian 13 (ssm-preflight's own list, os.supported, takes this version");
    }
}
