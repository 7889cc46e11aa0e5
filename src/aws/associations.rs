//! The State Manager associations that patch this node, Quick Setup patch
//! policies among them: `ssm:DescribeEffectiveInstanceAssociations` for the
//! node's associations however they target it (ID, tag, resource group,
//! every node), then `ssm:DescribeAssociation` for each one's document,
//! schedule and parameters.
//!
//! Why these two: the first is the only public call that resolves an
//! association's targets for one node (the agent's own
//! `ListInstanceAssociations` is not in the public SDK; `ListAssociations`
//! lists the account's associations and leaves their tag and resource-group
//! targets to be resolved by the caller). It is an optional action; the
//! second is in `AmazonSSMManagedInstanceCore`.

use super::patching::{classify, CallError};
use crate::config::schedule::window::Window;
use crate::config::schedule::{next_starts, Schedule};
use jiff::Timestamp;

/// The documents an association patches with.
pub const PATCH_DOCUMENTS: [&str; 3] = [
    "AWS-RunPatchBaseline",
    "AWS-RunPatchBaselineWithHooks",
    "AWS-RunPatchBaselineAssociation",
];

/// How Quick Setup names the associations of a patch policy
/// (`AWS-QuickSetup-PatchPolicy-<operation>-<configuration ID>`).
pub const PATCH_POLICY_PREFIX: &str = "AWS-QuickSetup-PatchPolicy-";

/// Associations described at once.
const AT_ONCE: usize = 8;

/// One association that runs a patch document on this node.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Association {
    pub id: String,
    /// `AssociationName`, when it has one.
    pub name: Option<String>,
    pub document: String,
    /// `cron(…)`, `rate(…)` or `at(…)`; none: it ran once, when created.
    pub schedule: Option<String>,
    /// Days after the cron date (`ScheduleOffset`).
    pub schedule_offset: i64,
    /// Hours it may run (`Duration`), when set.
    pub duration_hours: Option<i32>,
    /// `Scan` or `Install` (the documents' default is `Scan`).
    pub operation: String,
    /// The `BaselineOverride` parameter: the baseline it patches with
    /// instead of the patch group's.
    pub baseline_override: Option<String>,
    pub max_concurrency: Option<String>,
    pub max_errors: Option<String>,
    pub last_execution: Option<Timestamp>,
    /// Its targets as (key, values): `InstanceIds` (`*` for every node),
    /// `tag:<key>`, `resource-groups:Name`.
    pub targets: Vec<(String, Vec<String>)>,
}

impl Association {
    /// Created by a Quick Setup patch policy.
    pub fn patch_policy(&self) -> bool {
        self.name
            .as_deref()
            .is_some_and(|n| n.starts_with(PATCH_POLICY_PREFIX))
    }

    pub fn installs(&self) -> bool {
        self.operation == "Install"
    }

    /// `patch policy AWS-QuickSetup-PatchPolicy-… (id)` or
    /// `association nightly-scan (id)`, as a user finds it in the console.
    pub fn label(&self) -> String {
        let kind = if self.patch_policy() {
            "Quick Setup patch policy"
        } else {
            "State Manager association"
        };
        match &self.name {
            Some(n) => format!("{kind} {n} ({})", self.id),
            None => format!("{kind} {}", self.id),
        }
    }

    /// `patch-policy` or `association`: the `source` of its runs.
    pub fn source(&self) -> &'static str {
        if self.patch_policy() {
            "patch-policy"
        } else {
            "association"
        }
    }

    /// Its runs after `now`, at most `count`. A cron schedule is UTC, as
    /// State Manager reads it; a rate runs on from its last execution (or
    /// from now when it has none), as State Manager anchors it.
    pub fn next_runs(&self, now: Timestamp, count: usize) -> Vec<Timestamp> {
        let Some(schedule) = self
            .schedule
            .as_deref()
            .and_then(|s| Schedule::parse(s).ok())
        else {
            return Vec::new();
        };
        let utc = jiff::tz::TimeZone::UTC;
        match &schedule {
            Schedule::Rate { seconds, .. } => {
                let anchor = self.last_execution.filter(|t| *t <= now).unwrap_or(now);
                // The last run due at or before now, then the ones after it.
                let period = (*seconds).max(1);
                let elapsed = now.as_second() - anchor.as_second();
                let last = anchor
                    .checked_add(jiff::SignedDuration::from_secs(elapsed / period * period))
                    .unwrap_or(now);
                next_starts(&schedule, &utc, 0, last, count)
            }
            _ => next_starts(&schedule, &utc, self.schedule_offset, now, count),
        }
    }

    /// Its runs after `now` as windows (`source` `association` or
    /// `patch-policy`, the association's ID in `window_id`).
    pub fn windows(&self, now: Timestamp, count: usize) -> Vec<Window> {
        self.next_runs(now, count)
            .into_iter()
            .map(|start| Window {
                start: start.to_string(),
                name: self.name.clone().unwrap_or_else(|| self.document.clone()),
                source: self.source().into(),
                window_id: Some(self.id.clone()),
                duration_secs: self
                    .duration_hours
                    .and_then(|h| u64::try_from(h).ok())
                    .map(|h| h * 3600),
            })
            .collect()
    }
}

