//! Check selectors, as `--only`, `checks.disable` and `gate.checks` write
//! them: an exact ID (`pkg.lock`), a family (`disk` for every `disk.<name>`,
//! `endpoint` for every `endpoint.<service>`), one member of a family
//! (`endpoint.ssm`, `disk.boot`) or a group (`host`). The config checks the
//! syntax here; which names exist is the check registry's to say.

/// Whether a selector is written as one can be: lower-case letters, digits,
/// `-` and `_`, in dot-separated parts.
pub fn well_formed(selector: &str) -> bool {
    !selector.is_empty()
        && selector.split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        })
}

/// Checks renamed, old ID first: a config or a pipeline written for the
/// old name keeps selecting the check.
pub const RENAMED: &[(&str, &str)] = &[("window.targeted", "patch.sources")];

/// Whether `selector` names the check `id` of `group`: its exact ID (or
/// its old one), a family it belongs to (`disk` for `disk.var`), or its
/// group (`host`).
pub fn selects(selector: &str, id: &str, group: &str) -> bool {
    let selector = RENAMED
        .iter()
        .find(|(old, _)| *old == selector)
        .map_or(selector, |(_, new)| new);
    selector == id
        || selector == group
        || id
            .strip_prefix(selector)
            .is_some_and(|rest| rest.starts_with('.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_match_id_family_and_group() {
        assert!(selects("pkg.lock", "pkg.lock", "host"));
        assert!(selects("disk", "disk.var", "host"));
        assert!(selects("host", "disk.var", "host"));
        assert!(selects("endpoint.ssm", "endpoint.ssm", "network"));
        assert!(!selects("dis", "disk.var", "host"));
        assert!(!selects("pkg.lock", "pkg.state", "host"));
        assert!(!selects("endpoint.ssm", "endpoint.ssmmessages", "network"));
        assert!(selects("window.targeted", "patch.sources", "cloud"));
        assert!(!selects("window", "patch.sources", "cloud"));
    }

    #[test]
    fn well_formed_selectors() {
        for good in ["host", "disk.var-log", "endpoint.ssm", "agent.service"] {
            assert!(well_formed(good), "{good}");
        }
        for bad in [
            "",
            "disk.",
            ".disk",
            "Disk",
            "disk..var",
            "disk var",
            "disk.*",
        ] {
            assert!(!well_formed(bad), "{bad}");
        }
    }
}
