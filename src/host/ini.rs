//! The INI shape yum, dnf and zypper share: `.repo` files and `dnf.conf` /
//! `yum.conf` (written here: a dozen lines, and the package managers' own
//! reading — `#`/`;` comments, indented continuation lines, keys folded to
//! lower case — is what a general INI crate would have to be taught).

use std::collections::BTreeMap;

/// An INI file's sections (`.repo`, `dnf.conf`), keys lowercased; an
/// indented line continues the key above.
pub fn ini_sections(text: &str) -> Vec<(String, BTreeMap<String, String>)> {
    let mut sections: Vec<(String, BTreeMap<String, String>)> = Vec::new();
    let mut last_key: Option<String> = None;
    for line in text.lines() {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
            continue;
        }
        if let Some(id) = trimmed.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            sections.push((id.to_string(), BTreeMap::new()));
            last_key = None;
            continue;
        }
        let Some((_, section)) = sections.last_mut() else {
            continue;
        };
        if line.starts_with(' ') || line.starts_with('\t') {
            // A continuation: more URLs for the key above.
            if let Some(k) = &last_key {
                let v = section.entry(k.clone()).or_default();
                v.push(' ');
                v.push_str(trimmed);
            }
            continue;
        }
        if let Some((k, v)) = trimmed.split_once('=') {
            let k = k.trim().to_ascii_lowercase();
            section.insert(k.clone(), v.trim().to_string());
            last_key = Some(k);
        }
    }
    sections
}
