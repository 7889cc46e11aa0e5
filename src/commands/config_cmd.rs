//! `ssm-preflight config show|validate`.

use super::cli::Global;
use super::options;
use crate::config::{self, Loaded};
use crate::run::load_config;
use std::io::Write;
use std::path::PathBuf;

pub fn config_show(global: &Global) -> anyhow::Result<u8> {
    let loaded = load_config(&options(global))?;
    let mut out = std::io::stdout().lock();
    if loaded.files.is_empty() {
        writeln!(
            out,
            "# no config file found; every value is a built-in default"
        )?;
    } else {
        writeln!(out, "# read, later files winning: {}", file_list(&loaded))?;
    }
    for (key, value) in config::effective_values(&loaded.settings) {
        let origin = origin_of(&loaded, &key);
        match value {
            Some(value) => writeln!(out, "{key} = {value}  # {origin}")?,
            None => writeln!(out, "# {key} is not set  # {origin}")?,
        }
    }
    Ok(0)
}

/// The files read, in the order they were applied.
fn file_list(loaded: &Loaded) -> String {
    let names: Vec<String> = loaded
        .files
        .iter()
        .map(|f| f.display().to_string())
        .collect();
    names.join(", ")
}

/// The file and line that set a key.
fn origin_of(loaded: &Loaded, key: &str) -> String {
    // A [[window]] entry's keys come from the file that set the list.
    let key = key.split('[').next().unwrap_or(key);
    match loaded.origins.get(key) {
        Some(o) => o.to_string(),
        None => "built-in default".to_string(),
    }
}

pub fn config_validate(global: &Global, path: Option<&PathBuf>) -> anyhow::Result<u8> {
    match path {
        Some(p) => {
            crate::run::validate_file(p)?;
            println!("{} is valid", p.display());
        }
        None => {
            let loaded = load_config(&options(global))?;
            if loaded.files.is_empty() {
                println!("no config file found; the built-in defaults apply");
            } else {
                println!("valid: {}", file_list(&loaded));
            }
        }
    }
    Ok(0)
}
