//! `patchgroup.tag`: the node's Patch Group, which picks its baseline and
//! groups it in the Compliance view. Missing or conflicting tags warn.

use super::common::local_skip;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::tags::{Found, NotRead};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patchgroup.tag",
    group: Group::Host,
    title: "Patch Group tag",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`patch_group.value` in the config if set; else `ec2`: the IMDS instance tag `PatchGroup` (IMDS cannot show a key with a space) and `ec2:DescribeTags` for `Patch Group` and `PatchGroup`; `hybrid`: `ssm:ListTagsForResource`",
        warns: "no tag (Compliance shows the node under no patch group), or two different values",
        fails: "—",
        fix: "`aws ec2 create-tags … 'Key=Patch Group,Value=…'`, `aws ssm add-tags-to-resource`",
        cannot_see: "local mode, or no identity / one tag source refused (IMDS tags off, AccessDenied)",
        reports: "`skip` / `warn` with the value the other source gave",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let (found, not_read, instance_id) = match gather(&ctx).await {
            Ok(g) => g,
            Err(outcome) => return outcome,
        };
        let outcome = judge(&found, &not_read, instance_id.as_deref());
        let values: Vec<&str> = found.iter().map(|f| f.value.as_str()).collect();
        if let Some(first) = values.first() {
            if values.iter().all(|v| v == first) {
                let _ = ctx.shared.patch_group.set(first.to_string());
            }
        }
        outcome
    })
}

type Gathered = (Vec<Found>, Vec<NotRead>, Option<String>);

async fn gather(ctx: &Context) -> Result<Gathered, Outcome> {
    if let Some(value) = &ctx.settings.patch_group.value {
        let found = Found {
            source: "the ssm-preflight config (patch_group.value)",
            key: "Patch Group".into(),
            value: value.clone(),
        };
        return Ok((vec![found], vec![], None));
    }
    if let Some(skip) = local_skip(ctx) {
        return Err(Outcome::skip(format!(
            "{}; set patch_group.value to name this node's group",
            skip.summary
        )));
    }
    // IMDS's tag needs no identity: it is read beside the identity's calls.
    let (id, _) = tokio::join!(ctx.identity(), ctx.imds_tags());
    let id = match id {
        Ok(id) => id.clone(),
        Err(_) => return Err(Outcome::skip("the node's identity could not be read (agent.identity says why), so its tags cannot be looked up")),
    };
    let (found, not_read) = ctx.patch_group_tags(&id).await;
    Ok((found, not_read, Some(id.instance_id)))
}

