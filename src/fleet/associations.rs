//! The State Manager associations that patch, Quick Setup patch policies
//! among them, as the fleet view reads them: `ListAssociations` for each
//! patch document, then `DescribeAssociation` for each one's Operation,
//! MaxErrors and MaxConcurrency (the listing does not carry them). Each
//! becomes a `Window` of its own source kind: its targets one registered
//! target, itself one task, so the prediction judges it as a window task.

use super::ssm::{all_pages, count, FleetError, Operator};
use super::targets::RegisteredTarget;
use super::windows::{resolve_groups, SourceKind, Task, Window};
use crate::aws::associations::{from_description, Association, PATCH_DOCUMENTS};
use futures_util::stream::{self, StreamExt};

/// Associations listed per page (`ListAssociations` takes at most 50).
const PAGE_ASSOCIATIONS: i32 = 50;
/// Associations described at once.
const AT_ONCE: usize = 8;

/// Every association of the region that runs a patch document and has a
/// run ahead of `now`, as windows, soonest first.
pub async fn patching(op: &Operator, now: jiff::Timestamp) -> Result<Vec<Window>, FleetError> {
    let mut ids = Vec::new();
    for document in PATCH_DOCUMENTS {
        ids.extend(listed(op, document).await?);
    }
    ids.sort();
    ids.dedup();
    let described: Vec<Result<Option<Association>, FleetError>> = stream::iter(ids)
        .map(|id| async move {
            count();
            let out = op
                .client
                .describe_association()
                .association_id(&id)
                .send()
                .await
                .map_err(|e| super::ssm::classify(&e, "ssm:DescribeAssociation", &op.region))?;
            Ok(out.association_description().and_then(from_description))
        })
        .buffer_unordered(AT_ONCE)
        .collect()
        .await;
    let mut out = Vec::new();
    for a in described {
        let Some(a) = a? else { continue };
        let Some(next) = a.next_runs(now, 1).first().copied() else {
            continue;
        };
        out.push(window(op, &a, next).await);
    }
    out.sort_by(|a, b| a.next_start.cmp(&b.next_start));
    Ok(out)
}

/// The IDs of the associations of `document`, every page.
async fn listed(op: &Operator, document: &str) -> Result<Vec<String>, FleetError> {
    use aws_sdk_ssm::types::{AssociationFilter, AssociationFilterKey};
    const ACTION: &str = "ssm:ListAssociations";
    let filter = AssociationFilter::builder()
        .key(AssociationFilterKey::Name)
        .value(document)
        .build()
        .map_err(|e| FleetError::Failed(e.to_string()))?;
    let call = op
        .client
        .list_associations()
        .association_filter_list(filter)
        .max_results(PAGE_ASSOCIATIONS);
    let pages = all_pages(call.into_paginator().send(), ACTION, &op.region).await?;
    Ok(pages
        .iter()
        .flat_map(|p| p.associations())
        .filter_map(|a| a.association_id().map(str::to_string))
        .collect())
}

/// An association as a window of one task over its targets.
async fn window(op: &Operator, a: &Association, next: jiff::Timestamp) -> Window {
    let (registered, notes) =
        resolve_groups(op, vec![RegisteredTarget::new(&a.id, &a.targets)]).await;
    Window {
        source: if a.patch_policy() {
            SourceKind::PatchPolicy
        } else {
            SourceKind::Association
        },
        id: a.id.clone(),
        name: a.name.clone().unwrap_or_else(|| a.document.clone()),
        enabled: true,
        next_start: Some(next.to_string()),
        tasks: vec![Task {
            id: a.id.clone(),
            installs: a.installs(),
            max_concurrency: a.max_concurrency.clone(),
            max_errors: a.max_errors.clone(),
            pre_install_hook: None,
            reaches: registered.clone(),
        }],
        registered,
        notes,
    }
}
