//! The result of one run, as `check --json` prints it (the JSON contract in
//! docs/reporting.md) and as the table prints it for people.

use crate::checks::{CheckResult, Status};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    Pass,
    Warn,
    Fail,
}

impl Verdict {
    /// Any fail fails; any warn — or a check that could not look (`error`) —
    /// warns; pass and skip pass.
    pub fn of(checks: &[CheckResult]) -> Verdict {
        if checks.iter().any(|c| c.status == Status::Fail) {
            Verdict::Fail
        } else if checks
            .iter()
            .any(|c| matches!(c.status, Status::Warn | Status::Error))
        {
            Verdict::Warn
        } else {
            Verdict::Pass
        }
    }

    /// The monitoring-plugins convention: 0 ok, 1 warning, 2 critical.
    pub fn exit_code(self) -> u8 {
        match self {
            Verdict::Pass => 0,
            Verdict::Warn => 1,
            Verdict::Fail => 2,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Pass => "pass",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSummary {
    pub mode: crate::host::mode::Mode,
    pub instance_id: Option<String>,
    pub region: Option<String>,
    pub patch_group: Option<String>,
    /// The distribution's PRETTY_NAME.
    pub os: Option<String>,
}

#[cfg(test)]
impl HostSummary {
    /// A host in local mode that knows nothing more: the tests' reports.
    pub fn local() -> HostSummary {
        HostSummary {
            mode: crate::host::mode::Mode::Local,
            instance_id: None,
            region: None,
            patch_group: None,
            os: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    pub version: String,
    pub host: HostSummary,
    /// RFC 3339, UTC.
    pub started_at: String,
    pub duration_ms: u64,
    pub verdict: Verdict,
    pub checks: Vec<CheckResult>,
    /// The next maintenance window's start, RFC 3339 UTC, when known.
    pub next_window: Option<String>,
}

impl Report {
    /// What the next run may take as a head start (`facts::Remembered`):
    /// the instance profile role found attached, with credentials
    /// (`credentials.role`'s `role`), and the maintenance windows found
    /// targeting the node (`patch.sources`' `windows`).
    pub fn remembered(&self) -> crate::facts::Remembered {
        let detail = |id: &str, key: &str| {
            self.checks
                .iter()
                .find(|c| c.id == id)
                .and_then(|c| c.details.get(key))
        };
        use crate::checks::{credentials_role, patch_sources};
        crate::facts::Remembered {
            role: detail(credentials_role::ENTRY.id, credentials_role::ROLE_DETAIL).cloned(),
            windows: detail(patch_sources::ENTRY.id, patch_sources::WINDOWS_DETAIL)
                .map(|w| w.split_whitespace().map(str::to_string).collect())
                .unwrap_or_default(),
        }
    }

    pub fn new(
        host: HostSummary,
        started: std::time::SystemTime,
        duration: std::time::Duration,
        checks: Vec<CheckResult>,
    ) -> Report {
        Report {
            version: env!("CARGO_PKG_VERSION").to_string(),
            host,
            started_at: humantime::format_rfc3339_seconds(started).to_string(),
            duration_ms: duration.as_millis() as u64,
            verdict: Verdict::of(&checks),
            checks,
            next_window: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::{CheckResult, Group, Status};

    #[test]
    fn the_next_run_remembers_the_role_and_the_windows_found() {
        let mut role = CheckResult::sample("credentials.role", Group::Access, Status::Pass);
        role.details.insert("role".into(), "SSMCore".into());
        let mut sources = CheckResult::sample("patch.sources", Group::Cloud, Status::Pass);
        sources.details.insert(
            "windows".into(),
            "mw-0123456789abcdef0 mw-0123456789abcdef0".into(),
        );
        let report = Report::new(
            HostSummary::local(),
            std::time::SystemTime::UNIX_EPOCH,
            std::time::Duration::ZERO,
            vec![role, sources],
        );
        let earlier = report.remembered();
        assert_eq!(earlier.role.as_deref(), Some("SSMCore"));
        assert_eq!(earlier.window_ids(), ["mw-0123456789abcdef0"]);

        // A run that found neither remembers nothing.
        let nothing = Report::new(
            HostSummary::local(),
            std::time::SystemTime::UNIX_EPOCH,
            std::time::Duration::ZERO,
            vec![],
        );
        assert_eq!(nothing.remembered(), crate::facts::Remembered::default());
    }
}
