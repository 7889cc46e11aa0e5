//! `patchgroup.baseline`: which patch baseline Patch Manager will use for
//! this node. Each patch group is registered to at most one baseline per
//! operating system; a group registered for Amazon Linux but not for this
//! Debian node silently gets the Debian default baseline instead
//! ("Compliance shows No Data": check that baselines are registered to the
//! patch group).

use super::common::call_outcome;
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::aws::patching::{self, Baseline};
use crate::host::os_release::OsRelease;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patchgroup.baseline",
    group: Group::Cloud,
    title: "Patch baseline for this node",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "the OS (os-release → Patch Manager's `OperatingSystem`), `ssm:DescribePatchGroups` for the node's group, `ssm:GetDefaultPatchBaseline` for the OS, `ssm:GetPatchBaseline` for the one that applies (name, auto-approval days, approved and rejected patches)",
        warns: "no single Patch Group; no baseline registered for the group; the group registered only for other operating systems — each names the default baseline the node gets instead; the baseline approves nothing (no approval rules, no approved patches); on Amazon Linux, RHEL, CentOS, Oracle Linux, Rocky and AlmaLinux, a baseline whose rules and approved list take security updates only (no `EnableNonSecurity`, no `ApprovedPatchesEnableNonSecurity`)",
        fails: "—",
        fix: "`aws ssm register-patch-baseline-for-patch-group`",
        cannot_see: "local mode, no identity or no credentials / the optional action refused (AccessDenied) / SSM does not answer",
        reports: "`skip` / `skip` naming the action to add / `error`",
    },
};

/// What SSM said about the group and this operating system.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub group: Option<String>,
    pub os: String,
    /// (operating system, baseline ID, name) registered for the group.
    pub registered: Vec<(String, String, String)>,
    /// The baseline that applies: the group's for this OS, else the default.
    pub applies: Baseline,
}

pub fn plan(ctx: &Context) -> super::Check {
    super::common::ssm_task(ctx, &ENTRY, |ctx, id, ssm| async move {
        let os = match OsRelease::read(&ctx.root).ok().flatten() {
            Some((os, _)) => os,
            None => return Outcome::skip("no os-release to tell the operating system (os.supported says why), so the baseline cannot be told"),
        };
        let Some(os_value) = os.patch_manager_os() else {
            return Outcome::skip(format!(
                "Patch Manager has no baseline for {} (os.supported says so)",
                os.pretty_name
            ));
        };
        let (group, registered) = registrations(&ctx, &id, &ssm).await;
        let registered = match registered {
            Ok(r) => r,
            Err(e) => return call_outcome(&e),
        };
        let chosen = match registered.iter().find(|(o, _, _)| o == os_value) {
            Some((_, id, _)) => id.clone(),
            None => match patching::default_baseline(&ssm, os_value).await {
                Ok(id) => id,
                Err(e) => return call_outcome(&e),
            },
        };
        let applies = match patching::baseline(&ssm, &chosen).await {
            Ok(b) => b,
            Err(e) => return call_outcome(&e),
        };
        judge(&Found {
            group,
            os: os_value.to_string(),
            registered,
            applies,
        })
    })
}

/// The node's Patch Group and the baselines registered for it. The group
/// named by the first tag source to name one (IMDS's, before the API's)
/// is asked about at once, while the other source is still out: when the
/// sources agree, as they do on a tagged node, that answer is the one
/// used, and the check waits one round trip fewer. A group they settle
/// on otherwise is asked about then.
async fn registrations(
    ctx: &Context,
    id: &crate::aws::identity::Identity,
    ssm: &aws_sdk_ssm::Client,
) -> (Option<String>, Result<Registered, patching::CallError>) {
    ahead_of_the_tags(
        ctx.patch_group_sources(id),
        ctx.patch_group(id),
        |group: String| async move { patching::group_baselines(ssm, &group).await },
    )
    .await
}

/// (operating system, baseline ID, name) registered for a group.
type Registered = Vec<(String, String, String)>;

