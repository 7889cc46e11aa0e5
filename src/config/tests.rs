use super::*;
use crate::config::units::{Amount, ByteAmount};
use std::time::Duration;

fn dir_with(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
    }
    dir
}

fn load_in(dir: &tempfile::TempDir) -> Result<Loaded, ConfigError> {
    load(&dir.path().join("config.toml"), true)
}

fn invalid(err: ConfigError) -> (PathBuf, usize, Option<String>, String) {
    match err {
        ConfigError::Invalid {
            path,
            line,
            key,
            message,
            ..
        } => (path, line, key, message),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn no_files_means_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let loaded = load(&dir.path().join("config.toml"), false).unwrap();
    assert_eq!(loaded.settings, Settings::default());
    assert!(loaded.files.is_empty());
}

#[test]
fn an_explicit_config_that_is_missing_is_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(&dir.path().join("nope.toml"), true).unwrap_err();
    assert!(err.to_string().contains("nope.toml"), "{err}");
}

#[test]
fn dropins_win_in_lexical_order_key_by_key() {
    let dir = dir_with(&[
        (
            "config.toml",
            "mode = \"local\"\n[checks]\ntimeout = \"5s\"\ndisable = [\"reboot.pending\"]\n",
        ),
        ("config.d/20-late.toml", "[checks]\ntimeout = \"9s\"\n"),
        (
            "config.d/10-early.toml",
            "[checks]\ntimeout = \"7s\"\n\n[disk]\nwarn_below = \"4GiB\"\n",
        ),
    ]);
    let loaded = load_in(&dir).unwrap();
    let s = &loaded.settings;
    assert_eq!(s.mode, ModeSetting::Local);
    assert_eq!(s.checks.timeout, Duration::from_secs(9));
    assert_eq!(
        s.checks.disable,
        vec!["reboot.pending"],
        "a key no drop-in sets stays from the main file"
    );
    assert_eq!(
        s.disk.defaults.warn_below,
        ByteAmount(Amount::Absolute(4 << 30))
    );
    let origin = &loaded.origins["checks.timeout"];
    assert!(origin.path.ends_with("config.d/20-late.toml"));
    assert_eq!(origin.line, 2);
    assert!(loaded.origins["disk.warn_below"]
        .path
        .ends_with("10-early.toml"));
    assert_eq!(loaded.origins["disk.warn_below"].line, 5);
    assert!(loaded.origins["mode"].path.ends_with("config.toml"));
}

