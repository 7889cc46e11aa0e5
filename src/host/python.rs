//! What `AWS-RunPatchBaseline`'s payload needs from the host's Python: the
//! interpreter (python3; yum hosts' yum is a Python 2 module), the package
//! manager's Python bindings, and `needs-restarting` where the reboot logic
//! calls it. A module counts as importable when its package directory,
//! module file or extension is in one of the interpreter's standard
//! site directories: reading the tree works under `--root` (a fixture, a
//! mounted image), where the host's interpreter could not import from it.

use super::{PackageManager, Root};
use std::time::Duration;

/// One Python module the payload imports, and whether it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Module {
    pub name: &'static str,
    /// The distribution package that provides it.
    pub package: &'static str,
    pub found: Option<String>,
}

/// An interpreter the payload runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    pub path: &'static str,
    /// `--version`'s answer, or why it did not run.
    pub runs: Result<String, String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prereqs {
    pub manager: Option<PackageManager>,
    /// The interpreter the payload needs; `None` when it is not installed.
    pub interpreter: Option<Interpreter>,
    /// Where it was looked for.
    pub interpreter_wanted: &'static [&'static str],
    pub modules: Vec<Module>,
    /// yum/dnf hosts: whether `needs-restarting` is installed.
    pub needs_restarting: Option<bool>,
}

const PYTHON3: &[&str] = &["/usr/bin/python3"];
/// Amazon Linux 2 and RHEL 7: yum runs on Python 2.
const PYTHON2: &[&str] = &["/usr/bin/python2", "/usr/bin/python"];

/// The site directories of a Python major version under `root`.
fn site_dirs(root: &Root, major: u8) -> Vec<String> {
    let mut dirs = Vec::new();
    if major == 3 {
        // Debian and Ubuntu put distribution modules here.
        dirs.push("/usr/lib/python3/dist-packages".to_string());
    }
    for lib in ["/usr/lib", "/usr/lib64", "/usr/local/lib"] {
        let Ok(entries) = std::fs::read_dir(root.path(lib)) else {
            continue;
        };
        let mut versions: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.starts_with(&format!("python{major}.")))
            .collect();
        versions.sort();
        for v in versions {
            dirs.push(format!("{lib}/{v}/site-packages"));
            dirs.push(format!("{lib}/{v}/dist-packages"));
        }
    }
    dirs
}

/// Where `module` is, if in one of `dirs`: a package, a module file or an
/// extension (`apt_pkg.cpython-311-x86_64-linux-gnu.so`).
fn find_module(root: &Root, dirs: &[String], module: &str) -> Option<String> {
    for dir in dirs {
        let package = format!("{dir}/{module}/__init__.py");
        if root.path(&package).is_file() {
            return Some(package);
        }
        let file = format!("{dir}/{module}.py");
        if root.path(&file).is_file() {
            return Some(file);
        }
        if let Ok(entries) = std::fs::read_dir(root.path(dir)) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.starts_with(&format!("{module}.")) && name.ends_with(".so") {
                    return Some(format!("{dir}/{name}"));
                }
            }
        }
    }
    None
}

pub fn gather(root: &Root, budget: Duration) -> Prereqs {
    let manager = PackageManager::detect(root);
    let (wanted, major, modules): (
        &'static [&'static str],
        u8,
        Vec<(&'static str, &'static str)>,
    ) = match manager {
        Some(PackageManager::Apt) => (
            PYTHON3,
            3,
            vec![("apt", "python3-apt"), ("apt_pkg", "python3-apt")],
        ),
        Some(PackageManager::Dnf) => (PYTHON3, 3, vec![("dnf", "python3-dnf")]),
        Some(PackageManager::Yum) => (PYTHON2, 2, vec![("yum", "yum"), ("rpm", "rpm-python")]),
        Some(PackageManager::Zypper) | None => (PYTHON3, 3, vec![]),
    };
    let interpreter = wanted
        .iter()
        .find(|p| root.path(p).is_file())
        .map(|&path| Interpreter {
            path,
            runs: super::agent::run_version(&root.path(path), budget)
                .map(|v| v.trim().to_string())
                .map_err(|e| e.to_string()),
        });
    let dirs = site_dirs(root, major);
    let modules = modules
        .into_iter()
        .map(|(name, package)| Module {
            name,
            package,
            found: find_module(root, &dirs, name),
        })
        .collect();
    let needs_restarting =
        matches!(manager, Some(PackageManager::Dnf | PackageManager::Yum)).then(|| {
            super::reboot::NEEDS_RESTARTING
                .iter()
                .any(|p| root.path(p).is_file())
        });
    Prereqs {
        manager,
        interpreter,
        interpreter_wanted: wanted,
        modules,
        needs_restarting,
    }
}
