//! The view built from what was read: each scope's nodes classified, each
//! window task that reaches them judged over them, and the notes that say
//! what the prediction cannot see. Pure: no call to SSM starts here.

use super::classify::{self, Amount, Counts, Detail, NodeView, Threshold};
use super::ssm::{Failing, Node, Summary};
use super::windows::{SourceKind, Task, Window};
use super::FleetOptions;
use serde::Serialize;
use std::collections::{HashMap, HashSet};
use std::time::{Duration, SystemTime};

/// A window (or an association that patches) as the view shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct WindowView {
    /// `maintenance-window`, `association` or `patch-policy`.
    pub source: SourceKind,
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

/// What a scope counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Kind {
    /// The nodes tagged with a patch group, under either key.
    Group(String),
    /// The nodes a window's patch tasks reach.
    Window,
    /// Every managed node, less those of the other scopes.
    Rest,
}

/// A scope: the nodes to list and, for a window's own view, its window.
pub(super) struct Scope {
    pub(super) name: String,
    pub(super) kind: Kind,
    pub(super) window: Option<Window>,
    pub(super) notes: Vec<String>,
}

/// A node as a scope's listing found it.
#[derive(Debug, Clone)]
pub(super) struct Listed {
    pub(super) node: Node,
    /// The group tag keys it was listed under (its value is the group).
    pub(super) under: Vec<&'static str>,
    /// The windows' tasks that reach it, as (window, task) indexes into
    /// the view's windows.
    pub(super) reached_by: Vec<(usize, usize)>,
}

/// The failing checks read, by node, and the nodes whose read failed.
#[derive(Default)]
pub(super) struct Details {
    pub(super) items: HashMap<String, Vec<Failing>>,
    pub(super) failed: HashMap<String, String>,
}

/// What a window's configuration means for the prediction.
pub(super) fn window_notes(w: &Window) -> Vec<String> {
    let mut notes = w.notes.clone();
    for t in w.predicted_tasks().flat_map(|t| &t.reaches) {
        let unresolved = t.unresolved();
        if !unresolved.is_empty() {
            notes.push(format!(
                "{}'s target {} names {}, which ssm-preflight could not resolve to nodes (it resolves instance IDs, tags and the resource groups it can read): the nodes it reaches are not counted.",
                w.noun(),
                t.id,
                unresolved.join(" and ")
            ));
        }
    }
    if !w.enabled {
        notes.push(format!(
            "{} is disabled: it will not run until it is enabled.",
            w.noun()
        ));
    }
    let first = w.tasks.first();
    if first.is_some() && !w.installs() {
        notes.push(format!("{}'s patch tasks only scan (Operation=Scan): they install nothing, so no rollout is predicted. Register a task with Operation=Install to patch these nodes.", w.noun()));
    } else if first.is_none() {
        notes.push(format!("{} runs no AWS-RunPatchBaseline task: it does not patch these nodes. The threshold is --max-blocked.", w.noun()));
    } else if !first
        .and_then(|t| t.pre_install_hook.as_deref())
        .is_some_and(|h| h.to_ascii_lowercase().contains("preflight"))
    {
        notes.push(format!("{}'s patch task does not run the ssm-preflight gate (PreInstallHookDocName): blocked nodes are not held back and will try to patch anyway.", w.noun()));
    }
    notes
}

/// A window task's prediction over `counts` against its MaxErrors, or
/// against `--max-blocked` where there is none it can read (and a note
/// saying what the task had).
fn task_threshold(
    w: &Window,
    t: &Task,
    counts: &Counts,
    opts: &FleetOptions,
) -> (Threshold, Option<String>) {
    let concurrency = t.max_concurrency.as_deref().and_then(Amount::parse);
    let parsed = t
        .max_errors
        .as_deref()
        .and_then(|m| Amount::parse(m).map(|a| (a, m.to_string())));
    let unread = match (&t.max_errors, &parsed) {
        (Some(m), None) => Some(format!("{}'s patch task {} has MaxErrors {m:?}, which ssm-preflight cannot read (it reads a count such as 5 or a share such as 10%): it is judged against --max-blocked {}% instead.", w.noun(), t.id, opts.max_blocked)),
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

pub(super) fn max_blocked(counts: &Counts, opts: &FleetOptions) -> Threshold {
    let text = format!("{}%", opts.max_blocked);
    classify::threshold(
        counts,
        Amount::Percent(opts.max_blocked),
        &text,
        "--max-blocked",
        None,
    )
}

fn window_view(w: &Window, t: Option<&Task>) -> WindowView {
    WindowView {
        source: w.source,
        id: w.id.clone(),
        name: w.name.clone(),
        next_start: w.next_start.clone(),
        max_errors: t.and_then(|t| t.max_errors.clone()),
        max_concurrency: t.and_then(|t| t.max_concurrency.clone()),
    }
}

/// What every scope's view is built from.
pub(super) struct Read<'a> {
    pub(super) windows: &'a [Window],
    pub(super) summaries: &'a HashMap<String, Summary>,
    pub(super) details: &'a Details,
    pub(super) now: SystemTime,
    pub(super) opts: &'a FleetOptions,
}

/// A node's view and the window tasks that reach it.
type Reached<'l> = (NodeView, &'l [(usize, usize)]);

