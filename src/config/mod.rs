//! Configuration: `/etc/ssm-preflight/config.toml`, then every
//! `config.d/*.toml` beside it in lexical order; a later file wins key by key.
//!
//! Three stages, each testable alone: one file → `RawConfig` (refuses unknown
//! keys and bad values, with file, line and column); the files merged as TOML
//! tables, remembering which file set each key; the merged table → validated
//! `Settings` with real types.

//!
//! A leaf: it imports nothing else of the crate. It owns what validating
//! the file needs — units, schedule expressions, the selector syntax, the
//! URLs it takes — and says nothing about which checks exist.

mod raw;
pub mod reference;
pub mod schedule;
pub mod selector;
mod settings;
pub mod units;
pub mod url;
mod validate;

pub use raw::ModeSetting;
pub use settings::{
    effective_values, invalid, AgentSettings, AwsSettings, ChecksSettings, DaemonSettings,
    DiskSettings, EndpointSettings, GateSettings, MetricsSettings, PatchGroupSettings,
    PkgLockSettings, RemediateSettings, ReportSettings, ReposSettings, Settings, Thresholds,
    WindowSettings,
};

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

pub const DEFAULT_CONFIG: &str = "/etc/ssm-preflight/config.toml";

/// A config problem, always naming the file and, where there is one, the line.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}:{line}:{column}: {message}", path.display())]
    Invalid {
        path: PathBuf,
        line: usize,
        column: usize,
        key: Option<String>,
        message: String,
    },
    #[error("{}: {message}", path.display())]
    Placement { path: PathBuf, message: String },
}

/// Where a setting's value came from, for `config show` and error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub path: PathBuf,
    pub line: usize,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// The effective settings and the file and line that set each key
/// (keys are dotted paths, as `config show` prints them).
#[derive(Debug)]
pub struct Loaded {
    pub settings: Settings,
    pub origins: BTreeMap<String, Origin>,
    pub files: Vec<PathBuf>,
}

/// Loads the main file (missing is fine unless `explicit`) and its `config.d`.
pub fn load(main: &Path, explicit: bool) -> Result<Loaded, ConfigError> {
    let mut files = Vec::new();
    match std::fs::metadata(main) {
        Ok(_) => files.push(main.to_path_buf()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !explicit => {}
        Err(source) => {
            return Err(ConfigError::Read {
                path: main.to_path_buf(),
                source,
            })
        }
    }
    let dropin_dir = main
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .join("config.d");
    files.extend(dropins(&dropin_dir)?);

    let mut merged = toml::Table::new();
    let mut origins = BTreeMap::new();
    for path in &files {
        let text = read_config_file(path)?;
        let table = parse_file(path, &text)?;
        merge(
            &mut merged,
            table.table,
            "",
            &table.lines,
            path,
            &mut origins,
        );
    }
    validated(merged, origins, files)
}

/// What a path is, in words, when it is not a regular file.
pub fn kind_of(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() || t.is_block_device() {
        "a device"
    } else {
        "not a regular file"
    }
}

/// Reads a config file, refusing anything but a regular file first: a FIFO
/// would block the read for as long as nobody writes to it.
fn read_config_file(path: &Path) -> Result<String, ConfigError> {
    let meta = std::fs::metadata(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if !meta.is_file() {
        return Err(ConfigError::Placement {
            path: path.to_path_buf(),
            message: format!(
                "this is {}, not a config file; point to a regular TOML file",
                kind_of(&meta)
            ),
        });
    }
    std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The `*.toml` files of a drop-in directory in lexical order. Anything else
/// in it is an error: a drop-in that is silently not read is worse than none.
/// Hidden files (`.10-foo.toml.swp`, `.#50.toml`) are editors' leftovers
/// and are passed over.
fn dropins(dir: &Path) -> Result<Vec<PathBuf>, ConfigError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(ConfigError::Read {
                path: dir.to_path_buf(),
                source,
            })
        }
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| ConfigError::Read {
            path: dir.to_path_buf(),
            source,
        })?;
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') {
            continue;
        }
        let is_toml = path.extension().is_some_and(|e| e == "toml");
        // `metadata` follows a link: a loop or a dangling link is an error
        // naming what it is, as is a directory or a FIFO with a good name.
        match std::fs::metadata(&path) {
            Err(e) => {
                return Err(ConfigError::Placement {
                    path,
                    message: format!("this drop-in cannot be opened ({e}); a symbolic link must point to a regular *.toml file"),
                })
            }
            Ok(meta) if is_toml && !meta.is_file() => {
                return Err(ConfigError::Placement {
                    path,
                    message: format!(
                        "this is {}, not a drop-in; only regular *.toml files are read from {}: remove it or move it out",
                        kind_of(&meta),
                        dir.display()
                    ),
                })
            }
            Ok(_) => {}
        }
        if !is_toml {
            let stem = name
                .split('.')
                .next()
                .filter(|s| !s.is_empty())
                .unwrap_or("50-local");
            return Err(ConfigError::Placement {
                path,
                message: format!(
                    "only regular *.toml files are read from {dir}; rename it to {stem}.toml if it is meant as a drop-in, or move it out of the directory",
                    dir = dir.display()
                ),
            });
        }
        files.push(path);
    }
    files.sort();
    Ok(files)
}

