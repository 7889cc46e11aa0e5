//! `ssm-preflight fleet`: which nodes of a patch group or a window will be
//! patched, held back by the gate, or fail, read from SSM alone. The
//! scopes (groups or windows) are resolved first; then every scope's node
//! listing and the region's compliance summaries run at once, then the
//! failing checks of the non-compliant nodes, a bounded number at a time.

pub mod associations;
pub mod classify;
pub mod ssm;
pub mod targets;
pub mod view;
pub mod windows;

use crate::fleet::ssm::{self as api, Failing, FleetError, Node, NodeFilter, Operator, Summary};
use futures_util::stream::{self, StreamExt};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};
use targets::{Condition, Reach};
use view::{window_notes, Details, FleetReport, Kind, Listed, Scope};
use windows::Window;

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

/// One window's read, shared by every group that asks for it.
type WindowRead = std::sync::Arc<tokio::sync::OnceCell<Result<Window, FleetError>>>;

/// Windows read once per view, however many groups one patches (two
/// groups asking at once share the one read).
#[derive(Default)]
struct WindowCache(std::sync::Mutex<HashMap<String, WindowRead>>);

impl WindowCache {
    async fn get(&self, op: &Operator, id: &str) -> Result<Window, FleetError> {
        let cell = self
            .0
            .lock()
            .unwrap()
            .entry(id.to_string())
            .or_default()
            .clone();
        cell.get_or_init(|| windows::window(op, id)).await.clone()
    }
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
        let windows = windows_of(&op, &cache, &mut scopes, now).await?;
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

    let read = view::Read {
        windows: &windows,
        summaries: &summaries,
        details: &details,
        now,
        opts,
    };
    let mut groups = Vec::new();
    for (scope, nodes) in scopes.into_iter().zip(scope_nodes) {
        if scope.kind == Kind::Rest && nodes.is_empty() {
            continue;
        }
        groups.push(view::group_view(&read, scope, &nodes));
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
/// every enabled window with a next start and every association that
/// patches with a run ahead, soonest first. Associations that cannot be
/// read are a note on each group, not the end of the view.
async fn windows_of(
    op: &Operator,
    cache: &WindowCache,
    scopes: &mut [Scope],
    now: SystemTime,
) -> Result<Vec<Window>, FleetError> {
    if scopes.iter().all(|s| s.kind == Kind::Window) {
        return Ok(scopes.iter().filter_map(|s| s.window.clone()).collect());
    }
    let now = jiff::Timestamp::try_from(now).unwrap_or(jiff::Timestamp::UNIX_EPOCH);
    let (upcoming, associations) = tokio::join!(
        windows::upcoming_windows(op),
        associations::patching(op, now)
    );
    let upcoming = upcoming?;
    let read: Vec<Result<Window, FleetError>> = stream::iter(upcoming.iter())
        .map(|(id, _)| cache.get(op, id))
        .buffered(CONCURRENCY)
        .collect()
        .await;
    let mut out: Vec<Window> = read.into_iter().collect::<Result<_, _>>()?;
    match associations {
        Ok(a) => out.extend(a),
        Err(e) => {
            let note = format!("State Manager associations and Quick Setup patch policies were not read, so the nodes they patch are not predicted: {e}");
            for s in scopes.iter_mut().filter(|s| s.kind != Kind::Window) {
                s.notes.push(note.clone());
            }
        }
    }
    // A window's own view shares the windows with the groups' views.
    for s in scopes.iter() {
        if let Some(w) = &s.window {
            if !out.iter().any(|x| x.id == w.id) {
                out.push(w.clone());
            }
        }
    }
    // Soonest first, windows and associations together (the predictions
    // follow this order); one without a start last.
    out.sort_by_key(|w| {
        w.next_start
            .as_deref()
            .and_then(crate::config::schedule::window::parse_execution_time)
            .map_or((1, jiff::Timestamp::UNIX_EPOCH), |t| (0, t))
    });
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

/// The nodes of a scope: a group's under each group key (one listing
/// each, so each node says which key it carries); a window's, the nodes
/// each of its patch tasks' targets reach; the rest, every node.
async fn list_scope(
    op: &Operator,
    scope: &Scope,
    windows: &[Window],
) -> Result<Vec<Listed>, FleetError> {
    let mut out = Listing::default();
    match &scope.kind {
        Kind::Rest => {
            for n in api::nodes(op, &[]).await? {
                out.add(n, None, None);
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
                    out.add(n, Some(k), None);
                }
            }
        }
        Kind::Window => {
            if let Some(w) = &scope.window {
                let wi = windows.iter().position(|x| x.id == w.id).unwrap_or(0);
                list_window(op, w, wi, &mut out).await?;
            }
        }
    }
    Ok(out.nodes)
}

/// A window's nodes: one listing per registered target (its tags ANDed),
/// shared by the tasks that name it; each node keeps the tasks that reach it.
async fn list_window(
    op: &Operator,
    w: &Window,
    wi: usize,
    out: &mut Listing,
) -> Result<(), FleetError> {
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
            out.add(n, None, Some((wi, *ti)));
        }
    }
    Ok(())
}

/// A scope's nodes, each once however many listings found it.
#[derive(Default)]
struct Listing {
    nodes: Vec<Listed>,
    index: HashMap<String, usize>,
}

impl Listing {
    /// Adds `node`, or to it: the group key it was listed under and the
    /// (window, task) that reaches it.
    fn add(&mut self, node: Node, under: Option<&'static str>, task: Option<(usize, usize)>) {
        let nodes = &mut self.nodes;
        let i = *self
            .index
            .entry(node.instance_id.clone())
            .or_insert_with(|| {
                nodes.push(Listed {
                    node,
                    under: Vec::new(),
                    reached_by: Vec::new(),
                });
                nodes.len() - 1
            });
        let l = &mut self.nodes[i];
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
    }
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
    windows: &[Window],
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
