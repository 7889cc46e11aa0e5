//! `credentials.role`: whether the agent has credentials to call SSM at all —
//! an instance profile role, Default Host Management credentials, or a
//! hybrid node's credentials file.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::identity::{Identity, IdentityError, Role, RoleStatus, RoleStatusError};
use crate::host::credentials::{self, Present, DHMC_CREDENTIALS};
use crate::host::mode::Mode;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "credentials.role",
    group: Group::Access,
    title: "Credentials for the agent",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "`ec2`: the instance profile role under `iam/security-credentials/` and its `Code`; Default Host Management credentials (`/var/lib/amazon/ssm/credentials`); `hybrid`: the agent's credentials file",
        warns: "—",
        fails: "no instance profile (and no DHMC), or the role's credentials are not usable",
        fix: "`aws ec2 associate-iam-instance-profile`, DHMC",
        cannot_see: "local mode / IMDS or the registration does not answer",
        reports: "`skip` / `fail`",
    },
};

/// The detail naming the role that has credentials: the next run reads it
/// back from the state file (`Report::remembered`).
pub const ROLE_DETAIL: &str = "role";

pub fn plan(ctx: &Context) -> super::Check {
    super::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let id = ctx.identity().await;
        let (root, file) = (ctx.root.clone(), ctx.settings.aws.credentials_file.clone());
        // Off the runtime's thread: the files live under /var, which may hang.
        let found =
            match tokio::task::spawn_blocking(move || credentials::present(&root, &file)).await {
                Ok(found) => found,
                Err(e) => return Outcome::error(
                    format!("cannot look for the agent's credential files: {e}"),
                    "This is a bug in ssm-preflight: report it with `ssm-preflight check --json`.",
                ),
            };
        let status = match id {
            Ok(Identity {
                role: Some(Role::Attached { name }),
                ..
            }) => Some(ctx.role_status(name).await),
            _ => None,
        };
        judge(id, status, found, &ctx.settings.aws.credentials_file)
    })
}

