//! `/etc/os-release` (falling back to `/usr/lib/os-release`, as the format's
//! specification says). The format is a handful of shell-style assignments;
//! parsing it here keeps the root-directory parameter that a crate would not.

use super::{read_optional, Root};
use std::collections::HashMap;

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OsRelease {
    pub id: String,
    pub id_like: Vec<String>,
    pub version_id: String,
    pub pretty_name: String,
}

impl OsRelease {
    pub fn parse(text: &str) -> OsRelease {
        let mut fields = HashMap::new();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            fields.insert(key.trim().to_string(), unquote(value.trim()));
        }
        let get = |k: &str| fields.get(k).cloned().unwrap_or_default();
        let id = get("ID").to_ascii_lowercase();
        let version_id = get("VERSION_ID");
        let pretty_name = match get("PRETTY_NAME") {
            p if !p.is_empty() => p,
            _ => format!("{} {}", get("NAME"), version_id).trim().to_string(),
        };
        OsRelease {
            id,
            id_like: get("ID_LIKE")
                .split_whitespace()
                .map(str::to_string)
                .collect(),
            version_id,
            pretty_name,
        }
    }

    /// The first os-release found under `root`, with the path it came from.
    pub fn read(root: &Root) -> std::io::Result<Option<(OsRelease, String)>> {
        for path in ["/etc/os-release", "/usr/lib/os-release"] {
            // A FIFO is refused at once; a hung mount is bounded by the caller
            // (a check's timeout, or `host::within`).
            if let Some(text) = read_optional(&root.path(path))? {
                return Ok(Some((OsRelease::parse(&text), path.to_string())));
            }
        }
        Ok(None)
    }
}

fn unquote(value: &str) -> String {
    let inner = match value.as_bytes() {
        [b'"', .., b'"'] | [b'\'', .., b'\''] if value.len() >= 2 => &value[1..value.len() - 1],
        _ => value,
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(next) = chars.next() {
                out.push(next);
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_quoted_and_bare_values() {
        let os = OsRelease::parse(
            "NAME=\"Ubuntu\"\nVERSION_ID=\"22.04\"\nID=ubuntu\nID_LIKE=debian\nPRETTY_NAME=\"Ubuntu 22.04.4 LTS\"\n# comment\ngarbage line\n",
        );
        assert_eq!(os.id, "ubuntu");
        assert_eq!(os.version_id, "22.04");
        assert_eq!(os.id_like, vec!["debian"]);
        assert_eq!(os.pretty_name, "Ubuntu 22.04.4 LTS");
    }

    #[test]
    fn escapes_and_missing_pretty_name() {
        let os = OsRelease::parse("NAME='Foo \\\"Linux\\\"'\nID=Foo\nVERSION_ID=3\n");
        assert_eq!(os.id, "foo");
        assert_eq!(os.pretty_name, "Foo \"Linux\" 3");
    }
}
