//! `ssm-preflight fleet`: which nodes of a patch group or a window will be
//! patched, held back by the gate, or fail, read from SSM alone. The
//! scopes (groups or windows) are resolved first; then every scope's node
//! listing and the region's compliance summaries run at once, then the
//! failing checks of the non-compliant nodes, a bounded number at a time.

pub mod classify;
pub mod ssm;

use crate::fleet::ssm::{self as api, Failing, FleetError, Node, NodeFilter, Operator, Summary};
use classify::{Amount, Counts, Detail, NodeView, Threshold};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

pub use api::calls_made;

/// The two tag keys Patch Manager reads a node's patch group from.
pub const GROUP_KEYS: [&str; 2] = ["tag:Patch Group", "tag:PatchGroup"];

/// The group of nodes no registered patch group names.
pub const NO_GROUP: &str = "(no registered patch group)";

/// Calls made at once: enough to hide the latency of each, few enough that
/// a large fleet does not set off SSM's throttling at the start.
const CONCURRENCY: usize = 16;

/// What the operator asked for.
#[derive(Debug, Clone)]
pub struct FleetOptions {
    pub patch_groups: Vec<String>,
    pub windows: Vec<String>,
    pub stale_after: Duration,
    /// The threshold for a group no window task covers, in percent.
    pub max_blocked: f64,
    /// At most this many non-compliant nodes have their checks looked up.
    pub max_detail: usize,
    pub region: Option<String>,
    pub profile: Option<String>,
}

/// A window as the view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    pub id: String,
    pub name: String,
    pub next_start: Option<String>,
    pub max_errors: Option<String>,
    pub max_concurrency: Option<String>,
}

/// One group's (or window's) view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub patch_group: String,
    pub window: Option<WindowView>,
    pub counts: Counts,
    pub threshold: Threshold,
    /// What the prediction cannot see or assumes, each a sentence.
    pub notes: Vec<String>,
    pub nodes: Vec<NodeView>,
}

/// The whole view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FleetReport {
    pub generated_at: String,
    pub region: String,
    pub stale_after_s: u64,
    pub groups: Vec<GroupView>,
}

impl FleetReport {
    /// 0 no group crosses or comes close to its threshold (a scan-only
    /// window predicts nothing), 1 one comes close, 2 one crosses.
    pub fn exit_code(&self) -> u8 {
        use classify::Verdict;
        let worst = self
            .groups
            .iter()
            .map(|g| g.threshold.verdict)
            .fold(0, |acc, v| {
                acc.max(match v {
                    Verdict::Ok | Verdict::Scan => 0,
                    Verdict::Close => 1,
                    Verdict::Crosses => 2,
                })
            });
        worst
    }
}

/// One window's read, shared by every group that asks for it.
type WindowRead = std::sync::Arc<tokio::sync::OnceCell<Result<api::Window, FleetError>>>;

/// Windows read once per view, however many groups one patches (two
/// groups asking at once share the one read).
#[derive(Default)]
struct WindowCache(std::sync::Mutex<HashMap<String, WindowRead>>);

impl WindowCache {
    async fn get(&self, op: &Operator, id: &str) -> Result<api::Window, FleetError> {
        let cell = self
            .0
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| api::window(op, id)).await.clone()
    }
}

/// A scope: the nodes to list and the window that patches them.
struct Scope {
    name: String,
    filters: Vec<NodeFilter>,
    window: Option<api::Window>,
    notes: Vec<String>,
    /// Every managed node, less those of the other scopes.
    rest: bool,
}