/// `registrations` apart from SSM: `sources` are the tag sources as they
/// answer, `settled` the group they settle on, `ask` SSM's answer for a
/// group.
async fn ahead_of_the_tags<S, A, F, E>(
    sources: Vec<S>,
    settled: impl std::future::Future<Output = Option<String>>,
    ask: A,
) -> (Option<String>, Result<Registered, E>)
where
    S: std::future::Future<Output = Vec<(String, String)>>,
    A: Fn(String) -> F,
    F: std::future::Future<Output = Result<Registered, E>>,
{
    use futures_util::StreamExt;
    let mut sources: futures_util::stream::FuturesUnordered<S> = sources.into_iter().collect();
    let mut guess = None;
    while let Some(pairs) = sources.next().await {
        if !pairs.is_empty() {
            guess = crate::aws::tags::agreed(pairs.iter().map(|(_, v)| v.as_str()));
            break;
        }
    }
    let early = async {
        match &guess {
            Some(g) => Some(ask(g.clone()).await),
            None => None,
        }
    };
    let (early, group) = tokio::join!(early, settled);
    let registered = match (&group, early) {
        (Some(g), Some(answer)) if guess.as_ref() == Some(g) => answer,
        (Some(g), _) => ask(g.clone()).await,
        (None, _) => Ok(Vec::new()),
    };
    (group, registered)
}

fn describe(b: &Baseline) -> String {
    let days = match b.approve_after_days.as_slice() {
        [] => "no auto-approval rule".to_string(),
        [d] => format!("auto-approves after {d} days"),
        many => format!(
            "auto-approves after {} days",
            many.iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join("/")
        ),
    };
    format!(
        "{} ({}; {days}, {} approved and {} rejected patches listed)",
        b.name, b.id, b.approved, b.rejected
    )
}

/// The operating systems whose rules approve only updates with a security
/// notice unless a rule sets `EnableNonSecurity`.
const SECURITY_ONLY_BY_DEFAULT: &[&str] = &[
    "AMAZON_LINUX",
    "AMAZON_LINUX_2",
    "AMAZON_LINUX_2022",
    "AMAZON_LINUX_2023",
    "REDHAT_ENTERPRISE_LINUX",
    "CENTOS",
    "ORACLE_LINUX",
    "ROCKY_LINUX",
    "ALMA_LINUX",
];

/// What the baseline itself will approve, when it is not what a patch run
/// is for: (the sentence, its remedy).
fn approves(f: &Found) -> Option<(String, String)> {
    let b = &f.applies;
    if b.rules == 0 && b.approved == 0 {
        return Some((
            format!("the baseline {} ({}) approves nothing: it has no approval rules and no approved patches, so a patch run installs nothing", b.name, b.id),
            format!("Give the baseline an approval rule (`aws ssm update-patch-baseline --baseline-id {} --approval-rules …`) or approved patches, or register another baseline for the group.", b.id),
        ));
    }
    if b.rules > 0 && !b.non_security && SECURITY_ONLY_BY_DEFAULT.contains(&f.os.as_str()) {
        return Some((
            format!("the baseline {} ({}) approves security updates only on {}: no rule sets EnableNonSecurity and ApprovedPatchesEnableNonSecurity is off, so bug-fix and other non-security updates will never be installed", b.name, b.id, f.os),
            format!("If the nodes should get non-security updates too, set EnableNonSecurity on a rule (`aws ssm update-patch-baseline --baseline-id {} --approval-rules …`); if security-only is meant, this is the baseline doing what it says.", b.id),
        ));
    }
    None
}

pub fn judge(f: &Found) -> Outcome {
    let outcome = registration(f);
    let outcome = match approves(f) {
        None => outcome,
        Some((said, remedy)) => {
            let remedy = match &outcome.remedy {
                Some(r) => format!("{r} {remedy}"),
                None => remedy,
            };
            Outcome {
                status: super::Status::Warn,
                summary: format!("{said}; {}", outcome.summary),
                remedy: Some(remedy),
                details: outcome.details,
            }
        }
    };
    outcome
        .detail("operating_system", &f.os)
        .detail("baseline_id", &f.applies.id)
        .detail("baseline_name", &f.applies.name)
        .detail("approval_rules", f.applies.rules)
        .detail("non_security", f.applies.non_security)
        .detail(
            "registered",
            f.registered
                .iter()
                .map(|(os, id, _)| format!("{os}={id}"))
                .collect::<Vec<_>>()
                .join(" "),
        )
}

