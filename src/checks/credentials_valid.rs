//! `credentials.valid`: whether AWS accepts the node's credentials — the
//! instance profile's, Default Host Management's or a hybrid node's —
//! asked with `sts:GetCallerIdentity` through the regional STS endpoint and
//! the agent's proxy, and how long they have left. Credentials that exist
//! (`credentials.role`) may still be expired, revoked or signed with a
//! clock AWS rejects; this is where that shows.

use super::common::local_skip;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::sts::{self, Looked, StsError};
use crate::config::units::format_age;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "credentials.valid",
    group: Group::Access,
    title: "Credentials accepted by AWS",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "`sts:GetCallerIdentity` signed with the node's own credentials (the instance profile's, Default Host Management's, a hybrid node's, or `AWS_ACCESS_KEY_ID`), sent to the regional STS endpoint (`endpoints.urls.sts` or `AWS_ENDPOINT_URL_STS` override it) through the agent's proxy, within `aws.attempt_timeout`: the ARN and account AWS sees, and when the credentials expire. Needs no IAM permission",
        warns: "the credentials expire within 15 minutes and were not refreshed; STS did not answer (the agent does not need STS, so this alone does not stop patching)",
        fails: "STS refuses them: expired (`ExpiredToken`), unknown (`InvalidClientTokenId`), or signed with a clock more than 5 minutes off (named as the clock's fault)",
        fix: "restart the agent, re-attach the instance profile or re-register the node; `chronyc makestep`",
        cannot_see: "local mode, no identity or no credentials / STS does not answer / an explicit deny of `sts:GetCallerIdentity`",
        reports: "`skip` / `warn` / `skip` naming the action",
    },
};

/// Credentials closer than this to their expiry were not refreshed in time.
pub const EXPIRY_WARN: Duration = Duration::from_secs(15 * 60);

pub fn plan(ctx: &Context) -> super::Check {
    super::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        if let Some(skip) = local_skip(&ctx) {
            return skip;
        }
        let id = match ctx.identity().await {
            Ok(id) => id.clone(),
            Err(_) => return Outcome::skip("the node's identity could not be read (agent.identity says why), so there are no credentials to test"),
        };
        let region = ctx.region_of(&id);
        let provider = match ctx.node_credentials(&id).await {
            Ok(c) => c,
            Err(e) => {
                return Outcome::skip(format!(
                    "there are no credentials to test ({e}); credentials.role says why"
                ))
            }
        };
        let http = match ctx.aws_http().await {
            Ok(h) => h,
            Err(e) => {
                return Outcome::error(
                    format!("cannot set up the HTTPS client for STS: {e}"),
                    "Fix the agent's proxy setting or endpoints.ca_bundle.",
                )
            }
        };
        let endpoint = ctx.endpoint_url("sts", &region);
        let bound = ctx.settings.aws.attempt_timeout;
        let looked = match tokio::time::timeout(
            bound,
            sts::caller(&http, &endpoint, &region, &provider.provider),
        )
        .await
        {
            Ok(l) => l,
            Err(_) => Looked {
                caller: Err(StsError::NoAnswer(format!(
                    "no answer within {}",
                    humantime::format_duration(bound)
                ))),
                expiry: None,
            },
        };
        judge(&looked, ctx.now, &endpoint, &provider.source).detail("endpoint", &endpoint)
    })
}

pub fn judge(l: &Looked, now: SystemTime, endpoint: &str, source: &str) -> Outcome {
    let caller = match &l.caller {
        Ok(c) => c,
        Err(StsError::NoCredentials(why)) => {
            return Outcome::skip(format!("there are no credentials to test ({why}); credentials.role says why"))
        }
        Err(StsError::NoAnswer(why)) => {
            return Outcome::warn(
                format!("the credentials could not be tested: STS at {endpoint} did not answer ({why})"),
                "The agent itself does not need STS, so this alone does not stop patching; to test the credentials, give the node a way to sts.<region>.amazonaws.com (the interface VPC endpoint com.amazonaws.<region>.sts, or the agent's proxy).",
            )
        }
        Err(StsError::Refused { code, message }) => return refused(code, message, source),
    };
    let left = l.expiry.and_then(|e| e.duration_since(now).ok());
    let outcome = match (l.expiry, left) {
        (Some(_), None) => Outcome::fail(
            format!("the credentials from {source} have expired, though STS still accepted them as {}", caller.arn),
            "Restart the agent so it fetches new ones (`sudo systemctl restart amazon-ssm-agent`); if they stay old, check the instance profile (`aws ec2 describe-iam-instance-profile-associations`) or re-register the hybrid node.",
        ),
        (Some(_), Some(left)) if left < EXPIRY_WARN => Outcome::warn(
            format!("STS accepts the credentials as {} (account {}), but they expire in {} and have not been refreshed", caller.arn, caller.account, format_age(left)),
            "Credentials are normally renewed well before the last 15 minutes: check that the instance metadata service answers (`curl -s -H \"X-aws-ec2-metadata-token: $(curl -s -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)\" http://169.254.169.254/latest/meta-data/iam/security-credentials/`) or, on a hybrid node, that the agent can reach SSM to rotate them.",
        ),
        (Some(_), Some(left)) => Outcome::pass(format!(
            "STS accepts the credentials from {source} as {} (account {}); they expire in {}",
            caller.arn,
            caller.account,
            format_age(left)
        )),
        (None, _) => Outcome::pass(format!(
            "STS accepts the credentials from {source} as {} (account {}); they do not expire",
            caller.arn, caller.account
        )),
    };
    let outcome = outcome
        .detail("arn", &caller.arn)
        .detail("account", &caller.account);
    match l.expiry {
        Some(e) => outcome.detail("expires", humantime::format_rfc3339_seconds(e)),
        None => outcome,
    }
}

