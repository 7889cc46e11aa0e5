//! The references made from the code are the ones committed: docs/checks.md
//! from the check registry, docs/configuration.md from the settings.

use std::path::Path;

fn committed(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

const WRITE_AGAIN: &str =
    "write it again with `cargo run --example gen-docs -- --reference docs` and commit it";

#[test]
fn the_checks_reference_is_the_registry_s() {
    let made = ssm_preflight::checks::reference::markdown();
    assert!(made.contains("| `disk.<name>` | host |"), "{made}");
    assert!(
        committed("checks.md") == made,
        "docs/checks.md differs from the check registry: {WRITE_AGAIN}"
    );
}

#[test]
fn the_configuration_reference_covers_every_setting() {
    let made = ssm_preflight::config::reference::markdown().expect("every setting has a meaning");
    assert!(made.contains("| `checks.timeout` | `\"5s\"` |"), "{made}");
    assert!(
        committed("configuration.md") == made,
        "docs/configuration.md differs from the settings: {WRITE_AGAIN}"
    );
}
