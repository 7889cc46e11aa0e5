//! `agent.identity`: how SSM knows this node — an EC2 instance (IMDSv2) or a
//! hybrid node (the agent's registration) — its instance ID and region.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::identity::{Identity, IdentityError};
use crate::host::mode::Mode;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.identity",
    group: Group::Agent,
    title: "Node identity",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "`ec2`: the IMDSv2 identity document (instance ID, region, account); `hybrid`: `/var/lib/amazon/ssm/registration` (never the vault)",
        warns: "—",
        fails: "IMDS does not answer or refuses a token; a hybrid node without a usable registration",
        fix: "IMDS settings (`HttpEndpoint`, hop limit), `amazon-ssm-agent -register`",
        cannot_see: "local mode / IMDS or the registration does not answer",
        reports: "`skip` / `fail`",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    super::task(ctx, &ENTRY, ENTRY.id, |ctx2| async move {
        judge(ctx2.identity().await)
    })
}

pub fn judge(id: &Result<Identity, IdentityError>) -> Outcome {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::aws::identity::Role;
    use crate::checks::Status;

    fn ec2(role: Role) -> Result<Identity, IdentityError> {
        Ok(Identity::ec2_for_tests(role))
    }

    #[test]
    fn identity_verdicts() {
        let o = judge(&ec2(Role::None));
        assert_eq!(o.status, Status::Pass);
        assert_eq!(
            o.summary,
            "EC2 instance i-0abc in eu-west-1 (account 123456789012), from IMDSv2"
        );
        let failed = Err(IdentityError::Failed {
            what: "no IMDS".into(),
            remedy: "fix it".into(),
        });
        assert_eq!(judge(&failed).status, Status::Fail);
        assert_eq!(
            judge(&Err(IdentityError::NotLooked("local".into()))).status,
            Status::Skip
        );
    }
}
