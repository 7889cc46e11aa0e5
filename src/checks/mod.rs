//! The checks. Each family lives in its own file and has two halves: a
//! `plan` that turns the host and settings into runnable checks, and pure
//! `judge` functions from gathered facts to an `Outcome`, tested without a
//! machine behind them.
//!
//! To add a check: give it a stable ID in `CATALOGUE` (the ID is also the
//! SSM compliance item ID and the `--only` name), write its file with a
//! `plan`, and call that `plan` from `plan_all`.

pub mod agent;
pub mod aws_facts;
pub mod clock;
pub mod disk;
pub mod endpoint;
pub mod identity;
pub mod os_supported;
pub mod patch_group;
pub mod pkg_lock;
pub mod pkg_state;
pub mod reboot;
pub mod repo;

use crate::config::Settings;
use crate::host::systemd::SystemBus;
use crate::host::{mode::Detected, Root};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

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
}

impl Group {
    pub fn as_str(self) -> &'static str {
        match self {
            Group::Agent => "agent",
            Group::Access => "access",
            Group::Network => "network",
            Group::Host => "host",
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

/// Everything a check may look at. Cheap to clone into a check's task.
#[derive(Clone)]
pub struct Context {
    pub root: Root,
    pub settings: Arc<Settings>,
    pub host: Detected,
    /// The run's clock: every "how long ago" is measured from here.
    pub now: SystemTime,
    pub shared: Arc<Shared>,
}

/// Facts several checks need, gathered once per run on first use.
pub struct Shared {
    pub bus: SystemBus,
    agent: tokio::sync::OnceCell<agent::AgentLookup>,
    identity: tokio::sync::OnceCell<
        Result<crate::aws::identity::Identity, crate::aws::identity::IdentityError>,
    >,
    tls: std::sync::OnceLock<Result<Arc<rustls::ClientConfig>, String>>,
    #[allow(clippy::type_complexity)]
    probes: std::sync::Mutex<
        std::collections::HashMap<
            String,
            Arc<tokio::sync::OnceCell<Result<crate::aws::endpoints::Probe, Outcome>>>,
        >,
    >,
    /// The Patch Group `patchgroup.tag` settled on, for the report's host.
    pub patch_group: std::sync::OnceLock<String>,
    /// Upcoming windows known besides the config's (the daemon's SSM schedule).
    pub windows: std::sync::Mutex<Vec<crate::schedule::windows::Window>>,
}

impl Context {
    /// Upcoming windows: the config's and any the caller learned from SSM.
    pub fn upcoming_windows(&self) -> Vec<crate::schedule::windows::Window> {
        let now = jiff::Timestamp::try_from(self.now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
        let mut all = crate::schedule::windows::from_config(&self.settings, now, 2);
        all.extend(self.shared.windows.lock().unwrap().iter().cloned());
        crate::schedule::windows::merge(all)
    }
}

impl Shared {
    /// The identity, if a check looked it up during this run.
    pub fn identity(&self) -> Option<&crate::aws::identity::Identity> {
        self.identity.get().and_then(|r| r.as_ref().ok())
    }
}

impl Context {
    /// `bus_address`: `None` for the system bus (`DBUS_SYSTEM_BUS_ADDRESS`).
    pub fn new(
        root: Root,
        settings: Arc<Settings>,
        host: Detected,
        bus_address: Option<String>,
        now: SystemTime,
    ) -> Context {
        Context {
            root,
            settings,
            host,
            now,
            shared: Arc::new(Shared {
                bus: SystemBus::new(bus_address),
                agent: tokio::sync::OnceCell::new(),
                identity: tokio::sync::OnceCell::new(),
                tls: std::sync::OnceLock::new(),
                probes: Default::default(),
                patch_group: std::sync::OnceLock::new(),
                windows: Default::default(),
            }),
        }
    }

    fn info(&self, entry: &CatalogueEntry, id: impl Into<String>) -> CheckInfo {
        CheckInfo {
            id: id.into(),
            group: entry.group,
            title: entry.title.to_string(),
            severity: entry.severity,
            timeout: self.settings.check_timeout,
        }
    }

    fn check(
        &self,
        entry: &CatalogueEntry,
        id: impl Into<String>,
        run: impl FnOnce() -> Outcome + Send + 'static,
    ) -> Check {
        Check {
            info: self.info(entry, id),
            work: Work::Blocking(Box::new(run)),
        }
    }

    fn check_async(
        &self,
        entry: &CatalogueEntry,
        id: impl Into<String>,
        run: impl Future<Output = Outcome> + Send + 'static,
    ) -> Check {
        Check {
            info: self.info(entry, id),
            work: Work::Async(Box::pin(run)),
        }
    }
}

/// A check ID (or, for `disk`, the family of `disk.<name>` IDs).
pub struct CatalogueEntry {
    pub id: &'static str,
    pub group: Group,
    pub title: &'static str,
    pub severity: Severity,
}

pub const CATALOGUE: &[CatalogueEntry] = &[
    agent::service::ENTRY,
    agent::version::ENTRY,
    agent::log::ENTRY,
    agent::proxy::ENTRY,
    identity::AGENT_IDENTITY,
    identity::CREDENTIALS_ROLE,
    clock::ENTRY,
    endpoint::ENTRY,
    repo::ENTRY,
    disk::ENTRY,
    pkg_lock::ENTRY,
    pkg_state::ENTRY,
    reboot::ENTRY,
    os_supported::ENTRY,
    patch_group::ENTRY,
];

/// Every check this host can run, in catalogue order.
pub fn plan_all(ctx: &Context) -> Vec<Check> {
    let mut checks = vec![
        agent::service::plan(ctx),
        agent::version::plan(ctx),
        agent::log::plan(ctx),
        agent::proxy::plan(ctx),
        identity::plan_identity(ctx),
        identity::plan_role(ctx),
        clock::plan(ctx),
    ];
    checks.extend(endpoint::plan(ctx));
    checks.push(repo::plan(ctx));
    checks.extend(disk::plan(ctx));
    checks.push(pkg_lock::plan(ctx));
    checks.push(pkg_state::plan(ctx));
    checks.push(reboot::plan(ctx));
    checks.push(os_supported::plan(ctx));
    checks.push(patch_group::plan(ctx));
    checks
}

/// Whether a selector (`--only`, `checks.disable`) names this check: its
/// exact ID, its family (`disk` for `disk.var`) or its group (`host`).
pub fn selects(selector: &str, id: &str, group: Group) -> bool {
    selector == id
        || selector == group.as_str()
        || id
            .strip_prefix(selector)
            .is_some_and(|rest| rest.starts_with('.'))
}

pub fn known_selectors() -> Vec<String> {
    let mut names: Vec<String> = CATALOGUE.iter().map(|e| e.id.to_string()).collect();
    names.push("disk.<name>".into());
    names.push("endpoint.<service>".into());
    for g in [Group::Agent, Group::Access, Group::Network, Group::Host] {
        if CATALOGUE.iter().any(|e| e.group == g) {
            names.push(g.as_str().into());
        }
    }
    names
}

pub fn is_known_selector(name: &str) -> bool {
    CATALOGUE.iter().any(|e| {
        selects(name, e.id, e.group)
            || name.strip_prefix("disk.").is_some_and(|n| !n.is_empty()) && e.id == "disk"
    }) || CATALOGUE.iter().any(|e| e.group.as_str() == name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_id_family_and_group() {
        assert!(selects("pkg.lock", "pkg.lock", Group::Host));
        assert!(selects("disk", "disk.var", Group::Host));
        assert!(selects("host", "disk.var", Group::Host));
        assert!(!selects("dis", "disk.var", Group::Host));
        assert!(!selects("pkg.lock", "pkg.state", Group::Host));
        assert!(is_known_selector("disk.boot"));
        assert!(is_known_selector("host"));
        assert!(is_known_selector("pkg"));
        assert!(!is_known_selector("agent.nonsense"));
        assert!(!is_known_selector("disk."));
    }
}
