//! The checks: one file per check (or family of checks), each with its
//! catalogue entry, a `plan` that turns the run's facts into runnable work,
//! and a pure `judge` from gathered facts to an `Outcome`, tested without a
//! machine behind it. The facts themselves are gathered in `host/` and
//! `aws/` (through `facts::Context`); nothing here reads the host.
//!
//! To add a check: give it a stable ID (also the SSM compliance item ID and
//! the `--only` name), write its file with `ENTRY` and `plan`, and add one
//! line to `REGISTRY`.

pub mod agent;
pub mod clock;
pub mod common;
pub mod credentials_role;
pub mod credentials_valid;
pub mod disk;
pub mod endpoint;
pub mod identity;
pub mod os_supported;
pub mod patch_group;
pub mod patch_last_run;
pub mod patch_prereqs;
pub mod patch_snapshot;
pub mod patch_sources;
pub mod patchgroup_baseline;
pub mod payload;
pub mod pkg_exclude;
pub mod pkg_lock;
pub mod pkg_simulate;
pub mod pkg_state;
pub mod reboot;
pub mod reference;
pub mod repo;
pub mod repo_signature;
pub mod ssm_ping;

pub use crate::facts::Context;

use crate::config::selector;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
    /// The check does not apply here (no apt on a dnf host); the reason says why.
    Skip,
    /// The check could not look (timed out, crashed, could not read).
    Error,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Pass => "pass",
            Status::Warn => "warn",
            Status::Fail => "fail",
            Status::Skip => "skip",
            Status::Error => "error",
        }
    }

    /// How bad, for picking the worst of several findings in one check.
    pub fn rank(self) -> u8 {
        match self {
            Status::Pass => 0,
            Status::Skip => 1,
            Status::Warn => 2,
            Status::Error => 3,
            Status::Fail => 4,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Critical,
    High,
    Medium,
    Low,
    Informational,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Critical => "critical",
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
            Severity::Informational => "informational",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Group {
    Agent,
    Access,
    Network,
    Host,
    /// How SSM and Patch Manager see the node (ping, baseline, windows, last run).
    Cloud,
}

impl Group {
    pub const ALL: [Group; 5] = [
        Group::Agent,
        Group::Access,
        Group::Network,
        Group::Host,
        Group::Cloud,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Group::Agent => "agent",
            Group::Access => "access",
            Group::Network => "network",
            Group::Host => "host",
            Group::Cloud => "cloud",
        }
    }
}

/// What a check found: the verdict, one line with the measured figure, and
/// what to do about it.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub status: Status,
    pub summary: String,
    pub remedy: Option<String>,
    pub details: BTreeMap<String, String>,
}

impl Outcome {
    fn new(status: Status, summary: impl Into<String>, remedy: Option<String>) -> Self {
        Outcome {
            status,
            summary: summary.into(),
            remedy,
            details: BTreeMap::new(),
        }
    }
    pub fn pass(summary: impl Into<String>) -> Self {
        Self::new(Status::Pass, summary, None)
    }
    pub fn warn(summary: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::new(Status::Warn, summary, Some(remedy.into()))
    }
    pub fn fail(summary: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::new(Status::Fail, summary, Some(remedy.into()))
    }
    pub fn skip(reason: impl Into<String>) -> Self {
        Self::new(Status::Skip, reason, None)
    }
    pub fn error(summary: impl Into<String>, remedy: impl Into<String>) -> Self {
        Self::new(Status::Error, summary, Some(remedy.into()))
    }
    pub fn detail(mut self, key: &str, value: impl ToString) -> Self {
        self.details.insert(key.to_string(), value.to_string());
        self
    }
}

#[cfg(test)]
impl Outcome {
    /// For tests: the status, and a summary that says `words`.
    #[track_caller]
    pub fn assert_says(&self, status: Status, words: &str) {
        assert_eq!(self.status, status, "{}", self.summary);
        assert!(
            self.summary.contains(words),
            "{words:?} is not in the summary: {}",
            self.summary
        );
    }

    /// For tests: the status, and a summary that begins with `words`.
    #[track_caller]
    pub fn assert_begins(&self, status: Status, words: &str) {
        self.assert_says(status, words);
        assert!(
            self.summary.starts_with(words),
            "the summary does not begin with {words:?}: {}",
            self.summary
        );
    }
}

/// One check's result as reported (JSON, SSM, state file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CheckResult {
    pub id: String,
    pub group: Group,
    pub title: String,
    pub status: Status,
    pub severity: Severity,
    pub summary: String,
    pub remedy: Option<String>,
    pub details: BTreeMap<String, String>,
    pub duration_ms: u64,
}

#[cfg(test)]
impl CheckResult {
    /// For tests: a result with a summary and a remedy named after its ID.
    pub fn sample(id: &str, group: Group, status: Status) -> CheckResult {
        CheckResult {
            id: id.into(),
            group,
            title: id.into(),
            status,
            severity: Severity::Medium,
            summary: format!("{id} summary"),
            remedy: Some(format!("fix {id}")),
            details: BTreeMap::new(),
            duration_ms: 0,
        }
    }
}