/// `status`: what IMDS says of an attached role's credentials.
pub fn judge(
    id: &Result<Identity, IdentityError>,
    status: Option<&Result<RoleStatus, RoleStatusError>>,
    found: Present,
    shared_path: &str,
) -> Outcome {
    let Present { dhmc, shared_file } = found;
    let id = match id {
        Ok(id) => id,
        Err(IdentityError::NotLooked(why)) => return Outcome::skip(why.clone()),
        Err(IdentityError::Failed { .. }) => {
            return Outcome::skip("the node's identity could not be read (agent.identity says why), so its credentials cannot be judged")
        }
    };
    match (&id.mode, &id.role) {
        (Mode::Hybrid, _) => {
            if shared_file || dhmc {
                let place = if shared_file { shared_path } else { DHMC_CREDENTIALS };
                Outcome::pass(format!("the hybrid node's agent keeps its credentials in {place}"))
            } else {
                Outcome::fail(
                    format!("the hybrid node has no agent credentials ({shared_path} and {DHMC_CREDENTIALS} do not exist)"),
                    "Register the node again so the agent fetches credentials: `sudo amazon-ssm-agent -register -code CODE -id ID -region REGION -y`, then `sudo systemctl restart amazon-ssm-agent`.",
                )
            }
        }
        (_, Some(Role::Attached { name })) => match status {
            Some(Ok(RoleStatus { code, expiration })) if code == "Success" => Outcome::pass(format!(
                "the instance profile role {name} has credentials{}",
                expiration.as_ref().map(|e| format!(" valid until {e}")).unwrap_or_default()
            ))
            .detail(ROLE_DETAIL, name),
            Some(Ok(RoleStatus { code, .. })) => Outcome::fail(
                format!("the instance profile role {name} has no usable credentials (IMDS says Code {code})"),
                format!("Check the role's trust policy allows ec2.amazonaws.com to assume it (`aws iam get-role --role-name {name}`), then detach and attach the instance profile again."),
            ),
            Some(Err(why)) => Outcome::error(
                format!("the instance profile role {name} is attached, but its credentials could not be read: {why}"),
                format!("Ask IMDS by hand: `TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); curl -sH \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/iam/security-credentials/{name}`."),
            ),
            None => Outcome::error(
                format!("the instance profile role {name} is attached, but its credentials were not read"),
                "This is a bug in ssm-preflight: report it with `ssm-preflight check --json`.",
            ),
        },
        (_, Some(Role::None)) | (_, None) if dhmc => Outcome::pass(format!(
            "no instance profile; the agent uses Default Host Management credentials ({DHMC_CREDENTIALS})"
        )),
        (_, Some(Role::None)) | (_, None) => Outcome::fail(
            "no instance profile is attached, so the agent has no credentials to call SSM",
            format!(
                "Attach an instance profile whose role has the AmazonSSMManagedInstanceCore policy: `aws ec2 associate-iam-instance-profile --instance-id {} --iam-instance-profile Name=PROFILE`, or turn on Default Host Management Configuration in Fleet Manager.",
                id.instance_id
            ),
        ),
        (_, Some(Role::Unknown(why))) => Outcome::error(
            format!("cannot tell whether the instance has a role: {why}"),
            "Ask IMDS by hand: `TOKEN=$(curl -sX PUT http://169.254.169.254/latest/api/token -H 'X-aws-ec2-metadata-token-ttl-seconds: 60'); curl -sH \"X-aws-ec2-metadata-token: $TOKEN\" http://169.254.169.254/latest/meta-data/iam/security-credentials/`.",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const NONE: Present = Present {
        dhmc: false,
        shared_file: false,
    };
    const DHMC: Present = Present {
        dhmc: true,
        shared_file: false,
    };
    const SHARED_FILE: Present = Present {
        dhmc: false,
        shared_file: true,
    };

    fn ec2(role: Role) -> Result<Identity, IdentityError> {
        Ok(Identity::ec2_for_tests(role))
    }

    #[test]
    fn role_verdicts() {
        let good = ec2(Role::Attached {
            name: "SSMCore".into(),
        });
        let success = Ok(RoleStatus {
            code: "Success".into(),
            expiration: Some("2026-11-26T20:00:00Z".into()),
        });
        assert_eq!(
            judge(&good, Some(&success), NONE, "/root/.aws/credentials").status,
            Status::Pass
        );
        let none = judge(&ec2(Role::None), None, NONE, "/root/.aws/credentials");
        assert_eq!(none.status, Status::Fail);
        assert!(none
            .remedy
            .unwrap()
            .contains("associate-iam-instance-profile --instance-id i-0abc"));
        assert_eq!(
            judge(&ec2(Role::None), None, DHMC, "/root/.aws/credentials").status,
            Status::Pass
        );
        let attached = ec2(Role::Attached { name: "R".into() });
        let refused = Ok(RoleStatus {
            code: "AssumeRoleUnauthorizedAccess".into(),
            expiration: None,
        });
        assert_eq!(
            judge(&attached, Some(&refused), NONE, "x").status,
            Status::Fail
        );
        let unread = Err(RoleStatusError::NoCredentials("R".into()));
        judge(&attached, Some(&unread), NONE, "x").assert_says(
            Status::Error,
            "the instance profile role R is attached, but its credentials could not be read: the role R is listed but has no credentials",
        );
        let hybrid = Ok(Identity {
            mode: Mode::Hybrid,
            instance_id: "mi-1".into(),
            region: "eu-west-1".into(),
            account_id: None,
            role: None,
        });
        assert_eq!(
            judge(&hybrid, None, SHARED_FILE, "/root/.aws/credentials").status,
            Status::Pass
        );
        assert_eq!(
            judge(&hybrid, None, NONE, "/root/.aws/credentials").status,
            Status::Fail
        );
    }
}
