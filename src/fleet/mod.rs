//! `ssm-preflight fleet`: which nodes of a patch group or a window will be
//! patched, held back by the gate, or fail, read from SSM alone. The
//! scopes (groups or windows) are resolved first; then every scope's node
//! listing and the region's compliance summaries run at once, then the
//! failing checks of the non-compliant nodes, a bounded number at a time.

pub mod classify;
pub mod ssm;
pub mod targets;

use crate::fleet::ssm::{self as api, Failing, FleetError, Node, NodeFilter, Operator, Summary};
use classify::{Amount, Counts, Detail, NodeView, Threshold};
use futures_util::stream::{self, StreamExt};
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use targets::{Condition, Reach};

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

/// One window patch task's prediction over the nodes of a group it reaches.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowPrediction {
    pub window: WindowView,
    /// The task's `WindowTaskId`.
    pub task: String,
    /// "install" or "scan".
    pub operation: &'static str,
    pub counts: Counts,
    pub threshold: Threshold,
}

/// One group's (or window's) view.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupView {
    pub patch_group: String,
    /// The soonest window that patches some of its nodes.
    pub window: Option<WindowView>,
    pub counts: Counts,
    /// The soonest window's prediction, or `--max-blocked` over the whole
    /// group when no window reaches it.
    pub threshold: Threshold,
    /// Nodes of the group no window's patch task reaches in the look-ahead.
    pub untargeted: usize,
    /// Every window task that reaches some of its nodes, soonest first,
    /// each judged over the nodes it reaches.
    pub windows: Vec<WindowPrediction>,
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
    /// 0 no group or window task crosses or comes close to its threshold
    /// (a scan-only window predicts nothing), 1 one comes close, 2 one
    /// crosses.
    pub fn exit_code(&self) -> u8 {
        use classify::Verdict;
        self.groups
            .iter()
            .flat_map(|g| {
                std::iter::once(g.threshold.verdict)
                    .chain(g.windows.iter().map(|w| w.threshold.verdict))
            })
            .map(|v| match v {
                Verdict::Ok | Verdict::Scan => 0,
                Verdict::Close => 1,
                Verdict::Crosses => 2,
            })
            .max()
            .unwrap_or(0)
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

/// What a scope counts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Kind {
    /// The nodes tagged with a patch group, under either key.
    Group(String),
    /// The nodes a window's patch tasks reach.
    Window,
    /// Every managed node, less those of the other scopes.
    Rest,
}

/// A scope: the nodes to list and, for a window's own view, its window.
struct Scope {
    name: String,
    kind: Kind,
    window: Option<api::Window>,
    notes: Vec<String>,
}

/// A node as a scope's listing found it.
#[derive(Debug, Clone)]
struct Listed {
    node: Node,
    /// The group tag keys it was listed under (its value is the group).
    under: Vec<&'static str>,
    /// The windows' tasks that reach it, as (window, task) indexes into
    /// the view's windows.
    reached_by: Vec<(usize, usize)>,
}

