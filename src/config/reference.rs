//! The configuration reference, docs/configuration.md: every key the
//! settings serialize (`effective_values`), its built-in default from
//! `Settings::default()`, and its meaning from `MEANINGS`. A key the
//! settings gain without a meaning here, or a meaning for no key, fails
//! `markdown`; a suite test compares the committed file with what this
//! makes (`cargo run --example gen-docs -- --reference docs` writes it).

use super::settings::{effective_values, Settings};

const INTRO: &str = r#"`/etc/ssm-preflight/config.toml`, then every `/etc/ssm-preflight/config.d/*.toml`
in lexical order; **a later file wins, key by key** (tables merge, a value or
an array replaces the earlier one). `--config PATH` replaces the main file,
and the drop-ins are then read from `config.d/` beside PATH. A missing main
file means built-in defaults (unless given with `--config`).

Mistakes are errors, never ignored: an unknown key, a wrong type, a bad
duration or size, or any file in `config.d/` that is not a regular `*.toml`
file (`10-foo.yaml`, `10-foo.toml~`, `10-foo.toml.dpkg-old`, a directory or
a FIFO named `10.toml`, a symlink loop — each told what it is) stops the run
with exit code 3 and a message naming the file, the line and the key, and
what to write. Hidden files (`.10-foo.toml.swp`, `.#50.toml`) are editors'
leftovers and are passed over. A `--config` that is not a regular file (a
FIFO, a directory) is refused before it is read:

```
$ ssm-preflight check
ssm-preflight: /etc/ssm-preflight/config.d/50-timeouts.toml:2:11: `checks.timeout`: `soon` is not a duration; write a number and a unit, such as "90s", "5m" or "1h 30m"
```

Durations are written `90s`, `5m`, `1h 30m`; sizes `500MiB`, `2GiB`; shares
`10%`. Every duration has a range (a typo such as `"10000y"` is refused with
the range in the message): `checks.timeout` 100 ms–10 min,
`endpoints.timeout` and `repos.timeout` 100 ms–5 min, `daemon.interval`,
`daemon.lead_times` (at most 10) and `daemon.schedule_cache` 1 min–7 days,
`report.jitter` 0–1 h, `pkg_simulate.timeout` 1 s–30 min,
`pkg_simulate.stale_after` 1 h–90 days, `repos.key_warn_before` 0–365 days, `pkg_lock.stuck_after` and `agent.flapping_window`
1 min–7 days, `agent.log_*` 1 min–90 days.

`ssm-preflight config show` prints every effective key — derived from the
settings themselves, so none is left out — with the file and line that set
it, or `built-in default`. `checks.disable` and `gate.checks` are checked
against the check registry: a name that is no check is refused at its line."#;

