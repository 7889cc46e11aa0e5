//! `reboot.pending`: last month's reboot still waiting. Debian and Ubuntu
//! write `/run/reboot-required` (and `.pkgs`); on rpm systems
//! `needs-restarting -r` exits 1; everywhere, a newer kernel installed than
//! the one running means a reboot is due.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::reboot::*;
use crate::host::version;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "reboot.pending",
    group: Group::Host,
    title: "Pending reboot",
    severity: Severity::Medium,
    members: None,
    doc: Doc {
        looks_at: "`/run/reboot-required` and `.pkgs`, the running kernel (`/proc/sys/kernel/osrelease`) against the newest in `/boot` and `/usr/lib/modules`, `needs-restarting -r` where installed",
        warns: "a reboot is pending (and why)",
        fails: "—",
        fix: "`sudo systemctl reboot` before the window",
        cannot_see: "no convention, no `needs-restarting`, no kernel to compare / `needs-restarting -r` fails or times out",
        reports: "`skip` / `warn` with what the kernel comparison said",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    // Leave needs-restarting a little less than the check's own timeout.
    let budget = ctx.settings.checks.timeout.mul_f32(0.8);
    crate::checks::blocking(ctx, &ENTRY, ENTRY.id, move || judge(&gather(&root, budget)))
}

pub fn judge(f: &Facts) -> Outcome {
    let mut reasons = Vec::new();
    let mut looked = Vec::new();
    if let Some(pkgs) = &f.reboot_required {
        let because = if pkgs.is_empty() {
            String::new()
        } else {
            let shown: Vec<&str> = pkgs.iter().take(5).map(String::as_str).collect();
            let more = pkgs.len().saturating_sub(5);
            let more = if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            };
            format!(" for {}{more}", shown.join(", "))
        };
        reasons.push(format!("{REBOOT_REQUIRED} asks for a reboot{because}"));
    } else if f.debian_family {
        looked.push(format!("no {REBOOT_REQUIRED}"));
    }
    let newest = f.installed_kernels.last();
    if let (Some(running), Some(newest)) = (&f.running_kernel, newest) {
        if version::compare(newest, running) == std::cmp::Ordering::Greater {
            reasons.push(format!(
                "kernel {running} is running but {newest} is installed"
            ));
        } else {
            looked.push(format!("running kernel {running} is the newest installed"));
        }
    }
    match &f.needs_restarting {
        NeedsRestarting::Said { reboot: true } => {
            reasons.push("`needs-restarting -r` says a reboot is needed".into())
        }
        NeedsRestarting::Said { reboot: false } => {
            looked.push("`needs-restarting -r` says none is needed".into())
        }
        _ => {}
    }
    let mut outcome = if !reasons.is_empty() {
        Outcome::warn(
            format!("a reboot is pending: {}", reasons.join("; ")),
            "Reboot before the window opens (`sudo systemctl reboot`) so the patch run starts from a clean state; until then Patch Manager reports this node as pending reboot.",
        )
    } else if let NeedsRestarting::Failed(why) = &f.needs_restarting {
        // needs-restarting is what sees a glibc or systemd update that
        // wants a reboot with the kernel unchanged: without its answer the
        // kernel comparison alone cannot say "none pending" (issue #17).
        let partial = if looked.is_empty() {
            String::new()
        } else {
            format!("; what could be read: {}", looked.join("; "))
        };
        Outcome::warn(
            format!("could not tell whether a reboot is pending: {why}{partial}"),
            "Run `sudo needs-restarting -r` and see why it does not answer; if it says a reboot is needed, reboot before the window (`sudo systemctl reboot`).",
        )
    } else if !looked.is_empty() {
        Outcome::pass(format!("no reboot is pending: {}", looked.join("; ")))
    } else {
        Outcome::skip(
            "nothing here tells whether a reboot is pending: no /run/reboot-required convention, no needs-restarting, and no installed kernel image to compare with the running one",
        )
    };
    if let Some(k) = &f.running_kernel {
        outcome = outcome.detail("running_kernel", k);
    }
    if let Some(k) = newest {
        outcome = outcome.detail("newest_installed_kernel", k);
    }
    if let NeedsRestarting::Failed(why) = &f.needs_restarting {
        outcome = outcome.detail("needs_restarting", why);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;

    fn facts() -> Facts {
        Facts {
            debian_family: true,
            reboot_required: None,
            running_kernel: Some("6.1.0-26-amd64".into()),
            installed_kernels: vec!["6.1.0-26-amd64".into()],
            needs_restarting: NeedsRestarting::NotInstalled,
        }
    }

    #[test]
    fn needs_restarting_that_fails_is_not_a_pass() {
        for why in [
            "needs-restarting -r did not answer within 4s",
            "needs-restarting -r exited with Some(2)",
        ] {
            let o = judge(&Facts {
                debian_family: false,
                needs_restarting: NeedsRestarting::Failed(why.into()),
                ..facts()
            });
            assert_eq!(o.status, Status::Warn, "{why}");
            assert!(o.summary.contains(why), "{}", o.summary);
            assert!(
                o.summary
                    .contains("running kernel 6.1.0-26-amd64 is the newest installed"),
                "the partial result is kept: {}",
                o.summary
            );
            assert!(o.remedy.unwrap().contains("sudo needs-restarting -r"));
        }
    }

    #[test]
    fn nothing_pending() {
        judge(&facts()).assert_says(
            Status::Pass,
            "running kernel 6.1.0-26-amd64 is the newest installed",
        );
    }

    #[test]
    fn reboot_required_with_packages() {
        let o = judge(&Facts {
            reboot_required: Some(vec!["linux-image-6.1.0-28-amd64".into()]),
            ..facts()
        });
        o.assert_says(Status::Warn, "for linux-image-6.1.0-28-amd64");
        assert!(o.remedy.unwrap().contains("sudo systemctl reboot"));
    }

    #[test]
    fn newer_kernel_installed() {
        judge(&Facts {
            installed_kernels: vec!["6.1.0-26-amd64".into(), "6.1.0-28-amd64".into()],
            ..facts()
        })
        .assert_says(
            Status::Warn,
            "kernel 6.1.0-26-amd64 is running but 6.1.0-28-amd64 is installed",
        );
    }

    #[test]
    fn needs_restarting_answers() {
        let rpm = Facts {
            debian_family: false,
            installed_kernels: vec![],
            needs_restarting: NeedsRestarting::Said { reboot: true },
            ..facts()
        };
        assert_eq!(judge(&rpm).status, Status::Warn);
        let rpm_ok = Facts {
            needs_restarting: NeedsRestarting::Said { reboot: false },
            ..rpm
        };
        assert_eq!(judge(&rpm_ok).status, Status::Pass);
    }

    #[test]
    fn no_signal_is_a_skip_not_a_pass() {
        let none = Facts {
            debian_family: false,
            installed_kernels: vec![],
            ..facts()
        };
        assert_eq!(judge(&none).status, Status::Skip);
    }
}