/// Reads the fleet and builds the view.
pub async fn fleet(opts: &FleetOptions) -> Result<FleetReport, FleetError> {
    let op = api::operator(opts.region.as_deref(), opts.profile.as_deref()).await?;
    let now = SystemTime::now();
    let cache = WindowCache::default();
    // The summaries are one paged chain, the longest; the scopes, their
    // node listings, the windows and who they reach run beside it.
    let listed = async {
        let mut scopes = scopes(&op, &cache, opts).await?;
        let windows = windows_of(&op, &cache, &scopes).await?;
        let listings: Vec<Result<Vec<Listed>, FleetError>> = stream::iter(scopes.iter())
            .map(|scope| list_scope(&op, scope, &windows))
            .buffered(CONCURRENCY)
            .collect()
            .await;
        let mut scope_nodes: Vec<Vec<Listed>> = Vec::with_capacity(listings.len());
        for l in listings {
            scope_nodes.push(l?);
        }
        // The rest: every node no other scope lists.
        let listed: HashSet<String> = scope_nodes
            .iter()
            .zip(&scopes)
            .filter(|(_, s)| s.kind != Kind::Rest)
            .flat_map(|(n, _)| n.iter().map(|l| l.node.instance_id.clone()))
            .collect();
        for (nodes, scope) in scope_nodes.iter_mut().zip(&scopes) {
            if scope.kind == Kind::Rest {
                nodes.retain(|l| !listed.contains(&l.node.instance_id));
            }
        }
        for (nodes, scope) in scope_nodes.iter_mut().zip(scopes.iter_mut()) {
            let notes = attribute(&op, scope, nodes, &windows).await?;
            scope.notes.extend(notes);
        }
        Ok::<_, FleetError>((scopes, windows, scope_nodes))
    };
    let (summaries, listed) = tokio::join!(api::summaries(&op), listed);
    let (summaries, (scopes, windows, scope_nodes)) = (summaries?, listed?);

    let details = failing_checks(&op, &scope_nodes, &summaries, opts, now).await?;

    let mut groups = Vec::new();
    for (scope, nodes) in scopes.into_iter().zip(scope_nodes) {
        if scope.kind == Kind::Rest && nodes.is_empty() {
            continue;
        }
        groups.push(group_view(
            scope, &nodes, &windows, &summaries, &details, now, opts,
        ));
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

/// The scopes the options name: each window, each patch group, or every
/// registered group and the rest.
async fn scopes(
    op: &Operator,
    cache: &WindowCache,
    opts: &FleetOptions,
) -> Result<Vec<Scope>, FleetError> {
    let mut out = Vec::new();
    for id in &opts.windows {
        out.push(window_scope(op, cache, id).await?);
    }
    let (groups, rest) = if opts.patch_groups.is_empty() && opts.windows.is_empty() {
        (api::patch_groups(op).await?, true)
    } else {
        (opts.patch_groups.clone(), false)
    };
    for g in groups {
        out.push(Scope {
            name: g.clone(),
            kind: Kind::Group(g),
            window: None,
            notes: Vec::new(),
        });
    }
    if rest {
        out.push(Scope {
            name: NO_GROUP.into(),
            kind: Kind::Rest,
            window: None,
            notes: vec!["These nodes' Patch Group tag names no group registered with a patch baseline, or they have none: Patch Manager patches them with the default baseline, and only windows that target them otherwise reach them.".into()],
        });
    }
    Ok(out)
}

/// The windows the view predicts: a window's own view's, or, for groups,
/// every enabled window with a next start, soonest first.
async fn windows_of(
    op: &Operator,
    cache: &WindowCache,
    scopes: &[Scope],
) -> Result<Vec<api::Window>, FleetError> {
    if scopes.iter().all(|s| s.kind == Kind::Window) {
        return Ok(scopes.iter().filter_map(|s| s.window.clone()).collect());
    }
    let upcoming = api::upcoming_windows(op).await?;
    let read: Vec<Result<api::Window, FleetError>> = stream::iter(upcoming.iter())
        .map(|(id, _)| cache.get(op, id))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out: Vec<api::Window> = read.into_iter().collect::<Result<_, _>>()?;
    // A window's own view shares the windows with the groups' views.
    for s in scopes {
        if let Some(w) = &s.window {
            if !out.iter().any(|x| x.id == w.id) {
                out.push(w.clone());
            }
        }
    }
    Ok(out)
}

async fn window_scope(op: &Operator, cache: &WindowCache, id: &str) -> Result<Scope, FleetError> {
    let window = cache.get(op, id).await?;
    let mut groups = Vec::new();
    let mut notes = Vec::new();
    for t in window.predicted_tasks().flat_map(|t| &t.reaches) {
        for c in &t.conditions {
            if let Condition::Tag { key, values } = c {
                if GROUP_KEYS.contains(&format!("tag:{key}").as_str()) {
                    groups.extend(values.iter().cloned());
                }
            }
        }
    }
    if window.registered.is_empty() {
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
        kind: Kind::Window,
        window: Some(window),
        notes,
    })
}

/// What a window's configuration means for the prediction.
fn window_notes(w: &api::Window) -> Vec<String> {
    let mut notes = w.notes.clone();
    for t in w.predicted_tasks().flat_map(|t| &t.reaches) {
        let unresolved = t.unresolved();
        if !unresolved.is_empty() {
            notes.push(format!(
                "Window {}'s target {} names {}, which ssm-preflight could not resolve to nodes (it resolves instance IDs, tags and the resource groups it can read): the nodes it reaches are not counted.",
                w.id,
                t.id,
                unresolved.join(" and ")
            ));
        }
    }
    if !w.enabled {
        notes.push(format!(
            "Window {} is disabled: it will not run until it is enabled.",
            w.id
        ));
    }
    let first = w.tasks.first();
    if first.is_some() && !w.installs() {
        notes.push(format!("Window {}'s patch tasks only scan (Operation=Scan): they install nothing, so no rollout is predicted. Register a task with Operation=Install to patch these nodes.", w.id));
    } else if first.is_none() {
        notes.push(format!("Window {} runs no AWS-RunPatchBaseline task: it does not patch these nodes. The threshold is --max-blocked.", w.id));
    } else if !first
        .and_then(|t| t.pre_install_hook.as_deref())
        .is_some_and(|h| h.to_ascii_lowercase().contains("preflight"))
    {
        notes.push(format!("Window {}'s patch task does not run the ssm-preflight gate (PreInstallHookDocName): blocked nodes are not held back and will try to patch anyway.", w.id));
    }
    notes
}

/// The nodes of a scope: a group's under each group key (one listing
/// each, so each node says which key it carries); a window's, the nodes
/// each of its patch tasks' targets reach; the rest, every node.
async fn list_scope(
    op: &Operator,
    scope: &Scope,
    windows: &[api::Window],
) -> Result<Vec<Listed>, FleetError> {
    let mut out: Vec<Listed> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut add = |node: Node, under: Option<&'static str>, task: Option<(usize, usize)>| {
        let i = *index.entry(node.instance_id.clone()).or_insert_with(|| {
            out.push(Listed {
                node,
                under: Vec::new(),
                reached_by: Vec::new(),
            });
            out.len() - 1
        });
        let l = &mut out[i];
        if let Some(k) = under {
            if !l.under.contains(&k) {
                l.under.push(k);
            }
        }
        if let Some(t) = task {
            if !l.reached_by.contains(&t) {
                l.reached_by.push(t);
            }
        }
    };
    match &scope.kind {
        Kind::Rest => {
            for n in api::nodes(op, &[]).await? {
                add(n, None, None);
            }
        }
        Kind::Group(g) => {
            let lists: Vec<Result<Vec<Node>, FleetError>> = stream::iter(GROUP_KEYS)
                .map(|k| {
                    let filter = NodeFilter {
                        key: k.to_string(),
                        values: vec![g.clone()],
                    };
                    async move { api::nodes(op, &[filter]).await }
                })
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for (k, l) in GROUP_KEYS.iter().zip(lists) {
                for n in l? {
                    add(n, Some(k), None);
                }
            }
        }
        Kind::Window => {
            let Some(w) = &scope.window else {
                return Ok(out);
            };
            let wi = windows.iter().position(|x| x.id == w.id).unwrap_or(0);
            // One listing per registered target (its tags ANDed), shared
            // by the tasks that name it.
            let mut wanted: Vec<(usize, Vec<NodeFilter>, Option<Vec<String>>)> = Vec::new();
            for (ti, t) in w.tasks.iter().enumerate() {
                if !w.predicts(t) {
                    continue;
                }
                for target in &t.reaches {
                    if let Some((tags, ids)) = target.listing() {
                        wanted.push((ti, tags, ids));
                    }
                }
            }
            let lists: Vec<Result<Vec<Node>, FleetError>> = stream::iter(wanted.iter())
                .map(|(_, tags, ids)| list_target(op, tags, ids.as_deref()))
                .buffered(CONCURRENCY)
                .collect()
                .await;
            for ((ti, _, _), l) in wanted.iter().zip(lists) {
                for n in l? {
                    add(n, None, Some((wi, *ti)));
                }
            }
        }
    }
    Ok(out)
}

