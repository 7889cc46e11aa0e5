//! Golden outputs, in the zram-generator way: for each fixture root, the
//! `check --json` report (times and durations masked) must equal the
//! `expected.json` beside the fixture. A mismatch prints both. To accept a
//! deliberate change: `SSM_PREFLIGHT_BLESS=1 cargo test golden`, then read
//! the diff before committing it.

use crate::common;

/// The fixtures whose whole report is pinned (local mode, no bus).
const CASES: &[&str] = &[
    "debian12-clean",
    "dpkg-held",
    "dpkg-installing",
    "dpkg-interrupted",
    "dpkg-stuck",
    "apt-daily-flock",
    "empty",
    "malformed",
    "needs-restarting",
    "noexec",
    "reboot-required",
    "yum-dead",
    "zypper-held",
];

/// The report with what changes from run to run masked.
fn masked(json: &str) -> serde_json::Value {
    let mut v: serde_json::Value = serde_json::from_str(json).expect("check --json prints JSON");
    v["started_at"] = "<masked>".into();
    v["duration_ms"] = 0.into();
    for c in v["checks"].as_array_mut().expect("a checks array") {
        c["duration_ms"] = 0.into();
    }
    v
}

#[test]
fn each_fixture_root_gives_its_expected_report() {
    let bless = std::env::var_os("SSM_PREFLIGHT_BLESS").is_some();
    let mut mismatches = Vec::new();
    for case in CASES {
        let root = common::fixture_root(case);
        // disk.* judges the test machine's own free space; its verdicts are
        // pinned by unit tests on fixed figures instead.
        let config = root.path().join("golden.toml");
        std::fs::write(&config, "[checks]\ndisable = [\"disk\"]\n").unwrap();
        let out = common::run_with_config(
            root.path(),
            &config,
            &["check", "--json", "--mode", "local"],
        );
        assert!(
            out.status.code().is_some_and(|c| c <= 2),
            "{case}: exit {:?}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8_lossy(&out.stdout)
            .replace(&root.path().display().to_string(), "<root>");
        let got = masked(&text);
        let expected_path = common::fixtures().join(case).join("expected.json");
        if bless {
            let pretty = serde_json::to_string_pretty(&got).unwrap();
            std::fs::write(&expected_path, pretty + "\n").unwrap();
            continue;
        }
        let expected: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(&expected_path)
                .unwrap_or_else(|e| panic!("{}: {e}", expected_path.display())),
        )
        .unwrap();
        if got != expected {
            mismatches.push(format!(
                "{case}: the report differs from {}\n--- expected\n{}\n--- got\n{}",
                expected_path.display(),
                serde_json::to_string_pretty(&expected).unwrap(),
                serde_json::to_string_pretty(&got).unwrap()
            ));
        }
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n\n"));
}
