//! The facts `pkg.lock`, `agent.service` and `disk.*` read about processes
//! and filesystems, two ways: this crate's own readers (`/proc/<pid>`,
//! statvfs on the paths a patch run writes to) against sysinfo. Each way
//! runs in a child process of its own, so the peak RSS it reports is its
//! own. Run with `cargo bench --bench proc_facts`; BENCHMARKS.md has the
//! figures and why the code reads /proc itself.

use std::process::{Command, Stdio};
use std::time::Instant;

const RUNS: u32 = 2000;

// The children are reaped by wait4, which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn main() {
    match std::env::args().nth(1).as_deref() {
        Some("ours") => ours(),
        Some("sysinfo") => with_sysinfo(),
        _ => {
            for way in ["ours", "sysinfo"] {
                let child = Command::new(std::env::current_exe().unwrap())
                    .arg(way)
                    .stdout(Stdio::inherit())
                    .spawn()
                    .unwrap();
                let mut status = 0;
                // SAFETY: rusage is plain data, filled by wait4 for our own child.
                let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
                let pid = child.id() as libc::pid_t;
                let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
                assert_eq!(rc, pid, "wait4");
                println!(
                    "{way:<8} peak RSS {:.1} MiB",
                    usage.ru_maxrss as f64 / 1024.0
                );
            }
        }
    }
}

fn per_call(label: &str, started: Instant) {
    println!(
        "{label:<48} {:>8.1} µs per call",
        started.elapsed().as_secs_f64() * 1e6 / f64::from(RUNS)
    );
}

fn ours() {
    let root = ssm_preflight::host::Root::default();
    let pid = std::process::id();
    let started = Instant::now();
    for _ in 0..RUNS {
        let info = ssm_preflight::host::process::info(&root, pid).expect("our own process");
        assert!(info.running_for.is_some());
    }
    per_call("ours: one process (command line, age)", started);
    let started = Instant::now();
    for _ in 0..RUNS {
        for path in ["/", "/var", "/tmp"] {
            ssm_preflight::host::disk::statvfs(std::path::Path::new(path)).unwrap();
        }
    }
    per_call("ours: statvfs of /, /var, /tmp", started);
}

fn with_sysinfo() {
    use sysinfo::{Disks, Pid, ProcessRefreshKind, ProcessesToUpdate, System, UpdateKind};
    let pid = Pid::from_u32(std::process::id());
    let mut system = System::new();
    let started = Instant::now();
    for _ in 0..RUNS {
        system.refresh_processes_specifics(
            ProcessesToUpdate::Some(&[pid]),
            true,
            ProcessRefreshKind::nothing().with_cmd(UpdateKind::Always),
        );
        let p = system.process(pid).expect("our own process");
        assert!(!p.cmd().is_empty() && p.start_time() > 0);
    }
    per_call("sysinfo: one process (command line, start)", started);
    let started = Instant::now();
    for _ in 0..RUNS {
        // sysinfo lists every mount and statvfs's each: there is no asking
        // for three paths, nor bounding a hung one.
        let disks = Disks::new_with_refreshed_list();
        assert!(!disks.list().is_empty());
    }
    per_call("sysinfo: every mounted filesystem", started);
}