/// Whether the group is registered for this node's operating system.
fn registration(f: &Found) -> Outcome {
    match &f.group {
        None => Outcome::warn(
            format!("this node has no single Patch Group (patchgroup.tag says why), so it gets the default {} baseline: {}", f.os, describe(&f.applies)),
            "Tag the node with its Patch Group and register a baseline for that group and this operating system (Patch Manager → Patch baselines → the baseline → Actions → Modify patch groups).",
        ),
        Some(group) => {
            if f.registered.iter().any(|(os, _, _)| *os == f.os) {
                Outcome::pass(format!("the patch group {group} is registered for {} to {}", f.os, describe(&f.applies)))
            } else if f.registered.is_empty() {
                Outcome::warn(
                    format!("no baseline is registered for the patch group {group}, so this {} node gets the default baseline: {}", f.os, describe(&f.applies)),
                    format!("Register the group with a baseline for {}: `aws ssm register-patch-baseline-for-patch-group --baseline-id <baseline> --patch-group '{group}'` (or in the console: Patch Manager → Patch baselines → the baseline → Actions → Modify patch groups).", f.os),
                )
            } else {
                let others: Vec<&str> = f.registered.iter().map(|(os, _, _)| os.as_str()).collect();
                Outcome::warn(
                    format!(
                        "the patch group {group} is registered only for {}, not for {}: this node gets the default baseline {}",
                        others.join(", "),
                        f.os,
                        describe(&f.applies)
                    ),
                    format!("Register a {} baseline for the group too: `aws ssm register-patch-baseline-for-patch-group --baseline-id <baseline> --patch-group '{group}'`; each group takes one baseline per operating system.", f.os),
                )
            }
        }
    }
}

#[cfg(test)]
mod ahead_of_the_tags_tests {
    use super::ahead_of_the_tags;
    use futures_util::future::{BoxFuture, FutureExt, Shared};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    type Log = Arc<Mutex<Vec<String>>>;

    type Source = Shared<BoxFuture<'static, Vec<(String, String)>>>;