/// What each key means; a key ending a table (`disk.paths`) covers every
/// key below it.
const MEANINGS: &[(&str, &str)] = &[
    ("mode", "`auto`, `ec2`, `hybrid` or `local` (see Modes). `--mode` overrides it."),
    ("checks.timeout", "how long one check may take before it is reported as `error`"),
    ("checks.disable", "check IDs, families or groups not to run"),
    ("disk.warn_below", "free-space floor that warns, for every path without its own (size or `%`)"),
    ("disk.fail_below", "free-space floor that fails"),
    ("disk.inodes_warn_below", "free-inode floor that warns (a count or `%`)"),
    ("disk.inodes_fail_below", "free-inode floor that fails"),
    ("disk.paths", "the same four keys for one path; the path is then checked even if it is not a default one. Unset keys fall back to the built-in value for that path, then to `[disk]`. Where several checked paths share a filesystem, the strictest floor applies."),
    ("pkg_lock.stuck_after", "a lock holder running longer than this fails instead of warns"),
    ("pkg_simulate.timeout", "the package manager's dry run (`pkg.simulate`) is stopped after this"),
    ("pkg_simulate.stale_after", "package lists older than this make `pkg.simulate` warn: the simulation used old lists"),
    ("agent.min_version", "the oldest agent version that passes `agent.version`"),
    ("agent.flapping_window", "automatic restarts with the unit up for less than this count as flapping"),
    ("agent.log_stale_after", "an agent log not written for this long warns"),
    ("agent.log_error_window", "`ERROR` lines this recent are reported"),
    ("aws.region", "the region to probe and call, overriding the identity's; when unset, the region of the node's identity"),
    ("aws.imds_endpoint", "where IMDS is asked; when unset, `AWS_EC2_METADATA_SERVICE_ENDPOINT`, else `http://169.254.169.254`"),
    ("aws.credentials_file", "a hybrid node's agent credentials"),
    ("aws.profile", "the profile in that file"),
    ("aws.attempt_timeout", "one attempt of an SSM call: connecting, and each wait for the answer (1 s–5 min)"),
    ("aws.operation_timeout", "one SSM call with its retries (1 s–15 min; at least `aws.attempt_timeout`)"),
    ("endpoints.timeout", "one endpoint probe, DNS to HTTP answer"),
    ("endpoints.extra", "more services to probe, such as `\"kms\"`, `\"logs\"`, `\"monitoring\"`, `\"sts\"`"),
    ("endpoints.ca_bundle", "a PEM file trusted besides the system roots (a TLS-inspecting proxy's CA)"),
    ("endpoints.urls", "`endpoints.urls.<service>`: an `https://` URL for a service, such as a VPC endpoint's own DNS name; when unset, the regional name"),
    ("repos.timeout", "one repository's index"),
    ("repos.key_warn_before", "a repository signing key that expires within this makes `repo.signature` warn"),
    ("patch_group.value", "this node's Patch Group, overriding its tags"),
    ("report.jitter", "the daemon's reports start up to this long after a run is due, so a fleet with one window does not call SSM in the same second"),
    ("gate.checks", "the checks whose failure blocks the gate: IDs, families or groups; empty means every check"),
    ("gate.block_on_warn", "whether a warning blocks the gate too"),
    ("gate.block_on_error", "whether a check that could not look (`error`) blocks the gate"),
    ("gate.lock_wait", "how long the gate waits for a package-manager lock holder to finish before it blocks (0–30 min)"),
    ("daemon.interval", "the baseline run's period (each jittered by up to a tenth)"),
    ("daemon.lead_times", "runs this long before each window opens"),
    ("daemon.schedule_cache", "how long SSM's window schedule is used before it is asked again"),
    ("metrics.textfile", "a `.prom` file for node_exporter's textfile collector"),
    ("window", "`[[window]]` entries, each with `name`, `schedule`, `timezone`, `offset_days`, `duration`: a maintenance window this host belongs to: a name, a schedule expression, an IANA time zone (`\"UTC\"`), days after the cron date (0–6), how long it lasts (`\"4h\"`, 1–24 h)"),
    ("remediate.hold_updaters", "whether the daemon holds the host's updaters (apt-daily, dnf-automatic, …) off each known window: stopped and runtime-masked from `hold_before` ahead until the window ends (docs/remediation.md)"),
    ("remediate.hold_before", "the hold begins this long before each known window"),
    ("remediate.hold_max", "the hold lasts until the window ends (its real length when known), at most this"),
    ("remediate.updater_wait", "an updater already running when the hold begins is waited for this long, never stopped"),
    ("remediate.clean_package_cache", "whether the daemon runs the package manager's own clean command when a run finds the package cache's filesystem short (docs/remediation.md)"),
];

fn meaning(key: &str) -> Option<&'static str> {
    MEANINGS
        .iter()
        .find(|(k, _)| key == *k || key.starts_with(&format!("{k}.")))
        .map(|(_, m)| *m)
}

/// The settings and their meanings do not match.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum Drift {
    #[error("the setting `{0}` has no meaning in src/config/reference.rs (MEANINGS)")]
    NoMeaning(String),
    #[error("src/config/reference.rs explains `{0}`, which is no setting")]
    NoSetting(String),
}

/// docs/configuration.md, whole; an error names a key without a meaning,
/// or a meaning no key has.
pub fn markdown() -> Result<String, Drift> {
    let values = effective_values(&Settings::default());
    let mut rows: Vec<(String, String, &str)> = Vec::new();
    for (key, value) in &values {
        let meaning = meaning(key).ok_or_else(|| Drift::NoMeaning(key.clone()))?;
        let default = match value {
            Some(v) => format!("`{v}`"),
            None => "(unset)".to_string(),
        };
        // A table's keys share one meaning: shown as one row, defaults joined.
        let shown = MEANINGS
            .iter()
            .find(|(k, _)| key.starts_with(&format!("{k}.")))
            .map_or(key.clone(), |(k, _)| format!("{k}.*"));
        match rows.last_mut() {
            Some(last) if last.0 == shown => last.1.push_str(&format!("<br>`{key}` = {default}")),
            _ if shown != *key => rows.push((shown, format!("`{key}` = {default}"), meaning)),
            _ => rows.push((shown, default, meaning)),
        }
    }
    if let Some((unused, _)) = MEANINGS.iter().find(|(k, _)| {
        !values
            .iter()
            .any(|(key, _)| key == k || key.starts_with(&format!("{k}.")))
    }) {
        return Err(Drift::NoSetting(unused.to_string()));
    }
    let mut out = String::from("# Configuration\n\n<!-- Generated from the settings (src/config/); edit src/config/reference.rs. -->\n\n");
    out.push_str(INTRO);
    out.push_str("\n\n| key | default | meaning |\n|---|---|---|\n");
    for (key, default, meaning) in rows {
        out.push_str(&format!(
            "| `{key}` | {default} | {} |\n",
            meaning.replace('|', "\\|")
        ));
    }
    Ok(out)
}