/// A check ready to run: who it is, and the work that judges it.
pub struct Check {
    pub info: CheckInfo,
    pub work: Work,
}

/// File and syscall work runs on the blocking pool; bus and network
/// questions run as tasks.
pub enum Work {
    Blocking(Box<dyn FnOnce() -> Outcome + Send + 'static>),
    Async(Pin<Box<dyn Future<Output = Outcome> + Send + 'static>>),
}

#[derive(Debug, Clone)]
pub struct CheckInfo {
    pub id: String,
    pub group: Group,
    pub title: String,
    pub severity: Severity,
    pub timeout: Duration,
    /// What a timeout means for this check, when it can say more than
    /// "did not finish" (the disk check: which mount is hung).
    pub timeout_hint: Option<String>,
}

impl CheckInfo {
    pub fn result(&self, outcome: Outcome, duration: Duration) -> CheckResult {
        CheckResult {
            id: self.id.clone(),
            group: self.group,
            title: self.title.clone(),
            status: outcome.status,
            severity: self.severity,
            summary: outcome.summary,
            remedy: outcome.remedy,
            details: outcome.details,
            duration_ms: duration.as_millis() as u64,
        }
    }
}

/// A check ID, or for a family (`disk`, `endpoint`) the prefix of its members' IDs.
pub struct CatalogueEntry {
    pub id: &'static str,
    pub group: Group,
    pub title: &'static str,
    pub severity: Severity,
    /// For a family: how its members are named after the dot (`<name>` for
    /// `disk.<name>`); `None` for a single check.
    pub members: Option<&'static str>,
    /// The reference for people: docs/checks.md is made from it.
    pub doc: Doc,
}

/// What a check looks at and when it warns or fails, in the reference's
/// words (Markdown); `—` where it never does.
pub struct Doc {
    pub looks_at: &'static str,
    pub warns: &'static str,
    pub fails: &'static str,
    pub fix: &'static str,
    /// What it cannot see where it runs, and what it reports then.
    pub cannot_see: &'static str,
    pub reports: &'static str,
}

/// How a registered check turns the run's facts into work.
pub enum Plan {
    One(fn(&Context) -> Check),
    /// A family: one check per filesystem, per endpoint, ….
    Many(fn(&Context) -> Vec<Check>),
}

/// One line of the registry.
pub struct Registered {
    pub entry: &'static CatalogueEntry,
    pub plan: Plan,
}

const fn one(entry: &'static CatalogueEntry, plan: fn(&Context) -> Check) -> Registered {
    Registered {
        entry,
        plan: Plan::One(plan),
    }
}

const fn many(entry: &'static CatalogueEntry, plan: fn(&Context) -> Vec<Check>) -> Registered {
    Registered {
        entry,
        plan: Plan::Many(plan),
    }
}

/// Every check, in the order they are reported. The catalogue, the plan and
/// the selectors all come from here.
pub const REGISTRY: &[Registered] = &[
    one(&agent::service::ENTRY, agent::service::plan),
    one(&agent::version::ENTRY, agent::version::plan),
    one(&agent::log::ENTRY, agent::log::plan),
    one(&agent::proxy::ENTRY, agent::proxy::plan),
    one(&identity::ENTRY, identity::plan),
    one(&credentials_role::ENTRY, credentials_role::plan),
    one(&credentials_valid::ENTRY, credentials_valid::plan),
    one(&clock::ENTRY, clock::plan),
    many(&endpoint::ENTRY, endpoint::plan),
    one(&repo::ENTRY, repo::plan),
    one(&repo_signature::ENTRY, repo_signature::plan),
    one(&payload::ENTRY, payload::plan),
    many(&disk::ENTRY, disk::plan),
    one(&pkg_lock::ENTRY, pkg_lock::plan),
    one(&pkg_state::ENTRY, pkg_state::plan),
    one(&pkg_simulate::ENTRY, pkg_simulate::plan),
    one(&pkg_exclude::ENTRY, pkg_exclude::plan),
    one(&reboot::ENTRY, reboot::plan),
    one(&os_supported::ENTRY, os_supported::plan),
    one(&patch_prereqs::ENTRY, patch_prereqs::plan),
    one(&patch_group::ENTRY, patch_group::plan),
    one(&ssm_ping::ENTRY, ssm_ping::plan),
    one(&patchgroup_baseline::ENTRY, patchgroup_baseline::plan),
    one(&patch_sources::ENTRY, patch_sources::plan),
    one(&patch_last_run::ENTRY, patch_last_run::plan),
    one(&patch_snapshot::ENTRY, patch_snapshot::plan),
];

/// The catalogue: every check ID (or family) with its group, title and severity.
pub fn catalogue() -> impl Iterator<Item = &'static CatalogueEntry> {
    REGISTRY.iter().map(|r| r.entry)
}

/// Every check this host can run, in registry order.
pub fn plan_all(ctx: &Context) -> Vec<Check> {
    plan_where(ctx, |_| true)
}

/// The checks of the entries `wanted` keeps, in registry order: an entry
/// no selector can reach is not even planned (its plan may look at the
/// host, as the disk family's does).
pub fn plan_where(ctx: &Context, wanted: impl Fn(&CatalogueEntry) -> bool) -> Vec<Check> {
    REGISTRY
        .iter()
        .filter(|r| wanted(r.entry))
        .flat_map(|r| match r.plan {
            Plan::One(plan) => vec![plan(ctx)],
            Plan::Many(plan) => plan(ctx),
        })
        .collect()
}

/// Whether a selector can reach any check of an entry: what `selects`
/// takes, or one member of a family (`endpoint.ssm` for `endpoint`).
pub fn reaches(selector: &str, entry: &CatalogueEntry) -> bool {
    selects(selector, entry.id, entry.group)
        || selector
            .strip_prefix(entry.id)
            .is_some_and(|rest| rest.starts_with('.'))
}

/// Whether a selector (`--only`, `checks.disable`, `gate.checks`) names
/// this check: its exact ID, its family (`disk` for `disk.var`) or its group.
pub fn selects(selector: &str, id: &str, group: Group) -> bool {
    selector::selects(selector, id, group.as_str())
}

/// The names a selector may use, for messages: every ID, every family's
/// member pattern (`disk.<name>`), every group.
pub fn known_selectors() -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for e in catalogue() {
        names.push(e.id.to_string());
        if let Some(members) = e.members {
            names.push(format!("{}.{members}", e.id));
        }
    }
    for g in Group::ALL {
        if catalogue().any(|e| e.group == g) {
            names.push(g.as_str().into());
        }
    }
    names
}