    /// A tag source that answers `pairs` after `ms`, saying so in `log`;
    /// it runs on its own and can be awaited more than once, as the run's
    /// tag sources (`facts::Detached`).
    fn source(log: &Log, name: &'static str, ms: u64, pairs: &[(&str, &str)]) -> Source {
        let (log, pairs): (Log, Vec<(String, String)>) = (
            log.clone(),
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        );
        let work = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            log.lock().unwrap().push(format!("{name} answered"));
            pairs
        });
        async move { work.await.unwrap() }.boxed().shared()
    }

    /// `ahead_of_the_tags` with the group the sources settle on once every
    /// one has answered, as `Context::patch_group` does.
    async fn run(
        log: &Log,
        sources: Vec<Source>,
        settled: Option<&str>,
    ) -> (Option<String>, Vec<(String, String, String)>) {
        let settled = settled.map(str::to_string);
        let all = sources.clone();
        let settle = async move {
            futures_util::future::join_all(all).await;
            settled
        };
        let ask = |group: String| {
            let log = log.clone();
            async move {
                log.lock().unwrap().push(format!("asked for {group}"));
                Ok::<_, ()>(vec![("DEBIAN".to_string(), format!("pb-{group}"), group)])
            }
        };
        let (group, registered) = ahead_of_the_tags(sources, settle, ask).await;
        (group, registered.unwrap())
    }

    #[tokio::test]
    async fn the_group_imds_names_is_asked_for_before_the_api_answers_and_kept() {
        let log = Log::default();
        let sources = vec![
            source(&log, "imds", 0, &[("PatchGroup", "web")]),
            source(
                &log,
                "api",
                200,
                &[("Patch Group", "web"), ("PatchGroup", "web")],
            ),
        ];
        let (group, registered) = run(&log, sources, Some("web")).await;
        assert_eq!(group.as_deref(), Some("web"));
        assert_eq!(registered[0].1, "pb-web");
        assert_eq!(
            *log.lock().unwrap(),
            ["imds answered", "asked for web", "api answered"],
            "asked once, before the API answered"
        );
    }

    #[tokio::test]
    async fn a_source_with_no_tag_is_passed_over_and_another_settled_group_asked_again() {
        let log = Log::default();
        let sources = vec![
            source(&log, "imds", 0, &[]),
            source(&log, "api", 50, &[("Patch Group", "web")]),
        ];
        // The sources settle on another group than the first one named.
        let (group, registered) = run(&log, sources, Some("db")).await;
        assert_eq!(group.as_deref(), Some("db"));
        assert_eq!(registered[0].1, "pb-db");
        assert_eq!(
            *log.lock().unwrap(),
            [
                "imds answered",
                "api answered",
                "asked for web",
                "asked for db"
            ]
        );
    }

    #[tokio::test]
    async fn no_group_asks_nothing_and_two_values_in_one_source_are_no_guess() {
        let log = Log::default();
        let sources = vec![source(
            &log,
            "api",
            0,
            &[("Patch Group", "web"), ("PatchGroup", "db")],
        )];
        let (group, registered) = run(&log, sources, None).await;
        assert_eq!(group, None);
        assert!(registered.is_empty());
        assert_eq!(*log.lock().unwrap(), ["api answered"]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn debian_default() -> Baseline {
        Baseline {
            id: "arn:aws:ssm:eu-west-1:aws:patchbaseline/pb-0c10e65780EXAMPLE".into(),
            name: "AWS-DebianDefaultPatchBaseline".into(),
            operating_system: "DEBIAN".into(),
            approve_after_days: vec![7],
            rules: 1,
            non_security: false,
            approved: 0,
            rejected: 0,
        }
    }

    fn registered_al2023(applies: Baseline) -> Found {
        Found {
            group: Some("production-linux".into()),
            os: "AMAZON_LINUX_2023".into(),
            registered: vec![(
                "AMAZON_LINUX_2023".into(),
                "pb-0al".into(),
                "prod-al2023".into(),
            )],
            applies,
        }
    }

    #[test]
    fn a_baseline_that_approves_nothing_or_security_only_warns() {
        let security_only = Baseline {
            id: "pb-0al".into(),
            name: "prod-al2023".into(),
            approve_after_days: vec![7],
            rules: 1,
            ..Default::default()
        };
        let o = judge(&registered_al2023(security_only.clone()));
        o.assert_begins(Status::Warn, "the baseline prod-al2023 (pb-0al) approves security updates only on AMAZON_LINUX_2023: no rule sets EnableNonSecurity");
        o.assert_says(
            Status::Warn,
            "; the patch group production-linux is registered for AMAZON_LINUX_2023",
        );
        assert!(o.remedy.unwrap().contains("EnableNonSecurity"));
        let with_bug_fixes = Baseline {
            non_security: true,
            ..security_only.clone()
        };
        assert_eq!(
            judge(&registered_al2023(with_bug_fixes)).status,
            Status::Pass
        );
        // Debian's rules take every update they match: no such warning.
        let debian = Found {
            os: "DEBIAN".into(),
            registered: vec![("DEBIAN".into(), "pb-0al".into(), "prod".into())],
            ..registered_al2023(security_only)
        };
        assert_eq!(judge(&debian).status, Status::Pass);
        let nothing = Baseline {
            id: "pb-0empty".into(),
            name: "empty".into(),
            ..Default::default()
        };
        let o = judge(&registered_al2023(nothing.clone()));
        o.assert_begins(Status::Warn, "the baseline empty (pb-0empty) approves nothing: it has no approval rules and no approved patches");
        let listed = Baseline {
            approved: 3,
            ..nothing
        };
        o.assert_says(Status::Warn, "approves nothing");
        // Approved patches without rules install those patches: not nothing.
        assert!(!judge(&registered_al2023(listed))
            .summary
            .contains("approves nothing"));
    }

    #[test]
    fn a_group_registered_for_this_os_passes() {
        let f = Found {
            group: Some("production-linux".into()),
            os: "DEBIAN".into(),
            registered: vec![("DEBIAN".into(), "pb-0123".into(), "prod-debian".into())],
            applies: Baseline {
                id: "pb-0123".into(),
                name: "prod-debian".into(),
                approve_after_days: vec![7, 0],
                approved: 2,
                rejected: 1,
                ..Default::default()
            },
        };
        let o = judge(&f);
        assert_eq!(o.status, Status::Pass);
        assert_eq!(o.summary, "the patch group production-linux is registered for DEBIAN to prod-debian (pb-0123; auto-approves after 7/0 days, 2 approved and 1 rejected patches listed)");
    }

    #[test]
    fn a_group_registered_for_another_os_warns_and_names_the_default() {
        let f = Found {
            group: Some("production-linux".into()),
            os: "DEBIAN".into(),
            registered: vec![(
                "AMAZON_LINUX_2023".into(),
                "pb-0al".into(),
                "prod-al2023".into(),
            )],
            applies: debian_default(),
        };
        let o = judge(&f);
        o.assert_says(Status::Warn, "registered only for AMAZON_LINUX_2023, not for DEBIAN: this node gets the default baseline AWS-DebianDefaultPatchBaseline");
        assert!(o
            .remedy
            .unwrap()
            .contains("register-patch-baseline-for-patch-group"));
    }

    #[test]
    fn no_group_or_no_registration_warns() {
        let none = Found {
            group: None,
            os: "DEBIAN".into(),
            registered: vec![],
            applies: debian_default(),
        };
        assert_eq!(judge(&none).status, Status::Warn);
        let unregistered = Found {
            group: Some("g".into()),
            ..none
        };
        let o = judge(&unregistered);
        o.assert_says(
            Status::Warn,
            "no baseline is registered for the patch group g",
        );
    }
}
