//! The layers hold: each module of `src/` imports only modules below it.
//!
//! ```text
//! commands → service | fleet → run → checks | daemon → facts → aws → network → host → config → text
//! ```
//!
//! Rooms that share a layer (`service` and `fleet`, `checks` and `daemon`)
//! never import each other; a module may use its own submodules freely.

use std::path::{Path, PathBuf};

/// A module's height: it may import only modules of a lower height.
fn height(module: &str) -> Option<u8> {
    Some(match module {
        "commands" => 80,
        "service" | "fleet" => 70,
        "run" => 60,
        "checks" | "daemon" => 50,
        "facts" => 40,
        "aws" => 30,
        "network" => 25,
        "host" => 20,
        "config" => 10,
        // Escaping text from outside: used by every room that prints.
        "text" => 5,
        _ => return None,
    })
}

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `checks` for src/checks/disk.rs,
/// `facts` for src/facts.rs; `None` for lib.rs and main.rs.
fn module_of(file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src()).unwrap();
    let first = rel.components().next()?.as_os_str().to_string_lossy();
    let name = first.trim_end_matches(".rs").to_string();
    (name != "lib" && name != "main").then_some(name)
}

/// Every `crate::<module>` a file names, with its line number, comments left out.
pub fn imports(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                // `use crate::{a, b::c}`: each item's first segment.
                let inner = group.split('}').next().unwrap_or("");
                for item in inner.split(',') {
                    let name: String = item
                        .trim()
                        .chars()
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push((n + 1, name));
                    }
                }
            } else {
                let name: String = after
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((n + 1, name));
                }
            }
            rest = &rest[at + "crate::".len()..];
        }
    }
    out
}

/// The imports of `files` that run against the layers, as messages.
pub fn violations(files: &[(String, PathBuf, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (module, path, text) in files {
        let Some(own) = height(module) else {
            bad.push(format!(
                "{}: the module `{module}` has no place in the layers; add it to tests/suite/architecture.rs",
                path.display()
            ));
            continue;
        };
        for (line, target) in imports(text) {
            if &target == module {
                continue;
            }
            match height(&target) {
                Some(h) if h < own => {}
                Some(_) => bad.push(format!(
                    "{}:{line}: `{module}` imports `crate::{target}`, which is not below it (commands → service|fleet → run → checks|daemon → facts → aws → network → host → config)",
                    path.display()
                )),
                None => bad.push(format!(
                    "{}:{line}: `crate::{target}` is no module of the layers",
                    path.display()
                )),
            }
        }
    }
    bad
}

#[test]
fn every_import_runs_down_the_layers() {
    let mut paths = Vec::new();
    rust_files(&src(), &mut paths);
    paths.sort();
    let files: Vec<(String, PathBuf, String)> = paths
        .into_iter()
        .filter_map(|p| {
            let module = module_of(&p)?;
            let text = std::fs::read_to_string(&p).unwrap();
            Some((module, p, text))
        })
        .collect();
    assert!(files.len() > 50, "read only {} files", files.len());
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "imports against the layers:\n{}",
        bad.join("\n")
    );
}

#[test]
fn a_back_import_is_caught_and_named() {
    let files = vec![
        (
            "config".to_string(),
            PathBuf::from("src/config/settings.rs"),
            "use crate::checks::is_known_selector;\n// crate::run in a comment is fine\n"
                .to_string(),
        ),
        (
            "checks".to_string(),
            PathBuf::from("src/checks/clock.rs"),
            "use crate::{facts::Context, daemon::timer};\nuse crate::config::units;\n".to_string(),
        ),
        (
            "daemon".to_string(),
            PathBuf::from("src/daemon/mod.rs"),
            "use crate::daemon::machine;\n".to_string(),
        ),
        (
            "fleet".to_string(),
            PathBuf::from("src/fleet/mod.rs"),
            "use crate::service::socket;\nuse crate::aws::sdk;\n".to_string(),
        ),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 3, "{bad:#?}");
    assert!(bad[0].starts_with("src/config/settings.rs:1: `config` imports `crate::checks`"));
    assert!(bad[1].starts_with("src/checks/clock.rs:1: `checks` imports `crate::daemon`"));
    assert!(bad[2].starts_with("src/fleet/mod.rs:1: `fleet` imports `crate::service`"));
}
