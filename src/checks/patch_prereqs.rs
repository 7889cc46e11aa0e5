//! `patch.prereqs`: what `AWS-RunPatchBaseline`'s payload needs on the host
//! before it can patch: its Python interpreter, the package manager's Python
//! bindings (the payload's "Apt requires Python3" failure on a Debian host
//! without python3-apt), and `needs-restarting` on yum and dnf hosts.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::python::{self, Prereqs};
use crate::host::PackageManager;
use std::time::Duration;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "patch.prereqs",
    group: Group::Host,
    title: "Patch payload prerequisites",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "what `AWS-RunPatchBaseline`'s payload runs on: the interpreter (`/usr/bin/python3`; on yum hosts `python2`/`python`) and that `--version` answers; the package manager's Python bindings (apt: `apt` and `apt_pkg` from python3-apt; dnf: `dnf`; yum: `yum` and `rpm`), found in the interpreter's site directories; `needs-restarting` on yum and dnf hosts",
        warns: "—",
        fails: "any of them missing or the interpreter not running (the payload's \"Apt requires Python3\"): the summary names each, the remedy is one install command",
        fix: "`sudo apt-get install -y python3-apt`, `sudo dnf install -y python3-dnf dnf-utils`, …",
        cannot_see: "no package manager / an interpreter that does not answer `--version` in time",
        reports: "`skip` / `fail` (the payload could not run either)",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let root = ctx.root.clone();
    // Leave the interpreter a little less than the check's own timeout.
    let budget = ctx
        .settings
        .checks
        .timeout
        .saturating_sub(Duration::from_millis(500));
    crate::checks::blocking(ctx, &ENTRY, ENTRY.id, move || {
        judge(&python::gather(&root, budget))
    })
}

fn install(manager: Option<PackageManager>, packages: &[&str]) -> String {
    let list = packages.join(" ");
    match manager {
        Some(PackageManager::Apt) => format!("sudo apt-get install -y {list}"),
        Some(PackageManager::Dnf) => format!("sudo dnf install -y {list}"),
        Some(PackageManager::Yum) => format!("sudo yum install -y {list}"),
        Some(PackageManager::Zypper) => format!("sudo zypper install -y {list}"),
        None => format!("install {list}"),
    }
}

