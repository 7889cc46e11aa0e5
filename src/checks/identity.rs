//! `agent.identity` (how SSM knows this node) and `credentials.role`
//! (whether the agent has credentials to call SSM at all).

use super::aws_facts::identity;
use super::{CatalogueEntry, Context, Group, Outcome, Severity};
use crate::aws::identity::{Identity, IdentityError, Role};
use crate::host::mode::Mode;

pub const AGENT_IDENTITY: CatalogueEntry = CatalogueEntry {
    id: "agent.identity",
    group: Group::Agent,
    title: "Node identity",
    severity: Severity::Critical,
};

pub const CREDENTIALS_ROLE: CatalogueEntry = CatalogueEntry {
    id: "credentials.role",
    group: Group::Access,
    title: "Credentials for the agent",
    severity: Severity::Critical,
};

/// Where the agent keeps credentials it got by Default Host Management.
const DHMC_CREDENTIALS: &str = "/var/lib/amazon/ssm/credentials";

pub fn plan_identity(ctx: &Context) -> super::Check {
    let ctx2 = ctx.clone();
    ctx.check_async(&AGENT_IDENTITY, AGENT_IDENTITY.id, async move {
        judge_identity(identity(&ctx2).await)
    })
}

pub fn judge_identity(id: &Result<Identity, IdentityError>) -> Outcome {
    match id {
        Ok(id) => {
            let outcome = match id.mode {
                Mode::Hybrid => Outcome::pass(format!(
                    "hybrid node {} in {}, from the agent's registration",
                    id.instance_id, id.region
                )),
                _ => Outcome::pass(format!(
                    "EC2 instance {} in {}{}, from IMDSv2",
                    id.instance_id,
                    id.region,
                    id.account_id
                        .as_ref()
                        .map(|a| format!(" (account {a})"))
                        .unwrap_or_default()
                )),
            };
            outcome
                .detail("instance_id", &id.instance_id)
                .detail("region", &id.region)
        }
        Err(IdentityError::NotLooked(why)) => Outcome::skip(why.clone()),
        Err(IdentityError::Failed { what, remedy }) => Outcome::fail(what.clone(), remedy.clone()),
    }
}

pub fn plan_role(ctx: &Context) -> super::Check {
    let ctx2 = ctx.clone();
    ctx.check_async(&CREDENTIALS_ROLE, CREDENTIALS_ROLE.id, async move {
        let ctx = ctx2;
        let id = identity(&ctx).await;
        let dhmc = ctx.root.path(DHMC_CREDENTIALS).is_file();
        let shared_file = ctx.root.path(&ctx.settings.aws.credentials_file).is_file();
        judge_role(id, dhmc, shared_file, &ctx.settings.aws.credentials_file)
    })
}

pub fn judge_role(
    id: &Result<Identity, IdentityError>,
    dhmc: bool,
    shared_file: bool,
    shared_path: &str,
) -> Outcome {
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
        (_, Some(Role::Attached { name, code, expiration })) if code == "Success" => Outcome::pass(format!(
            "the instance profile role {name} has credentials{}",
            expiration.as_ref().map(|e| format!(" valid until {e}")).unwrap_or_default()
        ))
        .detail("role", name),
        (_, Some(Role::Attached { name, code, .. })) => Outcome::fail(
            format!("the instance profile role {name} has no usable credentials (IMDS says Code {code})"),
            format!("Check the role's trust policy allows ec2.amazonaws.com to assume it (`aws iam get-role --role-name {name}`), then detach and attach the instance profile again."),
        ),
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

    fn ec2(role: Role) -> Result<Identity, IdentityError> {
        Ok(Identity {
            mode: Mode::Ec2,
            instance_id: "i-0abc".into(),
            region: "eu-west-1".into(),
            account_id: Some("123456789012".into()),
            role: Some(role),
        })
    }

    #[test]
    fn identity_verdicts() {
        let o = judge_identity(&ec2(Role::None));
        assert_eq!(o.status, Status::Pass);
        assert_eq!(
            o.summary,
            "EC2 instance i-0abc in eu-west-1 (account 123456789012), from IMDSv2"
        );
        let failed = Err(IdentityError::Failed {
            what: "no IMDS".into(),
            remedy: "fix it".into(),
        });
        assert_eq!(judge_identity(&failed).status, Status::Fail);
        assert_eq!(
            judge_identity(&Err(IdentityError::NotLooked("local".into()))).status,
            Status::Skip
        );
    }

    #[test]
    fn role_verdicts() {
        let good = ec2(Role::Attached {
            name: "SSMCore".into(),
            code: "Success".into(),
            expiration: Some("2026-11-26T20:00:00Z".into()),
        });
        assert_eq!(
            judge_role(&good, false, false, "/root/.aws/credentials").status,
            Status::Pass
        );
        let none = judge_role(&ec2(Role::None), false, false, "/root/.aws/credentials");
        assert_eq!(none.status, Status::Fail);
        assert!(none
            .remedy
            .unwrap()
            .contains("associate-iam-instance-profile --instance-id i-0abc"));
        assert_eq!(
            judge_role(&ec2(Role::None), true, false, "/root/.aws/credentials").status,
            Status::Pass
        );
        let expired = ec2(Role::Attached {
            name: "R".into(),
            code: "AssumeRoleUnauthorizedAccess".into(),
            expiration: None,
        });
        assert_eq!(judge_role(&expired, false, false, "x").status, Status::Fail);
        let hybrid = Ok(Identity {
            mode: Mode::Hybrid,
            instance_id: "mi-1".into(),
            region: "eu-west-1".into(),
            account_id: None,
            role: None,
        });
        assert_eq!(
            judge_role(&hybrid, false, true, "/root/.aws/credentials").status,
            Status::Pass
        );
        assert_eq!(
            judge_role(&hybrid, false, false, "/root/.aws/credentials").status,
            Status::Fail
        );
    }
}
