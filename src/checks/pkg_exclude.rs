//! `pkg.exclude`: packages yum/dnf hide from every transaction with
//! `exclude=`. Patch Manager decides what to install from the patch
//! baseline, not from this setting, so the two disagree about these
//! packages: the baseline's rejected patches are where a package is kept
//! back from patch runs (issue #27 item 4).

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::excludes::{self, Excludes};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "pkg.exclude",
    group: Group::Host,
    title: "Packages excluded from yum/dnf",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`exclude=` and `excludepkgs=` in `[main]` of `/etc/dnf/dnf.conf` (else `/etc/yum.conf`) and in each enabled repository of `/etc/yum.repos.d`",
        warns: "a pattern is excluded: Patch Manager's payload does not honour `exclude=`, the baseline's rejected patches do (each pattern named with its file and section)",
        fails: "—",
        fix: "add the packages to the patch baseline's rejected patches (`RejectedPatches`, `RejectedPatchesAction` `BLOCK`) to keep them back, or remove the `exclude=` line if they may be patched",
        cannot_see: "no yum/dnf configuration; which excluded packages have an update pending (pkg.simulate's plan with dnf names them) / a file this user may not read",
        reports: "`skip` / `warn` naming the file",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    crate::checks::blocking(ctx, &ENTRY, ENTRY.id, move || {
        judge(&excludes::gather(&root))
    })
}

pub fn judge(found: &Excludes) -> Outcome {
    if !found.configured {
        return Outcome::skip("no yum or dnf configuration here (/etc/dnf/dnf.conf, /etc/yum.conf, /etc/yum.repos.d), so nothing is excluded from them");
    }
    let unreadable = found.unreadable.join(", ");
    if found.found.is_empty() {
        if !found.unreadable.is_empty() {
            return Outcome::warn(
                format!("no exclude= in the files read, but {unreadable} could not be read"),
                "Run ssm-preflight as root (`sudo ssm-preflight check --only pkg.exclude`) so it can read every yum/dnf file.",
            );
        }
        return Outcome::pass("yum/dnf exclude no package (no exclude= or excludepkgs= in the main file or an enabled repository)");
    }
    let count: usize = found.found.iter().map(|e| e.patterns.len()).sum();
    let said: Vec<String> = found
        .found
        .iter()
        .map(|e| format!("{} ({} [{}])", e.patterns.join(" "), e.file, e.section))
        .collect();
    let mut outcome = Outcome::warn(
        format!(
            "{count} package pattern(s) are excluded from yum/dnf, which Patch Manager does not honour: {}{}",
            said.join("; "),
            if unreadable.is_empty() { String::new() } else { format!("; {unreadable} could not be read") }
        ),
        "To keep these packages back from patch runs, add them to the patch baseline's rejected patches (RejectedPatches, with RejectedPatchesAction BLOCK): the baseline, not exclude=, decides what Patch Manager installs and reports missing. If they may be patched, remove the exclude= line.",
    );
    for e in &found.found {
        outcome = outcome.detail(
            &format!("exclude.{}[{}]", e.file, e.section),
            e.patterns.join(" "),
        );
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::host::excludes::Exclude;

    #[test]
    fn excluded_patterns_warn_naming_file_and_section() {
        let none = Excludes {
            configured: true,
            ..Default::default()
        };
        assert_eq!(judge(&none).status, Status::Pass);
        assert_eq!(judge(&Excludes::default()).status, Status::Skip);
        let some = Excludes {
            configured: true,
            found: vec![Exclude {
                file: "/etc/dnf/dnf.conf".into(),
                section: "main".into(),
                patterns: vec!["kernel*".into(), "nginx".into()],
            }],
            unreadable: vec![],
        };
        let o = judge(&some);
        o.assert_says(
            Status::Warn,
            "2 package pattern(s) are excluded from yum/dnf, which Patch Manager does not honour: kernel* nginx (/etc/dnf/dnf.conf [main])",
        );
        assert!(o.remedy.unwrap().contains("RejectedPatchesAction BLOCK"));
        let unread = Excludes {
            configured: true,
            found: vec![],
            unreadable: vec!["/etc/yum.repos.d/x.repo (Permission denied)".into()],
        };
        judge(&unread).assert_says(
            Status::Warn,
            "/etc/yum.repos.d/x.repo (Permission denied) could not be read",
        );
    }
}
