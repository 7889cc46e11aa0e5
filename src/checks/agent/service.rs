//! `agent.service`: the agent's unit is loaded, active, not flapping, and
//! its main process runs as root.

use super::{ctl_name, install_command};
use crate::checks::common::bus_outcome;
use crate::checks::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::config::units::format_age;
use crate::host::agent::{
    binary, AgentUnits, CLASSIC_BINARY, CLASSIC_UNIT, SNAP_BINARY, SNAP_UNIT,
};
use crate::host::mode::Mode;
use crate::host::os_release::OsRelease;
use crate::host::process;
use crate::host::systemd::BusError;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "agent.service",
    group: Group::Agent,
    title: "amazon-ssm-agent service",
    severity: Severity::Critical,
    members: None,
    doc: Doc {
        looks_at: "systemd over D-Bus (`GetUnit`/`LoadUnit`, unit and service properties): the classic `amazon-ssm-agent.service` and Ubuntu's snap unit `snap.amazon-ssm-agent.amazon-ssm-agent.service` — which one runs the agent, `LoadState`/`ActiveState`/`SubState`, `NRestarts`, `ActiveEnterTimestamp`, and the main process's user (`/proc/<MainPID>/status`)",
        warns: "restarted automatically and came up again within `agent.flapping_window` (1 h): flapping; both units installed",
        fails: "not installed (the remedy is the install command for this distribution) — on a managed node (`ec2`, `hybrid`) also when systemd cannot be asked but no agent binary exists —, masked, `failed`, `activating` (`auto-restart`: a crash loop), `inactive`, main process not root",
        fix: "`journalctl -u amazon-ssm-agent -n 50`, `systemctl enable --now`, `systemctl unmask`",
        cannot_see: "no system bus (a container) / a bus where systemd does not answer / the agent process's user (`/proc/<pid>/status` hidden by `hidepid`)",
        reports: "`skip` (a managed node with no agent binary: `fail`) / `error` / `warn` naming the PID and `ps -o user= -p <pid>`",
    },
};

pub fn plan(ctx: &Context) -> crate::checks::Check {
    crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        match ctx.agent_units().await {
            Err(e) => {
                // Without systemd to ask, a managed node still needs the agent's binary.
                let root = ctx.root.clone();
                let (binary, os) = tokio::task::spawn_blocking(move || {
                    let os = OsRelease::read(&root).ok().flatten().map(|(os, _)| os);
                    (binary(&root, None).is_some(), os)
                })
                .await
                .unwrap_or((true, None));
                judge_without_bus(e, ctx.host.mode, binary, os.as_ref())
            }
            Ok(units) => {
                let uid = units
                    .in_use()
                    .filter(|u| u.main_pid > 0)
                    .and_then(|u| process::effective_uid(&ctx.root, u.main_pid));
                let os = OsRelease::read(&ctx.root).ok().flatten().map(|(os, _)| os);
                judge(
                    units,
                    uid,
                    ctx.now,
                    ctx.settings.agent.flapping_window,
                    os.as_ref(),
                )
            }
        }
    })
}

/// The verdict when systemd cannot be asked: on a managed node (`ec2`,
/// `hybrid`) with no agent binary at all, Patch Manager cannot reach the
/// node, whatever the bus says.
pub fn judge_without_bus(
    bus: &BusError,
    mode: Mode,
    binary_found: bool,
    os: Option<&OsRelease>,
) -> Outcome {
    if mode != Mode::Local && !binary_found {
        return Outcome::fail(
            format!("this is a managed node ({} mode) but amazon-ssm-agent is not installed: neither {CLASSIC_BINARY} nor {SNAP_BINARY} exists, so Patch Manager cannot reach it", mode.as_str()),
            format!("Install the agent: `{}`.", install_command(os)),
        );
    }
    bus_outcome(bus)
}

fn since(usec: u64, now: SystemTime) -> Option<Duration> {
    if usec == 0 {
        return None;
    }
    now.duration_since(UNIX_EPOCH + Duration::from_micros(usec))
        .ok()
}