/// The nodes a registered target reaches: its tag conditions as one
/// listing, kept to its instance IDs; or its instance IDs alone. (SSM
/// refuses a tag filter beside an `InstanceIds` filter, so the two are
/// never sent together.)
async fn list_target(
    op: &Operator,
    tags: &[NodeFilter],
    ids: Option<&[String]>,
) -> Result<Vec<Node>, FleetError> {
    match (tags.is_empty(), ids) {
        (true, None) => Ok(Vec::new()),
        (true, Some([])) => Ok(Vec::new()),
        (true, Some(ids)) => {
            let filter = NodeFilter {
                key: "InstanceIds".into(),
                values: ids.to_vec(),
            };
            api::nodes(op, &[filter]).await
        }
        (false, ids) => {
            let mut nodes = api::nodes(op, tags).await?;
            if let Some(ids) = ids {
                nodes.retain(|n| ids.contains(&n.instance_id));
            }
            Ok(nodes)
        }
    }
}

/// Which windows' patch tasks reach each node of a group (a window's own
/// view knows from its listing): decided from what the listing tells,
/// and, where it does not, from one listing per distinct question.
/// Returns the notes it has for the scope.
async fn attribute(
    op: &Operator,
    scope: &Scope,
    nodes: &mut [Listed],
    windows: &[api::Window],
) -> Result<Vec<String>, FleetError> {
    let group = match &scope.kind {
        Kind::Window => return Ok(Vec::new()),
        Kind::Group(g) => Some(g.as_str()),
        Kind::Rest => None,
    };
    // Each distinct question once, by its filters.
    let mut asked: HashMap<Vec<NodeFilter>, usize> = HashMap::new();
    let mut pending: Vec<(usize, (usize, usize), usize)> = Vec::new();
    let mut undecided_rest = 0usize;
    for (ni, l) in nodes.iter_mut().enumerate() {
        for (wi, w) in windows.iter().enumerate() {
            for (ti, t) in w.tasks.iter().enumerate() {
                if !w.predicts(t) {
                    continue;
                }
                for target in &t.reaches {
                    match targets::reach(target, group.unwrap_or(""), &l.node.instance_id, &l.under)
                    {
                        Reach::Yes => {
                            if !l.reached_by.contains(&(wi, ti)) {
                                l.reached_by.push((wi, ti));
                            }
                        }
                        Reach::No => {}
                        // Outside a group there is nothing to narrow the
                        // listing by: it would list every tagged node.
                        Reach::IfListed(_) if group.is_none() => undecided_rest += 1,
                        Reach::IfListed(filters) => {
                            let next = asked.len();
                            let qi = *asked.entry(filters).or_insert(next);
                            pending.push((ni, (wi, ti), qi));
                        }
                    }
                }
            }
        }
    }
    let mut questions: Vec<(usize, Vec<NodeFilter>)> =
        asked.into_iter().map(|(f, i)| (i, f)).collect();
    questions.sort_by_key(|(i, _)| *i);
    let answers: Vec<Result<Vec<Node>, FleetError>> = stream::iter(questions.iter())
        .map(|(_, f)| api::nodes(op, f))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut found: Vec<HashSet<String>> = Vec::with_capacity(answers.len());
    for a in answers {
        found.push(a?.into_iter().map(|n| n.instance_id).collect());
    }
    for (ni, task, qi) in pending {
        let l = &mut nodes[ni];
        if found[qi].contains(&l.node.instance_id) && !l.reached_by.contains(&task) {
            l.reached_by.push(task);
        }
    }
    // Soonest window first: `windows` is in start order.
    for l in nodes.iter_mut() {
        l.reached_by.sort();
    }
    let mut notes = Vec::new();
    if undecided_rest > 0 {
        notes.push("Some windows target tags these nodes may carry; ssm-preflight does not resolve tag targets for nodes outside a registered patch group (it would list every tagged node), so their window column may be empty where a window does reach them.".into());
    }
    Ok(notes)
}