fn refused(code: &str, message: &str, source: &str) -> Outcome {
    let said = format!("STS answered {code}: {message}");
    let skewed = message.contains("Signature expired") || code == "RequestExpired";
    let outcome = if skewed {
        Outcome::fail(
            format!("AWS refuses every signed request from this node because its clock is off: {said}"),
            "Set the time now (`sudo chronyc makestep`) and keep it synchronized (`sudo timedatectl set-ntp true`); SigV4 rejects requests more than 5 minutes off.",
        )
    } else {
        match code {
            "ExpiredToken" | "ExpiredTokenException" => Outcome::fail(
                format!("the credentials from {source} have expired: {said}"),
                "Restart the agent so it fetches new ones (`sudo systemctl restart amazon-ssm-agent`); on a hybrid node whose credentials stay expired, re-register it (`sudo amazon-ssm-agent -register -code … -id … -region …`).",
            ),
            "InvalidClientTokenId" | "UnrecognizedClientException" | "SignatureDoesNotMatch" | "IncompleteSignature" => Outcome::fail(
                format!("AWS does not accept the credentials from {source}: {said}"),
                "The role or key was deleted or rotated: re-attach the instance profile (`aws ec2 associate-iam-instance-profile`), or re-register the hybrid node.",
            ),
            "AccessDenied" | "AccessDeniedException" => {
                return Outcome::skip(format!(
                    "{said}: an explicit deny (a service control policy or a permissions boundary) refuses sts:GetCallerIdentity, so the credentials could not be tested; allow sts:GetCallerIdentity for the node's role to test them"
                ))
            }
            _ => Outcome::fail(
                format!("AWS refused the credentials from {source}: {said}"),
                "Check the node's role and the account's policies; `aws sts get-caller-identity` on the node shows the same answer.",
            ),
        }
    };
    outcome.detail("code", code)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::sts::Caller;
    use crate::checks::Status;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn accepted(expires_in: Option<i64>) -> Looked {
        Looked {
            caller: Ok(Caller {
                arn: "arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test".into(),
                account: "123456789012".into(),
            }),
            expiry: expires_in
                .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs((NOW as i64 + s) as u64)),
        }
    }

    fn refusal(code: &str, message: &str) -> Looked {
        Looked {
            caller: Err(StsError::Refused {
                code: code.into(),
                message: message.into(),
            }),
            expiry: None,
        }
    }

    const EP: &str = "https://sts.eu-west-1.amazonaws.com";

    #[test]
    fn accepted_credentials_pass_with_their_expiry() {
        let o = judge(&accepted(Some(5 * 3600)), now(), EP, "the instance profile");
        o.assert_says(Status::Pass, "as arn:aws:sts::123456789012:assumed-role/SSMCore/i-0test (account 123456789012); they expire in 5h 0m");
    }

    #[test]
    fn credentials_about_to_expire_warn() {
        let o = judge(&accepted(Some(10 * 60)), now(), EP, "the instance profile");
        o.assert_says(Status::Warn, "expire in 10m 0s and have not been refreshed");
    }

    #[test]
    fn refusals_fail_with_their_cause() {
        let refused = |code: &str, message: &str| judge(&refusal(code, message), now(), EP, "x");
        refused(
            "ExpiredToken",
            "The security token included in the request is expired",
        )
        .assert_says(Status::Fail, "have expired: STS answered ExpiredToken");
        let skew = refused("SignatureDoesNotMatch", "Signature expired: 20261202T020000Z is now earlier than 20261202T020100Z (20261202T020600Z - 5 min.)");
        skew.assert_says(Status::Fail, "its clock is off");
        assert!(skew.remedy.unwrap().contains("chronyc makestep"));
        let invalid = refused(
            "InvalidClientTokenId",
            "The security token included in the request is invalid.",
        );
        assert_eq!(invalid.status, Status::Fail);
        refused("AccessDenied", "explicit deny in a service control policy")
            .assert_says(Status::Skip, "allow sts:GetCallerIdentity");
    }

    #[test]
    fn no_answer_is_a_warning_not_a_pass() {
        let o = judge(
            &Looked {
                caller: Err(StsError::NoAnswer("no answer within 5s".into())),
                expiry: None,
            },
            now(),
            EP,
            "x",
        );
        o.assert_says(Status::Warn, "could not be tested");
    }
}