struct ParsedFile {
    table: toml::Table,
    /// The line each dotted key was written on.
    lines: BTreeMap<String, usize>,
}

/// Validates one file on its own, so an error names the file that has it.
fn parse_file(path: &Path, text: &str) -> Result<ParsedFile, ConfigError> {
    let invalid = |span: Option<std::ops::Range<usize>>, key: Option<String>, message: String| {
        let (line, column) = line_col(text, span.map(|s| s.start).unwrap_or(0));
        ConfigError::Invalid {
            path: path.to_path_buf(),
            line,
            column,
            key,
            message,
        }
    };
    let document = toml::de::DeTable::parse(text).map_err(|e| {
        invalid(
            e.span(),
            None,
            format!("this is not valid TOML: {}", e.message()),
        )
    })?;
    let mut lines = BTreeMap::new();
    record_lines(document.get_ref(), "", text, &mut lines);

    let deserializer = toml::Deserializer::from(document);
    if let Err(e) = <raw::RawConfig as serde::Deserialize>::deserialize(deserializer) {
        // The key an error is about is found from its span, not by
        // tracking the path through the deserializer (serde_path_to_error):
        // that wrapping was a quarter of a megabyte of the binary, mapped by
        // every run, for what the spans already say. The file is read into
        // spans again only here, on the way to an error.
        let document = toml::de::DeTable::parse(text).expect("parsed above");
        let mut entries = Vec::new();
        record_entries(document.get_ref(), "", &mut entries);
        let key = e.span().and_then(|span| key_at(&entries, span.start));
        let message = explain(key.as_deref().unwrap_or("."), e.message());
        return Err(invalid(e.span(), key, message));
    }
    let table: toml::Table = toml::from_str(text).expect("parsed above");
    Ok(ParsedFile { table, lines })
}

