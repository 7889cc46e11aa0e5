//! The checks reference, docs/checks.md, made from the registry: each
//! check's catalogue entry carries its own words (`Doc`). A suite test
//! fails when the committed file differs from what this makes; write it
//! again with `cargo run --example gen-docs -- --reference docs`.

use super::{catalogue, CatalogueEntry};

const INTRO: &str = r#"Every check is a small function of facts read from the host; a check that
cannot apply is `skip` with the reason, never `pass`. The agent and clock
checks ask systemd and timedated over the system D-Bus
(`DBUS_SYSTEM_BUS_ADDRESS` is honoured): with no bus at all (a container)
they are `skip`; a bus where systemd does not answer makes them `error`. Each runs concurrently
with the others under its own timeout (`checks.timeout`, default 5 s): a
check that hangs is reported as `error` and the run finishes anyway.

The checks come in groups (`--only agent`, `checks.disable = ["cloud"]`):
`agent`, `access` (credentials, clock), `network` (endpoints,
repositories), `host` (disk, locks, package state, reboot, OS, tag, the
patch payload's prerequisites) and `cloud` — how SSM and Patch Manager see
the node (`ssm.ping`, `patchgroup.baseline`, `patch.sources`,
`patch.last_run`), asked with the node's own credentials through one SSM
client per run; every permission they use is optional (see IAM). They,
like `agent.version`'s lookup of the region's newest agent, make their
calls beside their endpoint's probe (the one `endpoint.ssm` and
`endpoint.s3` report), not after it: a healthy endpoint adds no round trip,
and one that does not answer costs the run its probe's timeout once, the
checks saying so instead of waiting on their calls. `check -v` names the AWS side's
critical path: the slowest check off the host, the chain of dependent
requests the run waits for."#;

const CANNOT_LOOK: &str = r#"A check that could not see what it judges never says `pass`: it is `skip`
where the thing does not apply here, `warn` where part of it could not be
read (what was read is kept in its summary and `details`), and `error`
where it could not judge at all. An `error` is `NON_COMPLIANT` in SSM and
blocks the gate (`gate.block_on_error`, on by default). Every check past its
`checks.timeout` is `error`."#;

/// The ID as the reference shows it: `disk.<name>` for a family.
fn shown_id(entry: &CatalogueEntry) -> String {
    match entry.members {
        Some(members) => format!("`{}.{members}`", entry.id),
        None => format!("`{}`", entry.id),
    }
}

/// One table row: Markdown's column separator escaped in each cell.
fn row(cells: &[&str]) -> String {
    let cells: Vec<String> = cells.iter().map(|c| c.replace('|', "\\|")).collect();
    format!("| {} |\n", cells.join(" | "))
}

/// docs/checks.md, whole.
pub fn markdown() -> String {
    let mut out = String::from("# Checks\n\n<!-- Generated from the check registry (src/checks/); edit the entries there. -->\n\n");
    out.push_str(INTRO);
    out.push_str("\n\n| ID | group | looks at | warns when | fails when | how to fix |\n|---|---|---|---|---|---|\n");
    for e in catalogue() {
        let d = &e.doc;
        let id = shown_id(e);
        out.push_str(&row(&[
            &id,
            e.group.as_str(),
            d.looks_at,
            d.warns,
            d.fails,
            d.fix,
        ]));
    }
    out.push_str("\n## When a check cannot look\n\n");
    out.push_str(CANNOT_LOOK);
    out.push_str("\n\n| ID | what it cannot see | reports |\n|---|---|---|\n");
    for e in catalogue() {
        out.push_str(&row(&[&shown_id(e), e.doc.cannot_see, e.doc.reports]));
    }
    out
}
