//! The fleet view's verdicts, pure: each node's state from what SSM knows of
//! it, and a group's prediction against its window task's error threshold.

use crate::fleet::ssm::{Failing, Node, Summary};
use serde::Serialize;
use std::time::{Duration, SystemTime};

/// Where a node stands before the window; each node is in exactly one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, PartialOrd, Ord)]
#[serde(rename_all = "lowercase")]
pub enum State {
    /// A fresh report, and nothing in it blocks the gate.
    Ready,
    /// A fresh report with a failing check the node's gate blocks on.
    Blocked,
    /// The last report is older than `--stale-after`.
    Stale,
    /// Managed, but no report ever reached SSM.
    Silent,
    /// SSM has lost the node (ConnectionLost, Inactive).
    Offline,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Blocked => "blocked",
            State::Stale => "stale",
            State::Silent => "silent",
            State::Offline => "offline",
        }
    }

    /// The states that count against the window task's error threshold:
    /// the node will fail its invocation or never take it.
    pub fn fails_the_task(self) -> bool {
        matches!(self, State::Blocked | State::Silent | State::Offline)
    }
}

/// One node's line in the view.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NodeView {
    pub instance_id: String,
    pub state: State,
    pub report_age_s: Option<u64>,
    /// How far ahead of the operator's clock the report is dated (the
    /// node's clock is ahead): judged by its content up to `--stale-after`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub clock_ahead_s: Option<u64>,
    /// The checks its report marks NON_COMPLIANT (empty when not looked up).
    pub failing: Vec<String>,
    pub ping: String,
    /// The soonest window whose patch task reaches it (null: none in the
    /// look-ahead, or the view could not tell).
    pub window: Option<String>,
}

/// What is known of a non-compliant node's items.
pub enum Detail<'a> {
    /// Its NON_COMPLIANT items.
    Items(&'a [Failing]),
    /// Not looked up (over `--max-detail`).
    NotLooked,
}

/// A node's state: offline first (it will not take the command whatever it
/// reported), then silent, stale, blocked, ready.
pub fn node_state(
    node: &Node,
    summary: Option<&Summary>,
    detail: Detail<'_>,
    now: SystemTime,
    stale_after: Duration,
) -> NodeView {
    let reported = summary.and_then(|s| s.reported_at);
    let age = reported.map(|t| now.duration_since(t).unwrap_or_default().as_secs());
    // A report dated ahead of now comes from a node whose clock is ahead:
    // its content is as good as a fresh one's until that lead itself
    // passes --stale-after.
    let ahead = reported
        .and_then(|t| t.duration_since(now).ok())
        .map(|d| d.as_secs())
        .filter(|&a| a > 0);
    let failing: Vec<String> = match &detail {
        Detail::Items(items) => items.iter().map(|f| f.check.clone()).collect(),
        Detail::NotLooked => Vec::new(),
    };
    let state = if matches!(node.ping.as_str(), "ConnectionLost" | "Inactive") {
        State::Offline
    } else if let Some(s) = summary {
        match age {
            Some(a)
                if a <= stale_after.as_secs() && ahead.unwrap_or(0) <= stale_after.as_secs() =>
            {
                if s.compliant {
                    State::Ready
                } else {
                    match detail {
                        // A report from before the Gate detail: a failure
                        // is what the default gate blocks on.
                        Detail::Items(items) => {
                            if items.iter().any(|f| f.blocks != Some(false)) {
                                State::Blocked
                            } else {
                                State::Ready
                            }
                        }
                        Detail::NotLooked => State::Blocked,
                    }
                }
            }
            _ => State::Stale,
        }
    } else {
        State::Silent
    };
    NodeView {
        instance_id: node.instance_id.clone(),
        state,
        report_age_s: age,
        clock_ahead_s: ahead,
        failing,
        ping: node.ping.clone(),
        window: None,
    }
}

/// How many nodes fall in each state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Counts {
    pub ready: usize,
    pub blocked: usize,
    pub stale: usize,
    pub silent: usize,
    pub offline: usize,
}