#[test]
fn an_unknown_key_names_file_line_and_the_allowed_keys() {
    let dir = dir_with(&[(
        "config.toml",
        "mode = \"auto\"\n\n[checks]\ntimeout = \"5s\"\ntimout = \"6s\"\n",
    )]);
    let (path, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert!(path.ends_with("config.toml"));
    assert_eq!(line, 5);
    assert_eq!(key.as_deref(), Some("checks.timout"));
    assert_eq!(
        message,
        "unknown key `timout` in [checks]; the keys allowed there are `timeout`, `disable`"
    );
}

#[test]
fn an_unknown_top_level_table() {
    let dir = dir_with(&[("config.toml", "[disks]\nwarn_below = \"1GiB\"\n")]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 1);
    assert!(
        message
            .starts_with("unknown key `disks` at the top level; the keys allowed there are `mode`"),
        "{message}"
    );
}

#[test]
fn a_bad_duration_says_what_to_write() {
    let dir = dir_with(&[(
        "config.toml",
        "[pkg_lock]\nstuck_after = \"30 minutes please\"\n",
    )]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("pkg_lock.stuck_after"));
    assert!(
        message.contains("is not a duration; write a number and a unit, such as \"90s\""),
        "{message}"
    );
}

#[test]
fn a_bad_size_and_a_wrong_type() {
    let dir = dir_with(&[(
        "config.toml",
        "[disk.paths.\"/boot\"]\nfail_below = \"lots\"\n",
    )]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("disk.paths./boot.fail_below"));
    assert!(message.contains("\"500MiB\""), "{message}");

    let dir = dir_with(&[("config.toml", "[checks]\ntimeout = 5\n")]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("checks.timeout"));
    assert!(
        message.contains("invalid type: integer `5`, expected a string"),
        "{message}"
    );
}

#[test]
fn an_error_inside_an_array_names_the_element() {
    let dir = dir_with(&[(
        "config.toml",
        "[[window]]\nname = \"a\"\nschedule = \"cron(0 2 ? * SUN#3 *)\"\n\n[[window]]\nname = \"b\"\nschedle = \"cron(0 2 ? * SUN#3 *)\"\n",
    )]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 7);
    assert_eq!(key.as_deref(), Some("window[1].schedle"));
    assert!(
        message
            .starts_with("unknown key `schedle` in [window[1]]; the keys allowed there are `name`"),
        "{message}"
    );

    let dir = dir_with(&[("config.toml", "[checks]\ndisable = [\"disk.var\", 7]\n")]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert_eq!(key.as_deref(), Some("checks.disable[1]"));
    assert!(message.contains("invalid type: integer `7`"), "{message}");
}

#[test]
fn a_bad_mode_lists_the_modes() {
    let dir = dir_with(&[("config.toml", "mode = \"cloud\"\n")]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 1);
    assert_eq!(
        message,
        "`mode` cannot be `cloud`; write one of `auto`, `ec2`, `hybrid`, `local`"
    );
}

#[test]
fn broken_toml_is_located() {
    let dir = dir_with(&[("config.toml", "mode = \"auto\"\n[checks\n")]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert!(message.starts_with("this is not valid TOML"), "{message}");
}

#[test]
fn an_error_in_a_dropin_names_the_dropin() {
    let dir = dir_with(&[
        ("config.toml", "mode = \"auto\"\n"),
        ("config.d/50-x.toml", "\n\nbogus = 1\n"),
    ]);
    let (path, line, _, _) = invalid(load_in(&dir).unwrap_err());
    assert!(path.ends_with("config.d/50-x.toml"));
    assert_eq!(line, 3);
}

#[test]
fn non_toml_files_in_config_d_are_refused() {
    for name in [
        "config.d/10-foo.yaml",
        "config.d/10-foo.toml~",
        "config.d/10-foo.toml.dpkg-old",
    ] {
        let dir = dir_with(&[("config.toml", ""), (name, "mode = \"local\"\n")]);
        let err = load_in(&dir).unwrap_err();
        let text = err.to_string();
        assert!(
            matches!(err, ConfigError::Placement { .. }),
            "{name}: {text}"
        );
        assert!(
            text.contains("only regular *.toml files are read"),
            "{text}"
        );
        assert!(text.contains("rename it to 10-foo.toml"), "{text}");
    }
}

#[test]
fn semantic_errors_point_at_the_key() {
    let dir = dir_with(&[(
        "config.toml",
        "[disk]\nwarn_below = \"1GiB\"\nfail_below = \"2GiB\"\n",
    )]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(key.as_deref(), Some("disk.fail_below"));
    assert_eq!(line, 3);
    assert!(message.contains("make fail_below the smaller"), "{message}");

    // Which checks exist is the registry's to say (run::load_config); the
    // config refuses what cannot be a check name at all.
    let dir = dir_with(&[("config.toml", "[checks]\ndisable = [\"Disk Var\"]\n")]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 2);
    assert!(
        message.contains("`Disk Var`, which is not a check name"),
        "{message}"
    );

    let dir = dir_with(&[("config.toml", "[checks]\ntimeout = \"0s\"\n")]);
    let (_, _, _, message) = invalid(load_in(&dir).unwrap_err());
    assert!(
        message.contains("write a duration from \"100ms\" to \"10m\""),
        "{message}"
    );

    let dir = dir_with(&[("config.toml", "[disk.paths.data]\nwarn_below = \"1GiB\"\n")]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 1);
    assert!(message.contains("not an absolute path"), "{message}");
}

#[test]
fn per_path_thresholds_fall_back_to_the_builtin_for_that_path() {
    let dir = dir_with(&[("config.toml", "[disk]\nwarn_below = \"5GiB\"\n[disk.paths.\"/boot\"]\nfail_below = \"50MiB\"\n[disk.paths.\"/data\"]\n")]);
    let s = load_in(&dir).unwrap().settings;
    let boot = s.disk.thresholds_for("/boot");
    assert_eq!(boot.fail_below, ByteAmount(Amount::Absolute(50 << 20)));
    assert_eq!(
        boot.warn_below,
        ByteAmount(Amount::Absolute(250 << 20)),
        "the built-in /boot floor, not [disk]'s 5GiB"
    );
    assert_eq!(
        s.disk.thresholds_for("/data").warn_below,
        ByteAmount(Amount::Absolute(5 << 30))
    );
    assert_eq!(s.disk.configured, vec!["/boot", "/data"]);
}

#[test]
fn the_shipped_example_config_is_valid() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("packaging/config.toml");
    validate_file(&path).unwrap();
}

#[test]
fn agent_settings_and_a_bad_minimum_version() {
    let dir = dir_with(&[(
        "config.toml",
        "[agent]\nmin_version = \"3.2.0\"\nflapping_window = \"30m\"\n",
    )]);
    let s = load_in(&dir).unwrap().settings;
    assert_eq!(s.agent.min_version, "3.2.0");
    assert_eq!(s.agent.flapping_window, Duration::from_secs(1800));

    let dir = dir_with(&[("config.toml", "[agent]\n\nmin_version = \"latest\"\n")]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 3);
    assert_eq!(key.as_deref(), Some("agent.min_version"));
    assert!(
        message.contains("write a dotted version such as \"3.0.502\""),
        "{message}"
    );
}

#[test]
fn windows_and_aws_sections_are_validated() {
    let dir = dir_with(&[(
        "config.toml",
        "mode = \"auto\"\n\n[[window]]\nname = \"prod\"\nschedule = \"cron(0 2 15 * SUN *)\"\n",
    )]);
    let (_, line, _, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!(line, 3, "the [[window]] table's line");
    assert!(
        message.starts_with("[[window]] number 1 (`prod`), `schedule`: day-of-month: one of day-of-month and day-of-week must be `?`"),
        "{message}"
    );

    let dir = dir_with(&[("config.toml", "[[window]]\nname = \"prod\"\nschedule = \"cron(0 2 ? * SUN#3 *)\"\ntimezone = \"Mars/Olympus\"\n")]);
    let (_, _, _, message) = invalid(load_in(&dir).unwrap_err());
    assert!(
        message.contains("`Mars/Olympus` is not an IANA time zone"),
        "{message}"
    );

    let dir = dir_with(&[("config.toml", "[[window]]\nname = \"prod\"\nschedule = \"cron(0 2 ? * SUN#3 *)\"\ntimezone = \"Europe/Paris\"\noffset_days = 2\n")]);
    let s = load_in(&dir).unwrap().settings;
    assert_eq!(s.window[0].offset_days, 2);

    let dir = dir_with(&[(
        "config.toml",
        "[endpoints.urls]\nssm = \"http://localhost:8080\"\n",
    )]);
    let (_, line, key, message) = invalid(load_in(&dir).unwrap_err());
    assert_eq!((line, key.as_deref()), (2, Some("endpoints.urls.ssm")));
    assert!(message.contains("is not an https:// URL"), "{message}");

    let dir = dir_with(&[("config.toml", "[aws]\nregion = \"EU West\"\n")]);
    let (_, _, _, message) = invalid(load_in(&dir).unwrap_err());
    assert!(
        message.contains("write a region code such as \"eu-west-1\""),
        "{message}"
    );
}

/// Every duration key, fed random values from nothing to ten thousand
/// years: each is taken within its range or refused with the range in the
/// message, never a panic (the planner's own property test takes what
/// passes here to its extremes).
#[test]
fn any_duration_is_in_range_or_refused() {
    let keys = [
        ("checks", "timeout"),
        ("pkg_lock", "stuck_after"),
        ("pkg_simulate", "timeout"),
        ("pkg_simulate", "stale_after"),
        ("agent", "flapping_window"),
        ("agent", "log_stale_after"),
        ("agent", "log_error_window"),
        ("aws", "attempt_timeout"),
        ("aws", "operation_timeout"),
        ("endpoints", "timeout"),
        ("repos", "timeout"),
        ("repos", "key_warn_before"),
        ("report", "jitter"),
        ("gate", "lock_wait"),
        ("daemon", "interval"),
        ("daemon", "schedule_cache"),
    ];
    let units = ["ms", "s", "m", "h", "d", "w", "y"];
    let mut rng = fastrand::Rng::with_seed(20261201);
    let (mut taken, mut refused) = (0, 0);
    for _ in 0..3000 {
        let (table, key) = keys[rng.usize(..keys.len())];
        let magnitude = match rng.u8(..4) {
            0 => rng.u64(..10),
            1 => rng.u64(..1000),
            2 => rng.u64(..1_000_000),
            _ => rng.u64(..u64::MAX / 2),
        };
        let value = format!("{magnitude}{}", units[rng.usize(..units.len())]);
        let lead = format!("{}{}", rng.u64(..100_000), units[rng.usize(..units.len())]);
        let text = if table == "daemon" {
            format!("[daemon]\n{key} = \"{value}\"\nlead_times = [\"{lead}\"]\n")
        } else {
            format!("[{table}]\n{key} = \"{value}\"\n[daemon]\nlead_times = [\"{lead}\"]\n")
        };
        let dir = dir_with(&[("config.toml", &text)]);
        match load_in(&dir) {
            Ok(loaded) => {
                taken += 1;
                let s = loaded.settings;
                assert!(s.daemon.interval <= Duration::from_secs(7 * 86_400));
                assert!(s
                    .daemon
                    .lead_times
                    .iter()
                    .all(|l| *l <= Duration::from_secs(7 * 86_400)));
                assert!(s.checks.timeout <= Duration::from_secs(600));
            }
            Err(ConfigError::Invalid { message, .. }) => {
                refused += 1;
                assert!(
                    message.contains("write a duration from")
                        || message.contains("is not a duration")
                        || message.contains("is shorter than"),
                    "{text}: {message}"
                );
            }
            Err(other) => panic!("{text}: {other}"),
        }
    }
    assert!(
        taken > 100 && refused > 100,
        "{taken} taken, {refused} refused"
    );
}