/// Turns serde's wording into a sentence that says what to write instead.
fn explain(key: &str, message: &str) -> String {
    if let Some(rest) = message.strip_prefix("unknown field ") {
        // "unknown field `foo`, expected one of `a`, `b`"
        let (field, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let place = match key.rsplit_once('.') {
            Some((parent, _)) => format!("in [{parent}]"),
            None => "at the top level".to_string(),
        };
        let expected = expected
            .trim_start_matches("one of ")
            .replace("` or `", "`, `");
        return format!("unknown key {field} {place}; the keys allowed there are {expected}");
    }
    if let Some(rest) = message.strip_prefix("unknown variant ") {
        let (value, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        let expected = expected
            .trim_start_matches("one of ")
            .replace("` or `", "`, `");
        return format!("`{key}` cannot be {value}; write one of {expected}");
    }
    format!("`{key}`: {message}")
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before
        .rfind('\n')
        .map_or(before.len(), |i| before.len() - i - 1)
        + 1;
    (line, column)
}

/// A key as `config show` writes it: bare when TOML allows, quoted otherwise.
pub fn key_segment(key: &str) -> String {
    let bare = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    if bare {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

fn join_key(prefix: &str, key: &str) -> String {
    if prefix.is_empty() {
        key_segment(key)
    } else {
        format!("{prefix}.{}", key_segment(key))
    }
}

fn record_lines(
    table: &toml::de::DeTable<'_>,
    prefix: &str,
    text: &str,
    out: &mut BTreeMap<String, usize>,
) {
    for (key, value) in table {
        let path = join_key(prefix, key.get_ref());
        out.insert(path.clone(), line_col(text, key.span().start).0);
        if let toml::de::DeValue::Table(inner) = value.get_ref() {
            record_lines(inner, &path, text, out);
        }
    }
}

/// Every key of a file with where its key and its value are: the dotted
/// path as serde names it (segments as written, `.` between them, `[i]`
/// for an array's element).
type Entry = (String, std::ops::Range<usize>, std::ops::Range<usize>);

fn record_entries(table: &toml::de::DeTable<'_>, prefix: &str, out: &mut Vec<Entry>) {
    for (key, value) in table {
        let path = if prefix.is_empty() {
            key.get_ref().to_string()
        } else {
            format!("{prefix}.{}", key.get_ref())
        };
        out.push((path.clone(), key.span(), value.span()));
        record_value(value.get_ref(), &path, out);
    }
}

fn record_value(value: &toml::de::DeValue<'_>, path: &str, out: &mut Vec<Entry>) {
    match value {
        toml::de::DeValue::Table(inner) => record_entries(inner, path, out),
        toml::de::DeValue::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                let path = format!("{path}[{i}]");
                out.push((path.clone(), item.span(), item.span()));
                record_value(item.get_ref(), &path, out);
            }
        }
        _ => {}
    }
}

/// The innermost key whose name or value holds `offset`.
fn key_at(entries: &[Entry], offset: usize) -> Option<String> {
    entries
        .iter()
        .filter_map(|(path, key, value)| {
            [key, value]
                .into_iter()
                .filter(|span| span.contains(&offset))
                .map(|span| (span.len(), path))
                .min()
        })
        .min()
        .map(|(_, path)| path.clone())
}

/// Merges one file's table into the accumulated one: tables merge key by
/// key, any other value (arrays included) replaces what was there.
fn merge(
    into: &mut toml::Table,
    from: toml::Table,
    prefix: &str,
    lines: &BTreeMap<String, usize>,
    path: &Path,
    origins: &mut BTreeMap<String, Origin>,
) {
    for (key, value) in from {
        let dotted = join_key(prefix, &key);
        match (into.get_mut(&key), value) {
            (Some(toml::Value::Table(existing)), toml::Value::Table(incoming)) => {
                merge(existing, incoming, &dotted, lines, path, origins);
            }
            (_, value) => {
                if let toml::Value::Table(t) = &value {
                    record_origins(t, &dotted, lines, path, origins);
                } else {
                    origins.insert(dotted.clone(), origin_of(&dotted, lines, path));
                }
                into.insert(key, value);
            }
        }
    }
}

/// Where `key` was set in `path`: its line, or the first.
fn origin_of(key: &str, lines: &BTreeMap<String, usize>, path: &Path) -> Origin {
    Origin {
        path: path.to_path_buf(),
        line: lines.get(key).copied().unwrap_or(1),
    }
}

fn record_origins(
    table: &toml::Table,
    prefix: &str,
    lines: &BTreeMap<String, usize>,
    path: &Path,
    origins: &mut BTreeMap<String, Origin>,
) {
    origins.insert(prefix.to_string(), origin_of(prefix, lines, path));
    for (key, value) in table {
        let dotted = join_key(prefix, key);
        if let toml::Value::Table(t) = value {
            record_origins(t, &dotted, lines, path, origins);
        } else {
            origins.insert(dotted.clone(), origin_of(&dotted, lines, path));
        }
    }
}

/// Checks one file alone, for `config validate`.
pub fn validate_file(path: &Path) -> Result<Loaded, ConfigError> {
    let text = read_config_file(path)?;
    let parsed = parse_file(path, &text)?;
    let mut origins = BTreeMap::new();
    let mut merged = toml::Table::new();
    merge(
        &mut merged,
        parsed.table,
        "",
        &parsed.lines,
        path,
        &mut origins,
    );
    validated(merged, origins, vec![path.to_path_buf()])
}

/// The last stage: the merged files, each already parsed and checked alone,
/// as validated settings.
fn validated(
    merged: toml::Table,
    origins: BTreeMap<String, Origin>,
    files: Vec<PathBuf>,
) -> Result<Loaded, ConfigError> {
    let raw: raw::RawConfig = toml::Value::Table(merged)
        .try_into()
        .expect("every file was validated alone, so the merge deserializes");
    let settings = Settings::from_raw(raw, &origins)?;
    Ok(Loaded {
        settings,
        origins,
        files,
    })
}

#[cfg(test)]
mod tests;