pub(super) fn group_view(read: &Read, scope: Scope, nodes: &[Listed]) -> GroupView {
    let views = node_views(read, nodes);
    let all: Vec<NodeView> = views.iter().map(|(v, _)| v.clone()).collect();
    let counts = Counts::of(&all);
    let mut notes = scope.notes.clone();
    let predictions = predictions(read, &scope, &views, &mut notes);
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
            max_blocked(&counts, read.opts),
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
    notes.extend(node_notes(read, &all));
    if counts.total() == 0 {
        notes.push(format!("No managed node matches {}: check the tag's spelling and that the nodes are managed (Fleet Manager).", scope.name));
    }
    GroupView {
        untargeted: if scope.kind == Kind::Window {
            0
        } else {
            untargeted
        },
        patch_group: scope.name,
        window,
        counts,
        threshold,
        windows: predictions,
        notes,
        nodes: all,
    }
}

/// Each node classified and given the soonest window that installs on it,
/// the worst first, then by ID: the table's first lines are the ones to
/// act on.
fn node_views<'l>(read: &Read, nodes: &'l [Listed]) -> Vec<Reached<'l>> {
    let mut views: Vec<Reached> = nodes
        .iter()
        .map(|l| {
            let n = &l.node;
            let detail = match read.details.items.get(&n.instance_id) {
                Some(items) => Detail::Items(items),
                None => Detail::NotLooked,
            };
            let mut v = classify::node_state(
                n,
                read.summaries.get(&n.instance_id),
                detail,
                read.now,
                read.opts.stale_after,
            );
            // The soonest window that installs; a scan-only one when no
            // other reaches the node.
            let installing = l
                .reached_by
                .iter()
                .find(|(wi, ti)| read.windows[*wi].tasks[*ti].installs);
            v.window = installing
                .or(l.reached_by.first())
                .map(|(wi, _)| read.windows[*wi].id.clone());
            (v, l.reached_by.as_slice())
        })
        .collect();
    views.sort_by(|(a, _), (b, _)| {
        (std::cmp::Reverse(a.state), &a.instance_id)
            .cmp(&(std::cmp::Reverse(b.state), &b.instance_id))
    });
    views
}

/// Each window task that reaches some of the nodes, judged over them,
/// soonest first; what a window's configuration means goes to `notes`.
fn predictions(
    read: &Read,
    scope: &Scope,
    views: &[Reached],
    notes: &mut Vec<String>,
) -> Vec<WindowPrediction> {
    let mut tasks: Vec<(usize, usize)> =
        views.iter().flat_map(|(_, r)| r.iter().copied()).collect();
    tasks.sort();
    tasks.dedup();
    let mut out = Vec::new();
    let mut seen_windows = HashSet::new();
    for (wi, ti) in tasks {
        let (w, t) = (&read.windows[wi], &read.windows[wi].tasks[ti]);
        let reached: Vec<NodeView> = views
            .iter()
            .filter(|(_, r)| r.contains(&(wi, ti)))
            .map(|(v, _)| v.clone())
            .collect();
        let c = Counts::of(&reached);
        let (threshold, unread) = task_threshold(w, t, &c, read.opts);
        notes.extend(unread);
        if seen_windows.insert(wi) && scope.kind != Kind::Window {
            notes.extend(window_notes(w));
        }
        out.push(WindowPrediction {
            window: window_view(w, Some(t)),
            task: t.id.clone(),
            operation: if t.installs { "install" } else { "scan" },
            counts: c,
            threshold,
        });
    }
    out
}

/// What the nodes' own reads leave unsure: checks not read, reads that
/// failed, clocks ahead of this one.
fn node_notes(read: &Read, all: &[NodeView]) -> Vec<String> {
    let details = read.details;
    let mut notes = Vec::new();
    let not_looked = all
        .iter()
        .filter(|v| {
            v.state == classify::State::Blocked
                && !details.items.contains_key(&v.instance_id)
                && !details.failed.contains_key(&v.instance_id)
        })
        .count();
    for v in all {
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
        notes.push(format!("{not_looked} non-compliant node(s) were counted as blocked without reading their checks (--max-detail {}); raise it to see them.", read.opts.max_detail));
    }
    notes
}