pub fn judge(p: &Prereqs) -> Outcome {
    let Some(manager) = p.manager else {
        return Outcome::skip(
            "no apt-get, dnf, yum or zypper here, so there is no patch payload to prepare for",
        );
    };
    let mut missing: Vec<String> = Vec::new();
    let mut packages: Vec<&str> = Vec::new();
    let mut found: Vec<String> = Vec::new();
    let interpreter_package = match manager {
        PackageManager::Yum => "python",
        _ => "python3",
    };
    match &p.interpreter {
        None => {
            missing.push(format!(
                "no Python interpreter at {}",
                p.interpreter_wanted.join(" or ")
            ));
            packages.push(interpreter_package);
        }
        Some(i) => match &i.runs {
            Ok(v) if v.is_empty() => found.push(format!("{} runs", i.path)),
            Ok(v) => found.push(format!("{} runs ({v})", i.path)),
            Err(why) => {
                missing.push(format!("{} does not run: {why}", i.path));
                packages.push(interpreter_package);
            }
        },
    }
    for m in &p.modules {
        match &m.found {
            Some(at) => found.push(format!("module {} ({at})", m.name)),
            None => {
                missing.push(format!("the Python module `{}` is not installed", m.name));
                if !packages.contains(&m.package) {
                    packages.push(m.package);
                }
            }
        }
    }
    match p.needs_restarting {
        Some(true) => found.push("needs-restarting".into()),
        Some(false) => {
            missing.push(
                "needs-restarting is not installed (the payload asks it whether to reboot)".into(),
            );
            packages.push(match manager {
                PackageManager::Dnf => "dnf-utils",
                _ => "yum-utils",
            });
        }
        None => {}
    }
    let outcome = if missing.is_empty() {
        Outcome::pass(format!(
            "the patch payload has what it needs: {}",
            found.join(", ")
        ))
    } else {
        Outcome::fail(
            format!(
                "the patch payload cannot run here: {}; AWS-RunPatchBaseline would fail before patching",
                missing.join("; ")
            ),
            format!("Install it: `{}`.", install(Some(manager), &packages)),
        )
    };
    let outcome = outcome.detail("package_manager", format!("{manager:?}").to_lowercase());
    match &p.interpreter {
        Some(i) => outcome.detail("interpreter", i.path),
        None => outcome,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::host::python::{Interpreter, Module};

    fn debian(apt: bool) -> Prereqs {
        Prereqs {
            manager: Some(PackageManager::Apt),
            interpreter: Some(Interpreter {
                path: "/usr/bin/python3",
                runs: Ok("Python 3.11.2".into()),
            }),
            interpreter_wanted: &["/usr/bin/python3"],
            modules: vec![
                Module {
                    name: "apt",
                    package: "python3-apt",
                    found: apt.then(|| "/usr/lib/python3/dist-packages/apt/__init__.py".into()),
                },
                Module {
                    name: "apt_pkg",
                    package: "python3-apt",
                    found: apt.then(|| "/usr/lib/python3/dist-packages/apt_pkg.so".into()),
                },
            ],
            needs_restarting: None,
        }
    }

    #[test]
    fn a_debian_host_with_python3_apt_passes() {
        let o = judge(&debian(true));
        assert_eq!(o.status, Status::Pass, "{o:?}");
        assert!(
            o.summary.contains("/usr/bin/python3 runs (Python 3.11.2)"),
            "{}",
            o.summary
        );
    }

    #[test]
    fn a_debian_host_without_python3_apt_fails_with_the_install_command() {
        let o = judge(&debian(false));
        o.assert_says(Status::Fail, "the Python module `apt` is not installed");
        assert_eq!(
            o.remedy.as_deref(),
            Some("Install it: `sudo apt-get install -y python3-apt`.")
        );
    }

    #[test]
    fn no_python_and_no_needs_restarting_on_a_dnf_host() {
        let p = Prereqs {
            manager: Some(PackageManager::Dnf),
            interpreter: None,
            interpreter_wanted: &["/usr/bin/python3"],
            modules: vec![Module {
                name: "dnf",
                package: "python3-dnf",
                found: None,
            }],
            needs_restarting: Some(false),
        };
        let o = judge(&p);
        o.assert_begins(
            Status::Fail,
            "the patch payload cannot run here: no Python interpreter at /usr/bin/python3",
        );
        assert_eq!(
            o.remedy.as_deref(),
            Some("Install it: `sudo dnf install -y python3 python3-dnf dnf-utils`.")
        );
    }

    #[test]
    fn an_interpreter_that_does_not_run_fails() {
        let mut p = debian(true);
        p.interpreter = Some(Interpreter {
            path: "/usr/bin/python3",
            runs: Err("`/usr/bin/python3 --version` did not answer within 4s".into()),
        });
        let o = judge(&p);
        o.assert_says(Status::Fail, "/usr/bin/python3 does not run");
    }

    #[test]
    fn no_package_manager_is_a_skip() {
        let p = Prereqs {
            manager: None,
            interpreter: None,
            interpreter_wanted: &["/usr/bin/python3"],
            modules: vec![],
            needs_restarting: None,
        };
        assert_eq!(judge(&p).status, Status::Skip);
    }

    #[test]
    fn modules_are_found_in_a_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = crate::host::Root::new(dir.path());
        std::fs::create_dir_all(dir.path().join("usr/bin")).unwrap();
        std::fs::write(dir.path().join("usr/bin/apt-get"), "").unwrap();
        let site = dir.path().join("usr/lib/python3/dist-packages");
        std::fs::create_dir_all(site.join("apt")).unwrap();
        std::fs::write(site.join("apt/__init__.py"), "").unwrap();
        std::fs::write(site.join("apt_pkg.cpython-311-x86_64-linux-gnu.so"), "").unwrap();
        let p = python::gather(&root, Duration::from_secs(2));
        assert_eq!(p.manager, Some(PackageManager::Apt));
        assert!(p.interpreter.is_none(), "no /usr/bin/python3 in the tree");
        assert_eq!(
            p.modules
                .iter()
                .map(|m| m.found.is_some())
                .collect::<Vec<_>>(),
            vec![true, true]
        );
        let o = judge(&p);
        assert_eq!(o.status, Status::Fail);
        assert_eq!(
            o.remedy.as_deref(),
            Some("Install it: `sudo apt-get install -y python3`.")
        );
    }
}