/// The node's associations that run a patch document.
pub async fn of_node(
    ssm: &aws_sdk_ssm::Client,
    instance_id: &str,
) -> Result<Vec<Association>, CallError> {
    use futures_util::stream::{self, StreamExt, TryStreamExt};
    // Every page: an association on page two patches as surely.
    let listed: Vec<aws_sdk_ssm::types::InstanceAssociation> = ssm
        .describe_effective_instance_associations()
        .instance_id(instance_id)
        .into_paginator()
        .items()
        .send()
        .collect::<Result<_, _>>()
        .await
        .map_err(|e| classify(&e, "ssm:DescribeEffectiveInstanceAssociations"))?;
    let mut ids: Vec<String> = listed
        .into_iter()
        .filter_map(|a| a.association_id)
        .collect();
    ids.sort();
    ids.dedup();
    let described: Vec<_> = stream::iter(ids)
        .map(|id| async move {
            ssm.describe_association()
                .association_id(id)
                .send()
                .await
                .map_err(|e| classify(&e, "ssm:DescribeAssociation"))
        })
        .buffer_unordered(AT_ONCE)
        .try_collect()
        .await?;
    let mut out: Vec<Association> = described
        .iter()
        .filter_map(|d| d.association_description())
        .filter_map(from_description)
        .collect();
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// An association that patches, from its description; `None` for one that
/// runs something else.
pub fn from_description(d: &aws_sdk_ssm::types::AssociationDescription) -> Option<Association> {
    // A document may be named by its ARN (arn:aws:ssm:…:document/AWS-RunPatchBaseline).
    let document = d.name()?.rsplit('/').next()?.to_string();
    if !PATCH_DOCUMENTS.contains(&document.as_str()) {
        return None;
    }
    let parameter = |key: &str| {
        d.parameters()
            .and_then(|p| p.get(key))
            .and_then(|v| v.first())
            .filter(|v| !v.is_empty())
            .cloned()
    };
    Some(Association {
        id: d.association_id()?.to_string(),
        name: d.association_name().map(str::to_string),
        document,
        schedule: d.schedule_expression().map(str::to_string),
        schedule_offset: d.schedule_offset().map(i64::from).unwrap_or(0),
        duration_hours: d.duration(),
        operation: parameter("Operation").unwrap_or_else(|| "Scan".into()),
        baseline_override: parameter("BaselineOverride"),
        max_concurrency: d.max_concurrency().map(str::to_string),
        max_errors: d.max_errors().map(str::to_string),
        last_execution: d
            .last_execution_date()
            .and_then(|t| Timestamp::from_second(t.secs()).ok()),
        targets: d
            .targets()
            .iter()
            .filter_map(|t| Some((t.key()?.to_string(), t.values().to_vec())))
            .collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().unwrap()
    }

    fn association(schedule: &str) -> Association {
        Association {
            id: "3e2f1a55-0000-4000-8000-000000000001".into(),
            name: Some("AWS-QuickSetup-PatchPolicy-InstallPatches-abcd1".into()),
            document: "AWS-RunPatchBaseline".into(),
            schedule: Some(schedule.into()),
            operation: "Install".into(),
            ..Default::default()
        }
    }

    #[test]
    fn a_cron_association_runs_at_its_utc_times() {
        let a = association("cron(0 2 ? * SUN *)");
        let runs = a.next_runs(at("2026-12-06T10:00:00Z"), 2);
        assert_eq!(
            runs,
            vec![at("2026-12-13T02:00:00Z"), at("2026-12-20T02:00:00Z")]
        );
        assert!(a.patch_policy() && a.installs());
        assert_eq!(a.source(), "patch-policy");
        assert!(a.label().starts_with(
            "Quick Setup patch policy AWS-QuickSetup-PatchPolicy-InstallPatches-abcd1 ("
        ));
    }

    #[test]
    fn a_rate_association_runs_on_from_its_last_execution() {
        let mut a = association("rate(1 day)");
        a.last_execution = Some(at("2026-12-03T05:30:00Z"));
        let runs = a.next_runs(at("2026-12-06T10:00:00Z"), 2);
        assert_eq!(
            runs,
            vec![at("2026-12-07T05:30:00Z"), at("2026-12-08T05:30:00Z")]
        );
        // Never run: from now.
        a.last_execution = None;
        assert_eq!(
            a.next_runs(at("2026-12-06T10:00:00Z"), 1),
            vec![at("2026-12-07T10:00:00Z")]
        );
    }

    #[test]
    fn no_schedule_or_a_bad_one_runs_no_more() {
        let mut a = association("cron(bad)");
        assert!(a.next_runs(at("2026-12-06T10:00:00Z"), 3).is_empty());
        a.schedule = None;
        assert!(a.windows(at("2026-12-06T10:00:00Z"), 3).is_empty());
    }

    #[test]
    fn its_runs_are_windows_with_its_length_and_source() {
        let mut a = association("cron(0 2 ? * SUN *)");
        a.duration_hours = Some(3);
        a.name = Some("nightly".into());
        let w = &a.windows(at("2026-12-06T10:00:00Z"), 1)[0];
        assert_eq!(
            (w.source.as_str(), w.name.as_str(), w.duration_secs),
            ("association", "nightly", Some(3 * 3600))
        );
        assert_eq!(w.window_id.as_deref(), Some(a.id.as_str()));
    }
}