impl Counts {
    pub fn of(nodes: &[NodeView]) -> Counts {
        let mut c = Counts::default();
        for n in nodes {
            *match n.state {
                State::Ready => &mut c.ready,
                State::Blocked => &mut c.blocked,
                State::Stale => &mut c.stale,
                State::Silent => &mut c.silent,
                State::Offline => &mut c.offline,
            } += 1;
        }
        c
    }

    pub fn total(&self) -> usize {
        self.ready + self.blocked + self.stale + self.silent + self.offline
    }

    /// Nodes expected to fail the patch task.
    pub fn failing(&self) -> usize {
        self.blocked + self.silent + self.offline
    }
}

/// A MaxErrors or MaxConcurrency value: "10%" or "10".
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Amount {
    Percent(f64),
    Count(usize),
}

impl Amount {
    pub fn parse(text: &str) -> Option<Amount> {
        let t = text.trim();
        match t.strip_suffix('%') {
            Some(p) => p
                .trim()
                .parse::<f64>()
                .ok()
                .filter(|p| (0.0..=100.0).contains(p))
                .map(Amount::Percent),
            None => t.parse::<usize>().ok().map(Amount::Count),
        }
    }

    /// The amount for `total` targets, as SSM applies a percentage: the
    /// share of the targets, rounded down.
    pub fn of(self, total: usize) -> usize {
        match self {
            Amount::Count(n) => n,
            Amount::Percent(p) => ((p / 100.0) * total as f64).floor() as usize,
        }
    }
}

/// The verdict against the threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Well under the threshold.
    Ok,
    /// Not over, but a fifth of the allowance (at least one failure) from it.
    Close,
    /// Over: the rollout would stop.
    Crosses,
    /// The window's patch task only scans: no rollout to predict.
    Scan,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Close => "close",
            Verdict::Crosses => "crosses",
            Verdict::Scan => "scan",
        }
    }
}

/// A group's prediction.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Threshold {
    /// The limit as written: the window task's MaxErrors, or `--max-blocked`.
    pub limit: String,
    /// Where the limit comes from: "window task" or "--max-blocked".
    pub source: &'static str,
    /// Blocked + silent + offline, in percent of the group's nodes.
    pub share: f64,
    pub verdict: Verdict,
    /// How many errors the task tolerates before it stops.
    pub allowed_errors: usize,
    /// Nodes expected to fail.
    pub failing: usize,
    /// When it crosses: roughly how many nodes would have been started when
    /// the task stops.
    pub stops_after: Option<usize>,
}

/// Whether `failing` nodes are close to crossing `allowed` errors: some
/// fail, and at most a fifth of the allowance (at least one more failure)
/// would cross it. No failing node is never close, however small the
/// allowance: MaxErrors 0 with nothing failing is a clean rollout.
fn close(failing: usize, allowed: usize) -> bool {
    failing > 0 && allowed + 1 - failing <= (allowed / 5).max(1)
}

/// The prediction for a group of `counts` against `limit`, with the task's
/// concurrency when known.
pub fn threshold(
    counts: &Counts,
    limit: Amount,
    limit_text: &str,
    source: &'static str,
    concurrency: Option<Amount>,
) -> Threshold {
    let total = counts.total();
    let failing = counts.failing();
    let share = if total == 0 {
        0.0
    } else {
        100.0 * failing as f64 / total as f64
    };
    let allowed = limit.of(total);
    let verdict = if failing > allowed {
        Verdict::Crosses
    } else if close(failing, allowed) {
        Verdict::Close
    } else {
        Verdict::Ok
    };
    let stops_after =
        (verdict == Verdict::Crosses).then(|| stop_point(total, failing, allowed, concurrency));
    Threshold {
        limit: limit_text.to_string(),
        source,
        share: (share * 10.0).round() / 10.0,
        verdict,
        allowed_errors: allowed,
        failing,
        stops_after,
    }
}