pub fn judge(
    units: &AgentUnits,
    main_uid: Option<u32>,
    now: SystemTime,
    flapping_window: Duration,
    os: Option<&OsRelease>,
) -> Outcome {
    let Some(unit) = units.in_use() else {
        return Outcome::fail(
            format!("amazon-ssm-agent is not installed: systemd knows neither {CLASSIC_UNIT} nor {SNAP_UNIT}"),
            format!("Install the agent: `{}`.", install_command(os)),
        );
    };
    let name = &unit.name;
    let ctl = ctl_name(name);
    let logs = format!("See why with `sudo journalctl -u {ctl} -n 50`");
    let restarts = unit.n_restarts.unwrap_or(0);
    let mut outcome = match (unit.load_state.as_str(), unit.active_state.as_str()) {
        ("masked", _) => Outcome::fail(
            format!("{name} is masked, so it cannot start"),
            format!("Unmask and start it: `sudo systemctl unmask {ctl} && sudo systemctl enable --now {ctl}`."),
        ),
        ("loaded", _) => match (unit.active_state.as_str(), unit.sub_state.as_str()) {
            ("failed", sub) => Outcome::fail(
                format!("{name} has failed (state failed/{sub})"),
                format!("{logs}, fix that, then `sudo systemctl restart {ctl}`."),
            ),
            ("activating", "auto-restart") => Outcome::fail(
                format!("{name} keeps crashing: systemd is waiting to restart it after {restarts} restarts"),
                format!("{logs}; the agent usually cannot reach SSM or read its registration."),
            ),
            ("activating", sub) => Outcome::fail(
                format!("{name} is still starting (activating/{sub}) and not yet serving"),
                format!("{logs}; if it stays there, `sudo systemctl restart {ctl}`."),
            ),
            ("inactive", _) => Outcome::fail(
                format!("{name} is not running (inactive)"),
                format!("Start it, and at every boot: `sudo systemctl enable --now {ctl}`."),
            ),
            ("deactivating", _) => Outcome::fail(
                format!("{name} is stopping"),
                format!("Start it again once it has stopped: `sudo systemctl start {ctl}`."),
            ),
            (_, _) => running(unit, main_uid, now, flapping_window),
        },
        (load, _) => Outcome::fail(
            format!("systemd could not load {name} (LoadState {load})"),
            format!("`sudo systemctl status {ctl}` says why; fix the unit file and run `sudo systemctl daemon-reload`."),
        ),
    };
    if units.installed().len() == 2 {
        outcome = both_installed(outcome);
    }
    outcome
        .detail("unit", name)
        .detail("load_state", &unit.load_state)
        .detail("active_state", &unit.active_state)
        .detail("sub_state", &unit.sub_state)
        .detail("main_pid", unit.main_pid)
        .detail("restarts", restarts)
}

/// An active unit: flapping, not root, its user unknown, or healthy.
fn running(
    unit: &crate::host::systemd::UnitInfo,
    main_uid: Option<u32>,
    now: SystemTime,
    flapping_window: Duration,
) -> Outcome {
    let (name, ctl) = (&unit.name, ctl_name(&unit.name));
    let logs = format!("See why with `sudo journalctl -u {ctl} -n 50`");
    let restarts = unit.n_restarts.unwrap_or(0);
    let sub = unit.sub_state.as_str();
    let up_for = since(unit.active_enter_usec, now);
    let up_text = up_for
        .map(|d| format!(" for {}", format_age(d)))
        .unwrap_or_default();
    if restarts > 0 && up_for.is_some_and(|d| d < flapping_window) {
        Outcome::warn(
            format!("{name} is running but flapping: {restarts} automatic restarts, the last one {} ago", format_age(up_for.unwrap_or_default())),
            format!("{logs}; an agent that restarts during the window drops the patch command."),
        )
    } else if let Some(uid) = main_uid.filter(|u| *u != 0) {
        Outcome::fail(
            format!("{name} runs as uid {uid}, not root, so it cannot install packages (pid {})", unit.main_pid),
            format!("Remove the `User=` setting from its unit (`systemctl cat {ctl}` shows where), then `sudo systemctl daemon-reload && sudo systemctl restart {ctl}`."),
        )
    } else if main_uid.is_none() && unit.main_pid > 0 {
        // Issue #17: not knowing the user is not "runs as root".
        let pid = unit.main_pid;
        Outcome::warn(
            format!("{name} is active ({sub}){up_text}, but which user its process runs as could not be read: /proc/{pid}/status is hidden (`hidepid`) or gone, so it may not be root"),
            format!("Run the check as root (`sudo ssm-preflight check --only agent.service`), or see the user with `ps -o user= -p {pid}`: the agent must run as root to install packages."),
        )
    } else {
        let who = match main_uid {
            Some(0) => format!(", pid {} as root", unit.main_pid),
            _ if unit.main_pid > 0 => format!(", pid {}", unit.main_pid),
            _ => String::new(),
        };
        Outcome::pass(format!("{name} is active ({sub}){up_text}{who}"))
    }
}

