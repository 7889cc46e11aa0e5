//! `ssm.ping`: whether SSM itself sees the node online, as Fleet Manager's
//! "Ping status" shows it (`DescribeInstanceInformation`): an agent unit
//! that is "active" can still be offline to SSM (its registration, its
//! credentials, its route), and then no window reaches it.

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::patching::{self, NodeInfo};
use crate::config::units::format_age;
use crate::host::os_release::OsRelease;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "ssm.ping",
    group: Group::Cloud,
    title: "Online to SSM",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "`ssm:DescribeInstanceInformation` for this node: `PingStatus`, `LastPingDateTime`, `AgentVersion`, `IsLatestVersion`, the platform as SSM has it",
        warns: "Online but the last ping is over 10 minutes old; SSM's platform version differs from os-release",
        fails: "`ConnectionLost` or `Inactive`, or SSM does not know the node (not managed)",
        fix: "restart the agent; its log says why it lost SSM; register the node",
        cannot_see: "local mode, no identity or no credentials / the optional action refused (AccessDenied) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add / `error`",
    },
};

/// The agent pings every 5 minutes; twice that without one is worth a look.
pub const PING_STALE: Duration = Duration::from_secs(10 * 60);

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let os = OsRelease::read(&ctx.root).ok().flatten().map(|(os, _)| os);
        match patching::node(&ssm, &id.instance_id).await {
            Ok(info) => judge(info.as_ref(), &id.instance_id, os.as_ref(), ctx.now),
            Err(e) => call_outcome(&e),
        }
    })
}

pub fn judge(
    info: Option<&NodeInfo>,
    instance_id: &str,
    os: Option<&OsRelease>,
    now: SystemTime,
) -> Outcome {
    let Some(info) = info else {
        return Outcome::fail(
            format!("SSM does not know {instance_id}: it is not a managed node, so Patch Manager cannot reach it"),
            "Check that the agent registered (`sudo journalctl -u amazon-ssm-agent | grep -i regist`), that the instance profile carries AmazonSSMManagedInstanceCore (or Default Host Management is on), and that the node appears under Systems Manager → Fleet Manager.",
        );
    };
    let ago = info.last_ping.and_then(|t| now.duration_since(t).ok());
    let ago_text = ago
        .map(|d| format!(", last ping {} ago", format_age(d)))
        .unwrap_or_default();
    let mut outcome = match info.ping.as_str() {
        "Online" => match ago {
            Some(d) if d > PING_STALE => Outcome::warn(
                format!("SSM shows {instance_id} Online, but its last ping was {} ago (the agent pings every 5 minutes)", format_age(d)),
                "See whether the agent is stuck: `sudo journalctl -u amazon-ssm-agent -n 50`; `sudo systemctl restart amazon-ssm-agent` if it is.",
            ),
            _ => Outcome::pass(format!(
                "SSM shows {instance_id} Online{ago_text}, agent {}",
                info.agent_version.as_deref().unwrap_or("of unknown version")
            )),
        },
        status @ ("ConnectionLost" | "Inactive") => Outcome::fail(
            format!("SSM shows {instance_id} as {status}{ago_text}: a window's patch command would not reach it"),
            "Restart the agent (`sudo systemctl restart amazon-ssm-agent`) and see why it lost SSM: `sudo tail -50 /var/log/amazon/ssm/amazon-ssm-agent.log` (endpoint.ssm and credentials.valid check its route and credentials).",
        ),
        other => Outcome::warn(
            format!("SSM shows {instance_id} with the ping status {other:?}{ago_text}"),
            "Look at the node in Systems Manager → Fleet Manager.",
        ),
    };
    if outcome.status == super::Status::Pass {
        if let (Some(os), Some(version)) = (os, info.platform_version.as_deref()) {
            let ours = os.version_id.as_str();
            let same = version == ours
                || version.starts_with(&format!("{ours}."))
                || ours.starts_with(&format!("{version}."));
            if !same {
                outcome = Outcome::warn(
                    format!(
                        "{}; but SSM has the platform as {} {version} while os-release says {}: its inventory is stale, and Patch Manager picks the baseline by what SSM has",
                        outcome.summary,
                        info.platform_name.as_deref().unwrap_or("?"),
                        os.pretty_name
                    ),
                    "Restart the agent so it reports the platform again: `sudo systemctl restart amazon-ssm-agent`.",
                );
            }
        }
    }
    let mut outcome = outcome.detail("ping_status", &info.ping);
    if let Some(v) = &info.agent_version {
        outcome = outcome.detail("agent_version", v);
    }
    if let Some(latest) = info.is_latest_version {
        outcome = outcome.detail("is_latest_version", latest);
    }
    if let Some(t) = info.last_ping {
        outcome = outcome.detail("last_ping", humantime::format_rfc3339_seconds(t));
    }
    if let (Some(n), Some(v)) = (&info.platform_name, &info.platform_version) {
        outcome = outcome.detail("platform", format!("{n} {v}"));
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    const NOW: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(NOW)
    }

    fn info(ping: &str, secs_ago: u64, version: &str) -> NodeInfo {
        NodeInfo {
            ping: ping.into(),
            last_ping: Some(now() - Duration::from_secs(secs_ago)),
            agent_version: Some("3.3.40.0".into()),
            is_latest_version: Some(true),
            platform_name: Some("Debian GNU/Linux".into()),
            platform_version: Some(version.into()),
        }
    }

    fn debian12() -> OsRelease {
        OsRelease {
            id: "debian".into(),
            version_id: "12".into(),
            pretty_name: "Debian GNU/Linux 12 (bookworm)".into(),
            ..Default::default()
        }
    }

    /// The verdict for i-0test on Debian 12, as SSM describes it.
    fn on_debian12(ping: &str, ago_s: u64, version: &str) -> Outcome {
        judge(
            Some(&info(ping, ago_s, version)),
            "i-0test",
            Some(&debian12()),
            now(),
        )
    }

    #[test]
    fn online_recently_passes() {
        let o = on_debian12("Online", 60, "12");
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert_eq!(
            o.summary,
            "SSM shows i-0test Online, last ping 1m 0s ago, agent 3.3.40.0"
        );
    }

    #[test]
    fn lost_inactive_and_unknown_fail() {
        for status in ["ConnectionLost", "Inactive"] {
            let o = judge(Some(&info(status, 3600, "12")), "i-0test", None, now());
            assert_eq!(o.status, Status::Fail, "{status}");
            assert!(o.summary.contains(status));
        }
        let o = judge(None, "mi-0123", None, now());
        o.assert_says(Status::Fail, "SSM does not know mi-0123");
    }

    #[test]
    fn a_stale_ping_or_another_platform_warns() {
        let o = on_debian12("Online", 1200, "12");
        o.assert_says(Status::Warn, "last ping was 20m 0s ago");
        let o = on_debian12("Online", 60, "11");
        o.assert_says(
            Status::Warn,
            "SSM has the platform as Debian GNU/Linux 11 while os-release says Debian GNU/Linux 12",
        );
    }
}