/// Whether a selector names any check: an ID, a family or a member of one
/// (`endpoint.ssm`, `disk.boot`: members exist only on a host, so any
/// well-formed name after a family's dot is taken), a prefix of IDs
/// (`pkg` for `pkg.lock` and `pkg.state`), or a group.
pub fn is_known_selector(name: &str) -> bool {
    if !selector::well_formed(name) {
        return false;
    }
    catalogue().any(|e| {
        selects(name, e.id, e.group)
            || e.members.is_some()
                && name
                    .strip_prefix(e.id)
                    .and_then(|rest| rest.strip_prefix('.'))
                    .is_some_and(|member| !member.is_empty())
    })
}

/// A check whose work is file and syscall I/O: it runs on the blocking pool.
pub fn blocking(
    ctx: &Context,
    entry: &CatalogueEntry,
    id: impl Into<String>,
    run: impl FnOnce() -> Outcome + Send + 'static,
) -> Check {
    Check {
        info: info(ctx, entry, id),
        work: Work::Blocking(Box::new(run)),
    }
}

/// A check whose work is a bus or network question: it runs as a task,
/// with its own handle on the run's context.
pub fn task<F: Future<Output = Outcome> + Send + 'static>(
    ctx: &Context,
    entry: &CatalogueEntry,
    id: impl Into<String>,
    run: impl FnOnce(Context) -> F,
) -> Check {
    Check {
        info: info(ctx, entry, id),
        work: Work::Async(Box::pin(run(ctx.clone()))),
    }
}

fn info(ctx: &Context, entry: &CatalogueEntry, id: impl Into<String>) -> CheckInfo {
    CheckInfo {
        id: id.into(),
        group: entry.group,
        title: entry.title.to_string(),
        severity: entry.severity,
        timeout: ctx.settings.checks.timeout,
        timeout_hint: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_name_ids_families_members_and_groups() {
        assert!(is_known_selector("disk.boot"));
        assert!(is_known_selector("endpoint.ssm"));
        assert!(is_known_selector("endpoint"));
        assert!(is_known_selector("host"));
        assert!(is_known_selector("pkg"));
        assert!(is_known_selector("agent.service"));
        assert!(!is_known_selector("agent.nonsense"));
        assert!(!is_known_selector("disk."));
        assert!(!is_known_selector("pkg.lock.x"));
        assert!(known_selectors().contains(&"endpoint.<service>".to_string()));
    }

    #[test]
    fn a_selector_reaches_an_entry_by_id_family_member_or_group() {
        assert!(reaches("endpoint.ssm", &endpoint::ENTRY));
        assert!(reaches("endpoint", &endpoint::ENTRY));
        assert!(reaches("network", &endpoint::ENTRY));
        assert!(reaches("pkg", &pkg_lock::ENTRY));
        assert!(!reaches("pkg.lock", &pkg_state::ENTRY));
        assert!(!reaches("disk.boot", &endpoint::ENTRY));
    }

    #[test]
    fn every_id_is_registered_once() {
        let mut ids: Vec<&str> = catalogue().map(|e| e.id).collect();
        let count = ids.len();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), count);
    }
}