/// The failing checks of the fresh non-compliant nodes, at most
/// `max_detail` of them, `CONCURRENCY` at a time.
async fn failing_checks(
    op: &Operator,
    scope_nodes: &[Vec<Listed>],
    summaries: &HashMap<String, Summary>,
    opts: &FleetOptions,
    now: SystemTime,
) -> Result<Details, FleetError> {
    let mut wanted: Vec<&str> = Vec::new();
    let mut seen = HashSet::new();
    for n in scope_nodes.iter().flatten().map(|l| &l.node) {
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

/// A window task's prediction over `counts` against its MaxErrors, or
/// against `--max-blocked` where there is none it can read (and a note
/// saying what the task had).
fn task_threshold(
    w: &api::Window,
    t: &api::Task,
    counts: &Counts,
    opts: &FleetOptions,
) -> (Threshold, Option<String>) {
    let concurrency = t.max_concurrency.as_deref().and_then(Amount::parse);
    let parsed = t
        .max_errors
        .as_deref()
        .and_then(|m| Amount::parse(m).map(|a| (a, m.to_string())));
    let unread = match (&t.max_errors, &parsed) {
        (Some(m), None) => Some(format!("Window {}'s patch task {} has MaxErrors {m:?}, which ssm-preflight cannot read (it reads a count such as 5 or a share such as 10%): it is judged against --max-blocked {}% instead.", w.id, t.id, opts.max_blocked)),
        _ => None,
    };
    let mut threshold = match parsed {
        Some((limit, text)) => {
            classify::threshold(counts, limit, &text, "window task", concurrency)
        }
        None => max_blocked(counts, opts),
    };
    if !t.installs {
        // A scan changes no package: nothing to stop, nothing to predict.
        threshold.verdict = classify::Verdict::Scan;
        threshold.stops_after = None;
    }
    (threshold, unread)
}

fn max_blocked(counts: &Counts, opts: &FleetOptions) -> Threshold {
    let text = format!("{}%", opts.max_blocked);
    classify::threshold(
        counts,
        Amount::Percent(opts.max_blocked),
        &text,
        "--max-blocked",
        None,
    )
}

fn window_view(w: &api::Window, t: Option<&api::Task>) -> WindowView {
    WindowView {
        id: w.id.clone(),
        name: w.name.clone(),
        next_start: w.next_start.clone(),
        max_errors: t.and_then(|t| t.max_errors.clone()),
        max_concurrency: t.and_then(|t| t.max_concurrency.clone()),
    }
}

fn group_view(
    scope: Scope,
    nodes: &[Listed],
    windows: &[api::Window],
    summaries: &HashMap<String, Summary>,
    details: &Details,
    now: SystemTime,
    opts: &FleetOptions,
) -> GroupView {
    let mut views: Vec<(NodeView, &[(usize, usize)])> = nodes
        .iter()
        .map(|l| {
            let n = &l.node;
            let detail = match details.items.get(&n.instance_id) {
                Some(items) => Detail::Items(items),
                None => Detail::NotLooked,
            };
            let mut v = classify::node_state(
                n,
                summaries.get(&n.instance_id),
                detail,
                now,
                opts.stale_after,
            );
            // The soonest window that installs; a scan-only one when no
            // other reaches the node.
            let installing = l
                .reached_by
                .iter()
                .find(|(wi, ti)| windows[*wi].tasks[*ti].installs);
            v.window = installing
                .or(l.reached_by.first())
                .map(|(wi, _)| windows[*wi].id.clone());
            (v, l.reached_by.as_slice())
        })
        .collect();
    // The worst first, then by ID: the table's first lines are the ones to act on.
    views.sort_by(|(a, _), (b, _)| {
        (std::cmp::Reverse(a.state), &a.instance_id)
            .cmp(&(std::cmp::Reverse(b.state), &b.instance_id))
    });
    let all: Vec<NodeView> = views.iter().map(|(v, _)| v.clone()).collect();
    let counts = Counts::of(&all);
    let mut notes = scope.notes;

    // Each window task that reaches some of the nodes, judged over them.
    let mut tasks: Vec<(usize, usize)> =
        views.iter().flat_map(|(_, r)| r.iter().copied()).collect();
    tasks.sort();
    tasks.dedup();
    let mut predictions = Vec::new();
    let mut seen_windows = HashSet::new();
    for (wi, ti) in tasks {
        let (w, t) = (&windows[wi], &windows[wi].tasks[ti]);
        let reached: Vec<NodeView> = views
            .iter()
            .filter(|(_, r)| r.contains(&(wi, ti)))
            .map(|(v, _)| v.clone())
            .collect();
        let c = Counts::of(&reached);
        let (threshold, unread) = task_threshold(w, t, &c, opts);
        notes.extend(unread);
        if seen_windows.insert(wi) && scope.kind != Kind::Window {
            notes.extend(window_notes(w));
        }
        predictions.push(WindowPrediction {
            window: window_view(w, Some(t)),
            task: t.id.clone(),
            operation: if t.installs { "install" } else { "scan" },
            counts: c,
            threshold,
        });
    }
    let untargeted = views.iter().filter(|(_, r)| r.is_empty()).count();
    // The headline is the soonest rollout: a scan before it predicts nothing.
    let headline = predictions
        .iter()
        .find(|p| p.operation == "install")
        .or(predictions.first());
    let (window, threshold) = match headline {
        Some(p) => (Some(p.window.clone()), p.threshold.clone()),
        None => (
            scope
                .window
                .as_ref()
                .map(|w| window_view(w, w.tasks.first())),
            max_blocked(&counts, opts),
        ),
    };
    if predictions.len() > 1 {
        notes.push(format!("These nodes are patched by {} window tasks: each is judged over the nodes it reaches (`windows` in --json); the verdict shown is the soonest one's.", predictions.len()));
    }
    if let Kind::Group(g) = &scope.kind {
        if predictions.is_empty() && counts.total() > 0 {
            notes.push(format!("No maintenance window's patch task reaches the nodes tagged Patch Group (or PatchGroup) = {g}: they are not patched on a schedule. The threshold is --max-blocked. Register their tag as a window target, with both keys if the group uses both."));
        } else if untargeted > 0 {
            notes.push(format!("{untargeted} node(s) of this group are in no window: no maintenance window's patch task reaches them in the look-ahead (often the window targets one tag key and these nodes carry the other). Register a target for them."));
        }
    }
    let not_looked = all
        .iter()
        .filter(|v| {
            v.state == classify::State::Blocked
                && !details.items.contains_key(&v.instance_id)
                && !details.failed.contains_key(&v.instance_id)
        })
        .count();
    for v in &all {
        if let Some(why) = details.failed.get(&v.instance_id) {
            notes.push(format!("The failing checks of {} could not be read ({why}); it is counted as blocked from its compliance summary.", v.instance_id));
        }
    }
    let ahead: Vec<String> = all
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
        window,
        counts,
        threshold,
        untargeted: if scope.kind == Kind::Window {
            0
        } else {
            untargeted
        },
        windows: predictions,
        notes,
        nodes: all,
    }
}
