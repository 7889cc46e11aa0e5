//! `disk.<name>`: free bytes and inodes on each filesystem a patch run
//! writes to, one result per distinct filesystem, named after its mount point
//! (`disk.root`, `disk.var`, `disk.boot`); and `noexec` on /var/lib/amazon,
//! where the agent runs the scripts of `AWS-RunPatchBaseline`.

use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity, Status};
use crate::config::units::{format_bytes, format_count, Amount};
use crate::config::Thresholds;
use crate::host::disk::{self, name_for, Figures, Filesystem, DEFAULT_PATHS};
use crate::host::PackageManager;
use std::collections::BTreeMap;
use std::time::Duration;

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "disk",
    group: Group::Host,
    title: "Free disk space and inodes",
    severity: Severity::Critical,
    members: Some("<name>"),
    doc: Doc {
        looks_at: "free bytes (what an unprivileged writer may use) and free inodes of each distinct filesystem among `/`, `/var`, `/var/cache/{apt,dnf,yum}`, `/var/lib/amazon`, `/var/lib/amazon/ssm`, `/var/log/amazon/ssm`, `/boot`, `/tmp` and `[disk.paths]`, those that exist; one result per filesystem, named after its mount point (`disk.root`, `disk.var`, `disk.boot`); mount options from `/proc/self/mountinfo`",
        warns: "free space below `warn_below` (2 GiB; /boot 250 MiB) or free inodes below `inodes_warn_below` (10 %); a `[disk.paths]` path that does not exist",
        fails: "free space below `fail_below` (500 MiB; /boot 120 MiB), free inodes below `inodes_fail_below` (2 %), or `/var/lib/amazon` on a `noexec` mount (the agent runs the patch scripts from there)",
        fix: "the package manager's clean command, `journalctl --vacuum-size`, `du` to find what is large; old kernels removed from /boot; `mount -o remount,exec`",
        cannot_see: "`statfs` fails or hangs / `/proc/self/mountinfo` unreadable where `/var/lib/amazon` is",
        reports: "`error` / `warn`: `noexec` unknown, with the `findmnt` command",
    },
};

/// How long one path's lookup may take before its mount counts as hung: a
/// local or healthy network filesystem answers in microseconds.
const LOOKUP_BUDGET: Duration = Duration::from_secs(1);

/// Where the agent keeps and runs the patch documents' scripts.
const AGENT_EXEC_DIR: &str = "/var/lib/amazon";