/// Both agents installed: said beside whatever the unit in use shows.
fn both_installed(outcome: Outcome) -> Outcome {
    let both = format!(
        "both {CLASSIC_UNIT} and {SNAP_UNIT} are installed and would fight over one registration"
    );
    let fix = "Keep one agent: on Ubuntu the snap (`sudo apt-get purge amazon-ssm-agent`), elsewhere the package (`sudo snap remove amazon-ssm-agent`).";
    if outcome.status == crate::checks::Status::Pass {
        Outcome::warn(format!("{}; {both}", outcome.summary), fix)
    } else {
        let remedy = format!("{} {fix}", outcome.remedy.unwrap_or_default());
        Outcome {
            summary: format!("{}; {both}", outcome.summary),
            remedy: Some(remedy),
            ..outcome
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::host::systemd::UnitInfo;

    const NOW_S: u64 = 1_800_000_000;

    fn now() -> SystemTime {
        UNIX_EPOCH + Duration::from_secs(NOW_S)
    }

    fn unit(
        name: &str,
        load: &str,
        active: &str,
        sub: &str,
        up_secs_ago: u64,
        restarts: u32,
    ) -> UnitInfo {
        UnitInfo {
            name: name.into(),
            load_state: load.into(),
            active_state: active.into(),
            sub_state: sub.into(),
            active_enter_usec: (NOW_S - up_secs_ago) * 1_000_000,
            main_pid: 812,
            n_restarts: Some(restarts),
            next_elapse_usec: None,
        }
    }

    fn missing(name: &str) -> UnitInfo {
        UnitInfo {
            name: name.into(),
            load_state: "not-found".into(),
            active_state: "inactive".into(),
            sub_state: "dead".into(),
            ..Default::default()
        }
    }

    fn classic(u: UnitInfo) -> AgentUnits {
        AgentUnits {
            classic: u,
            snap: missing(SNAP_UNIT),
        }
    }

    const HOUR: Duration = Duration::from_secs(3600);

    #[test]
    fn active_as_root_passes() {
        let o = judge(
            &classic(unit(CLASSIC_UNIT, "loaded", "active", "running", 7200, 0)),
            Some(0),
            now(),
            HOUR,
            None,
        );
        assert_eq!(o.status, Status::Pass);
        assert_eq!(
            o.summary,
            "amazon-ssm-agent.service is active (running) for 2h 0m, pid 812 as root"
        );
    }

    #[test]
    fn states_that_fail() {
        for (active, sub, text) in [
            ("failed", "failed", "has failed"),
            ("activating", "auto-restart", "keeps crashing"),
            ("inactive", "dead", "is not running"),
        ] {
            let o = judge(
                &classic(unit(CLASSIC_UNIT, "loaded", active, sub, 10, 5)),
                Some(0),
                now(),
                HOUR,
                None,
            );
            assert_eq!(o.status, Status::Fail, "{active}/{sub}");
            assert!(o.summary.contains(text), "{}", o.summary);
            assert!(o.remedy.unwrap().contains("amazon-ssm-agent"), "{active}");
        }
        let masked = judge(
            &classic(unit(CLASSIC_UNIT, "masked", "inactive", "dead", 0, 0)),
            None,
            now(),
            HOUR,
            None,
        );
        assert!(masked
            .remedy
            .unwrap()
            .contains("systemctl unmask amazon-ssm-agent"));
    }

    #[test]
    fn restarts_with_a_recent_start_are_flapping() {
        let o = judge(
            &classic(unit(CLASSIC_UNIT, "loaded", "active", "running", 120, 4)),
            Some(0),
            now(),
            HOUR,
            None,
        );
        o.assert_says(
            Status::Warn,
            "flapping: 4 automatic restarts, the last one 2m 0s ago",
        );
        // Restarts long ago are history, not flapping.
        let old = judge(
            &classic(unit(CLASSIC_UNIT, "loaded", "active", "running", 86_400, 4)),
            Some(0),
            now(),
            HOUR,
            None,
        );
        assert_eq!(old.status, Status::Pass);
    }

    #[test]
    fn not_running_as_root_fails() {
        let o = judge(
            &classic(unit(CLASSIC_UNIT, "loaded", "active", "running", 7200, 0)),
            Some(1000),
            now(),
            HOUR,
            None,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("runs as uid 1000, not root"));
    }

    #[test]
    fn an_unknown_user_is_not_taken_for_root() {
        // hidepid hides /proc/<pid>/status: the check cannot say "as root".
        let o = judge(
            &classic(unit(CLASSIC_UNIT, "loaded", "active", "running", 7200, 0)),
            None,
            now(),
            HOUR,
            None,
        );
        o.assert_says(Status::Warn, "/proc/812/status is hidden");
        assert!(o
            .remedy
            .unwrap()
            .contains("sudo ssm-preflight check --only agent.service"));
    }

    #[test]
    fn both_installed_warns_and_names_the_snap() {
        let units = AgentUnits {
            classic: unit(CLASSIC_UNIT, "loaded", "inactive", "dead", 0, 0),
            snap: unit(SNAP_UNIT, "loaded", "active", "running", 7200, 0),
        };
        let o = judge(&units, Some(0), now(), HOUR, None);
        o.assert_begins(
            Status::Warn,
            "snap.amazon-ssm-agent.amazon-ssm-agent.service is active",
        );
        assert!(o
            .summary
            .contains("both amazon-ssm-agent.service and snap."));
    }

    #[test]
    fn not_installed_fails_with_the_install_command() {
        let units = AgentUnits {
            classic: missing(CLASSIC_UNIT),
            snap: missing(SNAP_UNIT),
        };
        let os = OsRelease {
            id: "ubuntu".into(),
            version_id: "22.04".into(),
            ..Default::default()
        };
        let o = judge(&units, None, now(), HOUR, Some(&os));
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            o.remedy.as_deref(),
            Some("Install the agent: `sudo snap install amazon-ssm-agent --classic`.")
        );
    }

    #[test]
    fn a_managed_node_without_the_agent_fails_even_without_a_bus() {
        let no_bus = BusError::NoBus("no socket".into());
        let debian = OsRelease {
            id: "debian".into(),
            version_id: "12".into(),
            ..Default::default()
        };
        let o = judge_without_bus(&no_bus, Mode::Ec2, false, Some(&debian));
        o.assert_says(Status::Fail, "amazon-ssm-agent is not installed");
        assert!(o.remedy.unwrap().contains("sudo dpkg -i"));
        assert_eq!(
            judge_without_bus(&no_bus, Mode::Hybrid, true, None).status,
            Status::Skip,
            "the binary is there: only systemd cannot be asked"
        );
        assert_eq!(
            judge_without_bus(&no_bus, Mode::Local, false, None).status,
            Status::Skip,
            "an unmanaged host need not have the agent"
        );
    }
}