/// Roughly how many nodes have been started when the (allowed + 1)th error
/// stops the task: with the failing nodes spread evenly through the
/// rollout, that error comes at about (allowed + 1)·(total + 1)/(failing + 1)
/// nodes, and the task has by then started every node of that batch.
fn stop_point(total: usize, failing: usize, allowed: usize, concurrency: Option<Amount>) -> usize {
    let at = ((allowed + 1) as f64 * (total + 1) as f64 / (failing + 1) as f64).ceil() as usize;
    let batch = concurrency.map(|c| c.of(total).max(1)).unwrap_or(1);
    (at.div_ceil(batch) * batch).clamp(1, total.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn node(ping: &str) -> Node {
        Node {
            instance_id: "i-0123456789abcdef0".into(),
            ping: ping.into(),
            last_ping: None,
        }
    }

    fn summary(compliant: bool, age: Duration, now: SystemTime) -> Summary {
        Summary {
            compliant,
            reported_at: Some(now - age),
        }
    }

    #[test]
    fn close_counts_in_nodes_and_never_with_none_failing() {
        // Issue #26 item 3: an absolute MaxErrors below 5 % of the group
        // made every clean rollout "close".
        let verdict = |(ok, failing): (usize, usize), limit: &str| {
            let amount = Amount::parse(limit).unwrap();
            threshold(
                &counts(ok, failing, 0, 0),
                amount,
                limit,
                "window task",
                None,
            )
            .verdict
        };
        assert_eq!(verdict((50, 0), "0"), Verdict::Ok);
        assert_eq!(
            verdict((49, 1), "1"),
            Verdict::Close,
            "one more failure crosses"
        );
        assert_eq!(verdict((48, 2), "1"), Verdict::Crosses);
        // 10 % of 100 allows 10: close from 9 failing (2 more cross), not at 8.
        assert_eq!(verdict((92, 8), "10%"), Verdict::Ok);
        assert_eq!(verdict((91, 9), "10%"), Verdict::Close);
        assert_eq!(verdict((90, 10), "10%"), Verdict::Close);
        assert_eq!(verdict((89, 11), "10%"), Verdict::Crosses);
    }

    #[test]
    fn each_node_falls_in_exactly_one_state() {
        let now = SystemTime::UNIX_EPOCH + 100 * DAY;
        let hour = Duration::from_secs(3600);
        let fresh_ok = summary(true, hour, now);
        let fresh_bad = summary(false, hour, now);
        let old = summary(true, 3 * DAY, now);
        let blocks = [Failing {
            check: "disk.var".into(),
            blocks: Some(true),
        }];
        let ignored = [Failing {
            check: "repo.reachable".into(),
            blocks: Some(false),
        }];
        let legacy = [Failing {
            check: "pkg.lock".into(),
            blocks: None,
        }];
        let cases: Vec<(&str, Option<&Summary>, Detail, State)> = vec![
            ("Online", Some(&fresh_ok), Detail::Items(&[]), State::Ready),
            (
                "Online",
                Some(&fresh_bad),
                Detail::Items(&blocks),
                State::Blocked,
            ),
            (
                "Online",
                Some(&fresh_bad),
                Detail::Items(&ignored),
                State::Ready,
            ),
            (
                "Online",
                Some(&fresh_bad),
                Detail::Items(&legacy),
                State::Blocked,
            ),
            (
                "Online",
                Some(&fresh_bad),
                Detail::NotLooked,
                State::Blocked,
            ),
            ("Online", Some(&old), Detail::Items(&[]), State::Stale),
            ("Online", None, Detail::Items(&[]), State::Silent),
            (
                "ConnectionLost",
                Some(&fresh_ok),
                Detail::Items(&[]),
                State::Offline,
            ),
            ("Inactive", None, Detail::Items(&[]), State::Offline),
        ];
        for (ping, s, detail, want) in cases {
            let got = node_state(&node(ping), s, detail, now, DAY);
            assert_eq!(got.state, want, "{ping} {s:?}");
        }
        let online = |s: &Summary, detail| node_state(&node("Online"), Some(s), detail, now, DAY);
        let view = online(&fresh_bad, Detail::Items(&blocks));
        assert_eq!(view.failing, vec!["disk.var"]);
        // Issue #26 item 4: a report 2 minutes ahead is judged by its
        // content; 3 days ahead (past --stale-after) it is stale.
        let ahead = summary(true, Duration::ZERO, now + Duration::from_secs(120));
        let v = online(&ahead, Detail::Items(&[]));
        assert_eq!((v.state, v.clock_ahead_s), (State::Ready, Some(120)));
        let blocked = summary(false, Duration::ZERO, now + Duration::from_secs(120));
        let v = online(&blocked, Detail::Items(&blocks));
        assert_eq!(v.state, State::Blocked);
        let far = summary(true, Duration::ZERO, now + 3 * DAY);
        let v = node_state(&node("Online"), Some(&far), Detail::Items(&[]), now, DAY);
        assert_eq!((v.state, v.clock_ahead_s), (State::Stale, Some(3 * 86_400)));
        assert_eq!(view.report_age_s, Some(3600));
    }

    fn counts(ready: usize, blocked: usize, silent: usize, offline: usize) -> Counts {
        Counts {
            ready,
            blocked,
            stale: 0,
            silent,
            offline,
        }
    }

    #[test]
    fn under_at_and_over_the_threshold() {
        let ten = Amount::parse("10%").unwrap();
        // 100 nodes, 10% allows 10 errors.
        let under = threshold(&counts(96, 4, 0, 0), ten, "10%", "window task", None);
        assert_eq!((under.verdict, under.allowed_errors), (Verdict::Ok, 10));
        // 6 failing of 10 allowed: 5 more failures would cross, more than a
        // fifth of the allowance, so not close (issue #26: close in nodes).
        let near = threshold(&counts(94, 3, 2, 1), ten, "10%", "window task", None);
        assert_eq!((near.verdict, near.share), (Verdict::Ok, 6.0));
        let at = threshold(&counts(90, 10, 0, 0), ten, "10%", "window task", None);
        assert_eq!(
            at.verdict,
            Verdict::Close,
            "10 errors of 10 allowed do not stop it"
        );
        let batched = |c: Counts, concurrency: &str| {
            threshold(&c, ten, "10%", "window task", Amount::parse(concurrency))
        };
        let over = batched(counts(89, 9, 1, 1), "25%");
        assert_eq!(over.verdict, Verdict::Crosses);
        assert_eq!(over.failing, 11);
        // The 11th failure comes at about 11·101/12 ≈ 93 nodes; batches of 25.
        assert_eq!(over.stops_after, Some(100));
        // 11·101/41 ≈ 28 → batches of 5 → 30.
        assert_eq!(batched(counts(60, 40, 0, 0), "5").stops_after, Some(30));
    }

    #[test]
    fn absolute_limits_and_empty_groups() {
        let three = Amount::parse("3").unwrap();
        let t = threshold(&counts(96, 4, 0, 0), three, "3", "window task", None);
        assert_eq!((t.verdict, t.allowed_errors), (Verdict::Crosses, 3));
        let none = threshold(
            &Counts::default(),
            Amount::Percent(10.0),
            "10%",
            "--max-blocked",
            None,
        );
        assert_eq!((none.verdict, none.share), (Verdict::Ok, 0.0));
        let zero = threshold(
            &counts(99, 1, 0, 0),
            Amount::parse("0").unwrap(),
            "0",
            "window task",
            None,
        );
        assert_eq!(zero.verdict, Verdict::Crosses);
    }

    #[test]
    fn amounts_parse_as_ssm_writes_them() {
        assert_eq!(Amount::parse("25%"), Some(Amount::Percent(25.0)));
        assert_eq!(Amount::parse("7"), Some(Amount::Count(7)));
        assert_eq!(Amount::parse("150%"), None);
        assert_eq!(Amount::parse("ten"), None);
        assert_eq!(Amount::Percent(10.0).of(57), 5);
    }
}