pub fn plan(ctx: &Context) -> Vec<super::Check> {
    let root = &ctx.root;
    let configured = &ctx.settings.disk.configured;
    let candidates: Vec<String> = DEFAULT_PATHS
        .iter()
        .map(|p| p.to_string())
        .chain(configured.iter().cloned())
        .collect();
    // Each lookup is bounded: a hung network or FUSE mount must not hang
    // the plan, which runs before any check's own timeout starts.
    let budget = LOOKUP_BUDGET.min(ctx.settings.checks.timeout / 4);
    let layout = disk::layout(root, &candidates, configured, budget);
    let mut checks = Vec::new();
    for blocked in layout.hung {
        let id = format!("disk.{}", name_for(&blocked.mount_point));
        checks.push(crate::checks::blocking(ctx, &ENTRY, id, move || {
            let mp = &blocked.mount_point;
            Outcome::error(
                blocked.to_string(),
                format!("The filesystem at {mp} does not answer, and a patch run that touches it will hang: check it with `timeout 5 df -h {mp}` and `mount | grep ' {mp} '`, then remount or unmount it before the window."),
            )
            .detail("mount_point", mp)
        }));
    }
    let pm = PackageManager::detect(root);
    for fs in layout.filesystems {
        let settings = ctx.settings.clone();
        let root = root.clone();
        let id = format!("disk.{}", fs.name);
        let hint = format!(
            "statfs on {}{} did not answer, so the filesystem is hung (a dead NFS or FUSE server?); check it with `timeout 5 df -h {}`",
            fs.mount_point,
            fs.fs_type.as_deref().map(|t| format!(" ({t})")).unwrap_or_default(),
            fs.mount_point
        );
        let mut check = crate::checks::blocking(ctx, &ENTRY, id, move || {
            let first = root.path(&fs.paths[0]);
            match disk::statvfs(&first) {
                Ok(figures) => {
                    let thresholds: Vec<(String, Thresholds)> = fs
                        .paths
                        .iter()
                        .map(|p| (p.clone(), settings.disk.thresholds_for(p)))
                        .collect();
                    judge(&fs, figures, &thresholds, pm)
                }
                Err(e) => Outcome::error(
                    format!("cannot read the free space of {}: {e}", fs.mount_point),
                    format!(
                        "Check that {} is mounted and answers: `timeout 5 df -h {}`.",
                        fs.mount_point, fs.mount_point
                    ),
                ),
            }
        });
        // statfs answers at once or hangs: the engine's timeout ends it,
        // and the hint names the mount.
        check.info.timeout_hint = Some(hint);
        checks.push(check);
    }
    for path in layout.missing {
        let id = format!("disk.{}", name_for(&path));
        checks.push(crate::checks::blocking(ctx, &ENTRY, id, move || {
            Outcome::warn(
                format!("{path} is listed in [disk.paths] but does not exist on this host"),
                format!("Create {path}, or remove `[disk.paths.\"{path}\"]` from the ssm-preflight config."),
            )
        }));
    }
    checks
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// A free amount against its two floors.
struct Floors {
    free: u64,
    warn: u64,
    fail: u64,
}

/// The strictest floors the paths on one filesystem ask for, with the
/// path that asks for the failure floor (whose remedy is given).
fn strictest(
    thresholds: &[(String, Thresholds)],
    pick: fn(&Thresholds) -> (Amount, Amount),
    free: u64,
    total: u64,
) -> (Floors, &str) {
    let resolved = |floor: fn((Amount, Amount)) -> Amount| {
        thresholds
            .iter()
            .map(|(p, t)| (floor(pick(t)).resolve(total), p.as_str()))
            .max()
            .unwrap_or((0, "/"))
    };
    let (warn, _) = resolved(|(warn, _)| warn);
    let (fail, fail_path) = resolved(|(_, fail)| fail);
    (Floors { free, warn, fail }, fail_path)
}

impl Floors {
    /// A path's (warning, failure) floors for bytes.
    fn bytes(t: &Thresholds) -> (Amount, Amount) {
        (t.warn_below.0, t.fail_below.0)
    }

    /// A path's (warning, failure) floors for inodes.
    fn inodes(t: &Thresholds) -> (Amount, Amount) {
        (t.inodes_warn_below.0, t.inodes_fail_below.0)
    }

    /// The verdict, its word and the floor crossed; `None` above both.
    fn judge(&self) -> Option<(Status, &'static str, u64)> {
        if self.free < self.fail {
            Some((Status::Fail, "failure", self.fail))
        } else if self.free < self.warn {
            Some((Status::Warn, "warning", self.warn))
        } else {
            None
        }
    }
}

/// The verdict for one filesystem. Several paths on one filesystem each
/// bring their thresholds; the strictest applies.
pub fn judge(
    fs: &Filesystem,
    f: Figures,
    thresholds: &[(String, Thresholds)],
    pm: Option<PackageManager>,
) -> Outcome {
    let (bytes, fail_bytes_path) =
        strictest(thresholds, Floors::bytes, f.bytes_free, f.bytes_total);
    let (inodes, _) = strictest(thresholds, Floors::inodes, f.inodes_free, f.inodes_total);
    let (warn_bytes, fail_bytes) = (bytes.warn, bytes.fail);
    let mp = &fs.mount_point;
    let bytes_pct = percent(f.bytes_free, f.bytes_total);
    let inodes_pct = percent(f.inodes_free, f.inodes_total);
    let bytes_text = format!("{} free ({bytes_pct:.0}%)", format_bytes(f.bytes_free));
    let inodes_text = format!(
        "{} inodes free ({inodes_pct:.0}%)",
        format_count(f.inodes_free)
    );

    let mut found = Found::default();
    // Bytes and inodes are judged alike: below the failure floor fails,
    // below the warning floor warns. A filesystem without an inode limit
    // (btrfs, some network filesystems: zero total) has no inode verdict.
    if let Some((verdict, word, floor)) = bytes.judge() {
        found.add(
            verdict,
            format!(
                "{mp} has {bytes_text}, below the {word} floor of {}",
                format_bytes(floor)
            ),
            space_remedy(fs, fail_bytes_path, pm),
        );
    }
    if let Some((verdict, word, floor)) = inodes.judge().filter(|_| f.inodes_total > 0) {
        found.add(
            verdict,
            format!(
                "{mp} has {inodes_text}, below the {word} floor of {}",
                format_count(floor)
            ),
            format!(
                "Find the directories with the most files: `sudo du --inodes -x {mp} 2>/dev/null | sort -n | tail`, then delete what is not needed (old logs, caches, session files)."
            ),
        );
    }
    noexec(fs, &bytes_text, &mut found);

    let summary = if found.problems.is_empty() {
        let inodes = if f.inodes_total == 0 {
            "no inode limit".to_string()
        } else {
            inodes_text.clone()
        };
        format!("{mp} has {bytes_text} and {inodes}")
    } else {
        found.problems.join("; ")
    };
    let outcome = match found.status {
        Status::Pass => Outcome::pass(summary),
        status => Outcome {
            status,
            summary,
            remedy: Some(found.remedies.join(" ")),
            details: BTreeMap::new(),
        },
    };
    with_figures(outcome, fs, f, (warn_bytes, fail_bytes))
}

/// The problems found on one filesystem, their remedies and the worst verdict.
struct Found {
    status: Status,
    problems: Vec<String>,
    remedies: Vec<String>,
}

impl Default for Found {
    fn default() -> Self {
        Found {
            status: Status::Pass,
            problems: Vec::new(),
            remedies: Vec::new(),
        }
    }
}

impl Found {
    fn add(&mut self, verdict: Status, problem: String, remedy: String) {
        self.status = worst(self.status, verdict);
        self.problems.push(problem);
        self.remedies.push(remedy);
    }
}

/// The agent's working directory on a noexec mount: it cannot run the
/// patch scripts it downloads there.
fn noexec(fs: &Filesystem, bytes_text: &str, found: &mut Found) {
    let mp = &fs.mount_point;
    let holds_agent_dir = fs
        .paths
        .iter()
        .any(|p| p.as_str() == AGENT_EXEC_DIR || p.starts_with(&format!("{AGENT_EXEC_DIR}/")));
    if !holds_agent_dir {
        return;
    }
    match fs.noexec {
        Some(true) => found.add(
            Status::Fail,
            format!("{AGENT_EXEC_DIR} is on {mp}, which is mounted noexec, so the agent cannot run the patch scripts it downloads there"),
            format!("Remove `noexec` from the options of {mp} in /etc/fstab and run `sudo mount -o remount,exec {mp}`, or mount {AGENT_EXEC_DIR} from a filesystem that allows execution."),
        ),
        None => found.add(
            Status::Warn,
            format!("{mp} has {bytes_text}, but whether {AGENT_EXEC_DIR} is mounted noexec could not be told: /proc/self/mountinfo could not be read"),
            format!("Check the options with `findmnt -no OPTIONS --target {AGENT_EXEC_DIR}`: they must not include noexec, or the agent cannot run the patch scripts."),
        ),
        Some(false) => {}
    }
}

/// The figures behind the verdict, in the details.
fn with_figures(outcome: Outcome, fs: &Filesystem, f: Figures, floors: (u64, u64)) -> Outcome {
    let outcome = outcome
        .detail("mount_point", &fs.mount_point)
        .detail("paths", fs.paths.join(", "))
        .detail("bytes_free", f.bytes_free)
        .detail("bytes_total", f.bytes_total)
        .detail("inodes_free", f.inodes_free)
        .detail("inodes_total", f.inodes_total)
        .detail("warn_below_bytes", floors.0)
        .detail("fail_below_bytes", floors.1)
        .detail(
            "noexec",
            fs.noexec.map_or(
                "unknown (no mountinfo)",
                |n| if n { "true" } else { "false" },
            ),
        );
    match &fs.fs_type {
        Some(t) => outcome.detail("fs_type", t),
        None => outcome,
    }
}

fn worst(a: Status, b: Status) -> Status {
    if b.rank() > a.rank() {
        b
    } else {
        a
    }
}

fn space_remedy(fs: &Filesystem, strictest_path: &str, pm: Option<PackageManager>) -> String {
    let mp = &fs.mount_point;
    if strictest_path == "/boot" || mp == "/boot" {
        let cmd = pm.map_or(
            "remove kernels older than the running one with your package manager",
            |p| p.remove_old_kernels_command(),
        );
        return format!("Remove old kernels to make room for the new one: `{cmd}` (keep the running kernel, `uname -r`).");
    }
    let clean = pm
        .map(|p| format!("`{}`, ", p.clean_command()))
        .unwrap_or_default();
    format!(
        "Free space on {mp}: {clean}`sudo journalctl --vacuum-size=200M`, and `sudo du -xh {mp} 2>/dev/null | sort -h | tail` to find what is large; or grow the filesystem."
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::units::{Amount, ByteAmount, CountAmount};
    use crate::config::Settings;

    const GIB: u64 = 1 << 30;
    const MIB: u64 = 1 << 20;

    fn fs(mp: &str, paths: &[&str], noexec: impl Into<Option<bool>>) -> Filesystem {
        Filesystem {
            name: name_for(mp),
            mount_point: mp.into(),
            fs_type: Some("ext4".into()),
            paths: paths.iter().map(|p| p.to_string()).collect(),
            noexec: noexec.into(),
        }
    }

    fn figures(free: u64, total: u64, inodes_free: u64, inodes_total: u64) -> Figures {
        Figures {
            bytes_total: total,
            bytes_free: free,
            inodes_total,
            inodes_free,
        }
    }

    fn thresholds(paths: &[&str]) -> Vec<(String, Thresholds)> {
        let s = Settings::default();
        paths
            .iter()
            .map(|p| (p.to_string(), s.disk.thresholds_for(p)))
            .collect()
    }

    #[test]
    fn plenty_of_space_passes_with_the_figures() {
        let o = judge(
            &fs("/", &["/", "/var"], false),
            figures(60 * GIB, 100 * GIB, 900_000, 1_000_000),
            &thresholds(&["/", "/var"]),
            None,
        );
        assert_eq!(o.status, Status::Pass);
        assert_eq!(
            o.summary,
            "/ has 60.0 GiB free (60%) and 900.0k inodes free (90%)"
        );
        assert!(o.remedy.is_none());
    }

    #[test]
    fn below_the_warning_floor_warns_and_below_failure_fails() {
        let t = thresholds(&["/var"]);
        let warn = judge(
            &fs("/var", &["/var"], false),
            figures(GIB, 100 * GIB, 900, 1000),
            &t,
            Some(PackageManager::Apt),
        );
        warn.assert_says(
            Status::Warn,
            "1.0 GiB free (1%), below the warning floor of 2.0 GiB",
        );
        assert!(warn.remedy.unwrap().contains("sudo apt-get clean"));
        let fail = judge(
            &fs("/var", &["/var"], false),
            figures(100 * MIB, 100 * GIB, 900, 1000),
            &t,
            Some(PackageManager::Dnf),
        );
        fail.assert_says(Status::Fail, "below the failure floor of 500.0 MiB");
        assert!(fail.remedy.unwrap().contains("sudo dnf clean all"));
    }

    #[test]
    fn boot_has_its_own_floor_and_kernel_remedy() {
        let t = thresholds(&["/boot"]);
        let ok = judge(
            &fs("/boot", &["/boot"], false),
            figures(300 * MIB, 500 * MIB, 900, 1000),
            &t,
            None,
        );
        assert_eq!(ok.status, Status::Pass);
        let low = judge(
            &fs("/boot", &["/boot"], false),
            figures(100 * MIB, 500 * MIB, 900, 1000),
            &t,
            Some(PackageManager::Apt),
        );
        assert_eq!(low.status, Status::Fail);
        assert!(low
            .remedy
            .unwrap()
            .contains("sudo apt-get autoremove --purge"));
    }

    #[test]
    fn the_strictest_threshold_on_a_shared_filesystem_applies() {
        // /boot on the root filesystem: the root's 2 GiB floor wins over /boot's 250 MiB.
        let t = thresholds(&["/", "/boot"]);
        let o = judge(
            &fs("/", &["/", "/boot"], false),
            figures(GIB, 100 * GIB, 900, 1000),
            &t,
            None,
        );
        assert_eq!(o.status, Status::Warn);
    }

    #[test]
    fn inodes_run_out_before_bytes() {
        let o = judge(
            &fs("/var", &["/var"], false),
            figures(50 * GIB, 100 * GIB, 10, 1_000_000),
            &thresholds(&["/var"]),
            None,
        );
        o.assert_says(Status::Fail, "10 inodes free (0%)");
        assert!(o.remedy.unwrap().contains("du --inodes"));
    }

    #[test]
    fn no_inode_table_is_not_judged() {
        let o = judge(
            &fs("/", &["/"], false),
            figures(50 * GIB, 100 * GIB, 0, 0),
            &thresholds(&["/"]),
            None,
        );
        assert_eq!(o.status, Status::Pass);
        assert!(o.summary.contains("no inode limit"));
    }

    #[test]
    fn noexec_under_the_agent_directory_fails() {
        let o = judge(
            &fs("/var", &["/var", "/var/lib/amazon"], true),
            figures(50 * GIB, 100 * GIB, 900, 1000),
            &thresholds(&["/var"]),
            None,
        );
        assert_eq!(o.status, Status::Fail);
        assert!(o.summary.contains("mounted noexec"));
        assert!(o
            .remedy
            .unwrap()
            .contains("sudo mount -o remount,exec /var"));
        // noexec elsewhere (a /tmp hardened by CIS) is not the agent's problem.
        let tmp = judge(
            &fs("/tmp", &["/tmp"], true),
            figures(50 * GIB, 100 * GIB, 900, 1000),
            &thresholds(&["/tmp"]),
            None,
        );
        assert_eq!(tmp.status, Status::Pass);
    }

    #[test]
    fn unknown_mount_options_under_the_agent_directory_warn() {
        // Issue #17 item 2: no mountinfo is not "not noexec".
        let o = judge(
            &fs("/var", &["/var", "/var/lib/amazon"], None),
            figures(50 * GIB, 100 * GIB, 900, 1000),
            &thresholds(&["/var"]),
            None,
        );
        o.assert_says(
            Status::Warn,
            "whether /var/lib/amazon is mounted noexec could not be told",
        );
        assert!(o
            .remedy
            .unwrap()
            .contains("findmnt -no OPTIONS --target /var/lib/amazon"));
        assert_eq!(o.details["noexec"], "unknown (no mountinfo)");
        // Elsewhere it does not matter.
        let tmp = judge(
            &fs("/tmp", &["/tmp"], None),
            figures(50 * GIB, 100 * GIB, 900, 1000),
            &thresholds(&["/tmp"]),
            None,
        );
        assert_eq!(tmp.status, Status::Pass);
    }

    #[test]
    fn percentage_thresholds_resolve_against_the_size() {
        let t = vec![(
            "/data".to_string(),
            Thresholds {
                warn_below: ByteAmount(Amount::Percent(20.0)),
                fail_below: ByteAmount(Amount::Percent(5.0)),
                inodes_warn_below: CountAmount(Amount::Absolute(0)),
                inodes_fail_below: CountAmount(Amount::Absolute(0)),
            },
        )];
        let o = judge(
            &fs("/data", &["/data"], false),
            figures(10 * GIB, 100 * GIB, 900, 1000),
            &t,
            None,
        );
        o.assert_says(Status::Warn, "below the warning floor of 20.0 GiB");
    }

    #[test]
    fn names_follow_the_mount_point() {
        assert_eq!(name_for("/"), "root");
        assert_eq!(name_for("/var/log/amazon/ssm"), "var-log-amazon-ssm");
        assert_eq!(name_for("/mnt/my disk"), "mnt-my-disk");
    }
}