pub fn judge(found: &[Found], not_read: &[NotRead], instance_id: Option<&str>) -> Outcome {
    let looked = if not_read.is_empty() {
        String::new()
    } else {
        format!(
            " (not read: {})",
            not_read
                .iter()
                .map(|n| format!("{}: {}", n.source, n.why))
                .collect::<Vec<_>>()
                .join("; ")
        )
    };
    let mut values: Vec<&str> = found.iter().map(|f| f.value.as_str()).collect();
    values.sort();
    values.dedup();
    let id = instance_id.unwrap_or("INSTANCE_ID");
    let outcome = match values.as_slice() {
        [] => {
            let tag_command = if id.starts_with("mi-") {
                format!("aws ssm add-tags-to-resource --resource-type ManagedInstance --resource-id {id} --tags 'Key=Patch Group,Value=GROUP'")
            } else {
                format!("aws ec2 create-tags --resources {id} --tags 'Key=Patch Group,Value=GROUP'")
            };
            Outcome::warn(
                format!("this node has no Patch Group tag{looked}"),
                format!("Tag it with the key `Patch Group` (with a space) or `PatchGroup`: `{tag_command}`. Without it the node gets the default baseline and the Compliance view shows it under no patch group (\"No data\")."),
            )
        }
        [one] if not_read.is_empty() => {
            let sources: Vec<String> = found.iter().map(|f| format!("tag `{}` from {}", f.key, f.source)).collect();
            Outcome::pass(format!("the Patch Group is {one} ({})", sources.join(", ")))
        }
        // A source that failed is a warning with its cause, the value the
        // other source gave still shown: the two may disagree unseen.
        [one] => {
            let sources: Vec<String> = found.iter().map(|f| format!("tag `{}` from {}", f.key, f.source)).collect();
            let failed: Vec<&str> = not_read.iter().map(|n| n.source).collect();
            Outcome::warn(
                format!("the Patch Group is {one} ({}), but {looked_trimmed}", sources.join(", "), looked_trimmed = looked.trim().trim_start_matches('(').trim_end_matches(')')),
                format!("Fix what stops {}, so every source of the tag is compared; the IAM actions ssm-preflight uses are in /usr/share/ssm-preflight/iam/ssm-preflight-policy.json.", failed.join(" and ")),
            )
        }
        _ => Outcome::warn(
            format!(
                "the Patch Group tags disagree: {}",
                found.iter().map(|f| format!("`{}` = {} ({})", f.key, f.value, f.source)).collect::<Vec<_>>().join(", ")
            ),
            "Keep one value: remove the other tag, so it is clear which baseline patches this node.",
        ),
    };
    match values.as_slice() {
        [one] => outcome.detail("patch_group", one),
        _ => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn f(source: &'static str, key: &str, value: &str) -> Found {
        Found {
            source,
            key: key.into(),
            value: value.into(),
        }
    }

    #[test]
    fn verdicts() {
        let one = judge(
            &[
                f("IMDS instance tags", "PatchGroup", "prod"),
                f("ec2:DescribeTags", "PatchGroup", "prod"),
            ],
            &[],
            Some("i-1"),
        );
        assert_eq!(one.status, Status::Pass);
        assert!(one
            .summary
            .starts_with("the Patch Group is prod (tag `PatchGroup` from IMDS instance tags"));
        assert_eq!(one.details["patch_group"], "prod");

        let none = judge(
            &[],
            &[NotRead {
                source: "ec2:DescribeTags",
                why: "UnauthorizedOperation".into(),
            }],
            Some("i-1"),
        );
        assert_eq!(none.status, Status::Warn);
        assert!(none
            .summary
            .contains("not read: ec2:DescribeTags: UnauthorizedOperation"));
        assert!(none
            .remedy
            .unwrap()
            .contains("aws ec2 create-tags --resources i-1 --tags 'Key=Patch Group,Value=GROUP'"));
        // One source answered, the other failed: a warning with the cause,
        // the value still shown.
        let half = judge(
            &[f("IMDS instance tags", "Patch Group", "prod")],
            &[NotRead {
                source: "ec2:DescribeTags",
                why: "ec2:DescribeTags answered UnauthorizedOperation: not authorized".into(),
            }],
            Some("i-1"),
        );
        half.assert_begins(Status::Warn, "the Patch Group is prod (tag `Patch Group` from IMDS instance tags), but not read: ec2:DescribeTags: ec2:DescribeTags answered UnauthorizedOperation");
        assert!(half
            .remedy
            .unwrap()
            .contains("Fix what stops ec2:DescribeTags"));
        assert_eq!(half.details["patch_group"], "prod");
        let mi = judge(&[], &[], Some("mi-1"));
        assert!(mi
            .remedy
            .unwrap()
            .contains("add-tags-to-resource --resource-type ManagedInstance --resource-id mi-1"));

        let conflict = judge(
            &[
                f("ec2:DescribeTags", "Patch Group", "prod"),
                f("ec2:DescribeTags", "PatchGroup", "dev"),
            ],
            &[],
            Some("i-1"),
        );
        assert_eq!(conflict.status, Status::Warn);
        assert!(conflict.summary.contains("`Patch Group` = prod"));
    }
}