/// Reads the fleet and builds the view.
pub async fn fleet(opts: &FleetOptions) -> Result<FleetReport, FleetError> {
    let op = api::operator(opts.region.as_deref(), opts.profile.as_deref()).await?;
    let now = SystemTime::now();
    // The summaries are one paged chain, the longest; the scopes and their
    // node listings run beside it.
    let listed = async {
        let scopes = scopes(&op, opts).await?;
        let listings: Vec<Result<Vec<Node>, FleetError>> = stream::iter(scopes.iter())
            .map(|scope| list_scope(&op, scope))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut scope_nodes: Vec<Vec<Node>> = Vec::with_capacity(listings.len());
        for l in listings {
            scope_nodes.push(l?);
        }
        Ok::<_, FleetError>((scopes, scope_nodes))
    };
    let (summaries, listed) = tokio::join!(api::summaries(&op), listed);
    let (summaries, (scopes, mut scope_nodes)) = (summaries?, listed?);
    // The rest: every node no other scope lists.
    let listed: HashSet<String> = scope_nodes
        .iter()
        .zip(&scopes)
        .filter(|(_, s)| !s.rest)
        .flat_map(|(n, _)| n.iter().map(|n| n.instance_id.clone()))
        .collect();
    for (nodes, scope) in scope_nodes.iter_mut().zip(&scopes) {
        if scope.rest {
            nodes.retain(|n| !listed.contains(&n.instance_id));
        }
    }

    let details = failing_checks(&op, &scope_nodes, &summaries, opts, now).await?;

    let mut groups = Vec::new();
    for (scope, nodes) in scopes.into_iter().zip(scope_nodes) {
        if scope.rest && nodes.is_empty() {
            continue;
        }
        groups.push(group_view(scope, &nodes, &summaries, &details, now, opts));
    }
    Ok(FleetReport {
        generated_at: jiff::Timestamp::try_from(now)
            .map(|t| t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_default(),
        region: op.region.clone(),
        stale_after_s: opts.stale_after.as_secs(),
        groups,
    })
}

/// The scopes the options name: each window, each patch group (with the
/// window that targets it soonest), or every registered group and the rest.
async fn scopes(op: &Operator, opts: &FleetOptions) -> Result<Vec<Scope>, FleetError> {
    let cache = WindowCache::default();
    let mut out = Vec::new();
    for id in &opts.windows {
        out.push(window_scope(op, &cache, id).await?);
    }
    let (groups, rest) = if opts.patch_groups.is_empty() && opts.windows.is_empty() {
        (api::patch_groups(op).await?, true)
    } else {
        (opts.patch_groups.clone(), false)
    };
    let group_scopes: Vec<Result<Scope, FleetError>> = stream::iter(groups.iter())
        .map(|g| group_scope(op, &cache, g))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    for s in group_scopes {
        out.push(s?);
    }
    if rest {
        out.push(Scope {
            name: NO_GROUP.into(),
            filters: Vec::new(),
            window: None,
            notes: vec!["These nodes' Patch Group tag names no group registered with a patch baseline, or they have none: Patch Manager patches them with the default baseline, and only windows that target them otherwise reach them.".into()],
            rest: true,
        });
    }
    Ok(out)
}

async fn window_scope(op: &Operator, cache: &WindowCache, id: &str) -> Result<Scope, FleetError> {
    let window = cache.get(op, id).await?;
    let mut filters = Vec::new();
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    for (key, values) in &window.targets {
        match key.as_str() {
            "InstanceIds" | "tag-key" => filters.push(NodeFilter {
                key: key.clone(),
                values: values.clone(),
            }),
            k if k.starts_with("tag:") => {
                if GROUP_KEYS.contains(&k) {
                    groups.extend(values.iter().cloned());
                }
                filters.push(NodeFilter {
                    key: key.clone(),
                    values: values.clone(),
                });
            }
            other => notes.push(format!(
                "The window also targets {other} = {}, which ssm-preflight cannot resolve to nodes (it resolves instance IDs and tags): those nodes are not counted.",
                values.join(", ")
            )),
        }
    }
    if window.targets.is_empty() {
        notes.push(format!("Window {id} has no registered targets: it patches nothing. Register the patch group's tag as a target (Systems Manager > Maintenance Windows > {id} > Targets)."));
    }
    groups.sort();
    groups.dedup();
    let name = if groups.is_empty() {
        format!("(targets of {})", window.name)
    } else {
        groups.join(", ")
    };
    notes.extend(window_notes(&window));
    Ok(Scope {
        name,
        filters,
        window: Some(window),
        notes,
        rest: false,
    })
}

async fn group_scope(op: &Operator, cache: &WindowCache, group: &str) -> Result<Scope, FleetError> {
    let (a, b) = tokio::join!(
        api::windows_targeting(op, GROUP_KEYS[0], group),
        api::windows_targeting(op, GROUP_KEYS[1], group)
    );
    let mut starts = a?;
    starts.extend(b?);
    starts.sort_by(|x, y| x.1.cmp(&y.1));
    let window = match starts.first() {
        Some((id, _)) => Some(cache.get(op, id).await?),
        None => None,
    };
    let mut notes = Vec::new();
    match &window {
        Some(w) => notes.extend(window_notes(w)),
        None => notes.push(format!("No maintenance window targets the tag Patch Group = {group}: these nodes are not patched on a schedule. The threshold is --max-blocked.")),
    }
    Ok(Scope {
        name: group.to_string(),
        filters: GROUP_KEYS
            .iter()
            .map(|k| NodeFilter {
                key: k.to_string(),
                values: vec![group.to_string()],
            })
            .collect(),
        window,
        notes,
        rest: false,
    })
}

/// What a window's configuration means for the prediction.
fn window_notes(w: &api::Window) -> Vec<String> {
    let mut notes = Vec::new();
    if !w.enabled {
        notes.push(format!(
            "Window {} is disabled: it will not run until it is enabled.",
            w.id
        ));
    }
    if w.patches && !w.installs {
        notes.push(format!("Window {}'s patch tasks only scan (Operation=Scan): they install nothing, so no rollout is predicted. Register a task with Operation=Install to patch these nodes.", w.id));
    } else if !w.patches {
        notes.push(format!("Window {} runs no AWS-RunPatchBaseline task: it does not patch these nodes. The threshold is --max-blocked.", w.id));
    } else if !w
        .pre_install_hook
        .as_deref()
        .is_some_and(|h| h.to_ascii_lowercase().contains("preflight"))
    {
        notes.push(format!("Window {}'s patch task does not run the ssm-preflight gate (PreInstallHookDocName): blocked nodes are not held back and will try to patch anyway.", w.id));
    }
    notes
}

async fn list_scope(op: &Operator, scope: &Scope) -> Result<Vec<Node>, FleetError> {
    if scope.rest {
        return api::nodes(op, None).await;
    }
    let lists: Vec<Result<Vec<Node>, FleetError>> = stream::iter(scope.filters.iter())
        .map(|f| api::nodes(op, Some(f)))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for l in lists {
        for n in l? {
            if seen.insert(n.instance_id.clone()) {
                out.push(n);
            }
        }
    }
    Ok(out)
}

/// The failing checks of the fresh non-compliant nodes, at most
/// `max_detail` of them, `CONCURRENCY` at a time.
async fn failing_checks(
    op: &Operator,
    scope_nodes: &[Vec<Node>],
    summaries: &HashMap<String, Summary>,
    opts: &FleetOptions,
    now: SystemTime,
) -> Result<Details, FleetError> {
    let mut wanted: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for n in scope_nodes.iter().flatten() {
        let Some(s) = summaries.get(&n.instance_id) else {
            continue;
        };
        // Either side of now: a node whose clock is ahead reports "from the
        // future", and its report is as fresh as its lead is short.
        let fresh = s.reported_at.is_some_and(|t| {
            let gap = now
                .duration_since(t)
                .unwrap_or_else(|ahead| ahead.duration());
            gap <= opts.stale_after
        });
        let online = !matches!(n.ping.as_str(), "ConnectionLost" | "Inactive");
        if !s.compliant && fresh && online && seen.insert(n.instance_id.as_str()) {
            wanted.push(&n.instance_id);
        }
    }
    wanted.truncate(opts.max_detail);
    let answers: Vec<(String, Result<Vec<Failing>, FleetError>)> = stream::iter(wanted)
        .map(|id| async move { (id.to_string(), api::failing(op, id).await) })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut out = Details::default();
    for (id, a) in answers {
        match a {
            Ok(items) => {
                out.items.insert(id, items);
            }
            // Refused credentials or a missing action fail every call the
            // same way: the view as a whole cannot be trusted.
            Err(e @ (FleetError::Denied { .. } | FleetError::Session { .. })) => return Err(e),
            // One node's trouble (terminated since the listing, throttled
            // past the retries) is that node's: it stays counted from its
            // summary, and the note names it.
            Err(e) => {
                out.failed.insert(id, e.to_string());
            }
        }
    }
    Ok(out)
}

/// The failing checks read, by node, and the nodes whose read failed.
#[derive(Default)]
struct Details {
    items: HashMap<String, Vec<Failing>>,
    failed: HashMap<String, String>,
}

/// The prediction against the window's patch task's MaxErrors, or
/// against `--max-blocked` where there is none to read.
fn threshold_for(
    scope: &Scope,
    counts: &Counts,
    opts: &FleetOptions,
) -> (Threshold, Option<String>) {
    let task_limit = scope
        .window
        .as_ref()
        .filter(|w| w.patches)
        .and_then(|w| w.max_errors.as_deref())
        .and_then(|m| Amount::parse(m).map(|a| (a, m.to_string())));
    let concurrency = scope
        .window
        .as_ref()
        .and_then(|w| w.max_concurrency.as_deref())
        .and_then(Amount::parse);
    // A MaxErrors the view cannot read is said, not silently replaced.
    let unread = scope
        .window
        .as_ref()
        .filter(|w| w.patches)
        .and_then(|w| Some((w, w.max_errors.as_deref()?)))
        .filter(|(_, m)| Amount::parse(m).is_none())
        .map(|(w, m)| format!("Window {}'s patch task has MaxErrors {m:?}, which ssm-preflight cannot read (it reads a count such as 5 or a share such as 10%): the group is judged against --max-blocked {}% instead.", w.id, opts.max_blocked));
    let scans_only = scope
        .window
        .as_ref()
        .is_some_and(|w| w.patches && !w.installs);
    let mut threshold = match task_limit {
        Some((limit, text)) => {
            classify::threshold(counts, limit, &text, "window task", concurrency)
        }
        None => {
            let text = format!("{}%", opts.max_blocked);
            classify::threshold(
                counts,
                Amount::Percent(opts.max_blocked),
                &text,
                "--max-blocked",
                None,
            )
        }
    };
    if scans_only {
        // A scan changes no package: nothing to stop, nothing to predict.
        threshold.verdict = classify::Verdict::Scan;
        threshold.stops_after = None;
    }
    (threshold, unread)
}

fn group_view(
    scope: Scope,
    nodes: &[Node],
    summaries: &HashMap<String, Summary>,
    details: &Details,
    now: SystemTime,
    opts: &FleetOptions,
) -> GroupView {
    let mut views: Vec<NodeView> = nodes
        .iter()
        .map(|n| {
            let detail = match details.items.get(&n.instance_id) {
                Some(items) => Detail::Items(items),
                None => Detail::NotLooked,
            };
            classify::node_state(
                n,
                summaries.get(&n.instance_id),
                detail,
                now,
                opts.stale_after,
            )
        })
        .collect();
    // The worst first, then by ID: the table's first lines are the ones to act on.
    views.sort_by(|a, b| {
        (std::cmp::Reverse(a.state), &a.instance_id)
            .cmp(&(std::cmp::Reverse(b.state), &b.instance_id))
    });
    let counts = Counts::of(&views);
    let (threshold, unread) = threshold_for(&scope, &counts, opts);
    let mut notes = scope.notes;
    notes.extend(unread);
    let not_looked = views
        .iter()
        .filter(|v| {
            v.state == classify::State::Blocked
                && !details.items.contains_key(&v.instance_id)
                && !details.failed.contains_key(&v.instance_id)
        })
        .count();
    for v in &views {
        if let Some(why) = details.failed.get(&v.instance_id) {
            notes.push(format!("The failing checks of {} could not be read ({why}); it is counted as blocked from its compliance summary.", v.instance_id));
        }
    }
    let ahead: Vec<String> = views
        .iter()
        .filter_map(|v| {
            let s = v.clock_ahead_s?;
            Some(format!(
                "{} by {}",
                v.instance_id,
                humantime::format_duration(Duration::from_secs(s))
            ))
        })
        .collect();
    if !ahead.is_empty() {
        notes.push(format!("{} node(s) date their reports ahead of this computer's clock ({}{}): each is judged by its report, and stale once the lead passes --stale-after; fix the node's clock (`chronyc tracking` on it; ssm-preflight's clock.skew check says how).", ahead.len(), ahead.iter().take(5).cloned().collect::<Vec<_>>().join(", "), if ahead.len() > 5 { ", …" } else { "" }));
    }
    if not_looked > 0 {
        notes.push(format!("{not_looked} non-compliant node(s) were counted as blocked without reading their checks (--max-detail {}); raise it to see them.", opts.max_detail));
    }
    if counts.total() == 0 {
        notes.push(format!("No managed node matches {}: check the tag's spelling and that the nodes are managed (Fleet Manager).", scope.name));
    }
    GroupView {
        patch_group: scope.name,
        window: scope.window.map(|w| WindowView {
            id: w.id,
            name: w.name,
            next_start: w.next_start,
            max_errors: w.max_errors,
            max_concurrency: w.max_concurrency,
        }),
        counts,
        threshold,
        notes,
        nodes: views,
    }
}
