//! Lays out the binary so that a short run touches few of its pages.
//!
//! A `check` runs about a thousand of the binary's 17,000 functions, spread
//! over all of its 8 MB of code; each page fault maps one 64 KiB window, so
//! the run faulted in most of the file. `packaging/hot-text.ld` (written by
//! `scripts/hot-text` from what the node's commands and service execute)
//! puts those functions in one `.text.hot` section ahead of the rest:
//! measured in BENCHMARKS.md ("Hot functions first"), a `check`'s peak RSS
//! falls by about 4 MiB and its faults by a tenth. The script only orders
//! sections (`INSERT BEFORE .text` keeps the linker's own layout), so a
//! stale list costs speed, never correctness. Both linkers the project uses
//! take it: rust-lld (`cargo build --release`, `cargo bench`) and the lld
//! inside `zig cc` that `packaging/build.sh` links with.

use std::env;
use std::path::Path;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=packaging/hot-text.ld");
    // Optimised builds only (release, dist, bench): the debug binary the
    // tests run is laid out for the debugger, not for page faults.
    let optimised = env::var("PROFILE").as_deref() == Ok("release");
    let elf = env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    if !(optimised && elf) {
        return;
    }
    let dir = env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let script = Path::new(&dir).join("packaging/hot-text.ld");
    let script = script.to_str().unwrap_or_default();
    // `-Wl,` splits its argument at commas.
    if script.is_empty() || script.contains(',') {
        println!("cargo:warning=not grouping hot functions: the path {script:?} cannot be passed through -Wl,");
        return;
    }
    println!("cargo:rustc-link-arg-bin=ssm-preflight=-Wl,-T,{script}");
}
