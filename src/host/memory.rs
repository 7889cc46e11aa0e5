//! Handing the daemon's code back to the kernel between runs.
//!
//! The daemon works for a few milliseconds an hour and sleeps the rest.
//! A run touches code all over the binary, and the kernel maps each
//! touched page's neighbours too ("fault-around", 64 KiB blocks), so after
//! one run most of the 12 MB binary stays resident for the hour until the
//! next: the idle RSS followed the binary's size. `MADV_PAGEOUT` (Linux
//! 5.4) asks the kernel to reclaim those clean, file-backed pages now; the
//! next run faults back what it uses, from the page cache or the file.
//! Pages another process also maps (an `ssm-preflight status` running at
//! that moment) are left alone by the kernel.
//!
//! Written by hand: no crate covers it, and it is one `madvise` per mapping
//! of `/proc/self/maps`.

use std::ffi::c_void;
use std::ptr::NonNull;

/// Why the pages could not be handed back.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    #[error("cannot read {what}: {source}")]
    Read {
        what: &'static str,
        source: std::io::Error,
    },
    /// EINVAL before Linux 5.4; EPERM under a seccomp filter without madvise.
    #[error("the kernel refused MADV_PAGEOUT: {0}")]
    Refused(nix::Error),
}

/// The resident set before and after, in kB (`VmRSS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    pub before_kb: u64,
    pub after_kb: u64,
}

/// The read-only mappings of `exe` in a `/proc/<pid>/maps` text: its code
/// and constants (writable mappings hold copied-on-write data, not file
/// pages to drop).
pub fn executable_ranges(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut fields = line.splitn(6, ' ');
            let range = fields.next()?;
            let perms = fields.next()?;
            // offset, device, inode, then the path after the padding.
            let path = fields.nth(3)?.trim_start();
            if path != exe || perms.contains('w') {
                return None;
            }
            let (start, end) = range.split_once('-')?;
            let start = usize::from_str_radix(start, 16).ok()?;
            let end = usize::from_str_radix(end, 16).ok()?;
            (end > start).then_some((start, end - start))
        })
        .collect()
}

fn vm_rss_kb() -> Result<u64, ReleaseError> {
    let status =
        std::fs::read_to_string("/proc/self/status").map_err(|source| ReleaseError::Read {
            what: "/proc/self/status",
            source,
        })?;
    Ok(status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0))
}

/// Asks the kernel to reclaim this process's pages of its own executable.
pub fn release_code_pages() -> Result<Released, ReleaseError> {
    let exe = std::fs::read_link("/proc/self/exe").map_err(|source| ReleaseError::Read {
        what: "/proc/self/exe",
        source,
    })?;
    let maps = std::fs::read_to_string("/proc/self/maps").map_err(|source| ReleaseError::Read {
        what: "/proc/self/maps",
        source,
    })?;
    let before_kb = vm_rss_kb()?;
    for (start, len) in executable_ranges(&maps, &exe.to_string_lossy()) {
        let Some(addr) = NonNull::new(start as *mut c_void) else {
            continue;
        };
        // SAFETY: the range is a read-only mapping of our own executable,
        // taken from /proc/self/maps. MADV_PAGEOUT reclaims pages without
        // changing what they hold: clean file pages are dropped and read
        // again on the next access; the relocated, copied-on-write pages of
        // the read-only-after-relocation mapping go to swap if there is any
        // and come back unchanged (without swap they stay). No memory the
        // program can observe changes.
        unsafe { nix::sys::mman::madvise(addr, len, nix::sys::mman::MmapAdvise::MADV_PAGEOUT) }
            .map_err(ReleaseError::Refused)?;
    }
    Ok(Released {
        before_kb,
        after_kb: vm_rss_kb()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAPS: &str = "\
55b90abfd000-55b90af56000 r--p 00000000 fe:00 5401190                    /usr/bin/ssm-preflight
55b90af56000-55b90b70d000 r-xp 00358000 fe:00 5401190                    /usr/bin/ssm-preflight
55b90b70d000-55b90b777000 r--p 00b0e000 fe:00 5401190                    /usr/bin/ssm-preflight
55b90b777000-55b90b7c3000 rw-p 00b77000 fe:00 5401190                    /usr/bin/ssm-preflight
55b90c000000-55b90c021000 rw-p 00000000 00:00 0                          [heap]
7f82b8284000-7f82b83da000 r-xp 00026000 fe:00 326279                     /usr/lib/x86_64-linux-gnu/libc.so.6
7f82b8500000-7f82b8501000 r-xp 00000000 fe:00 1                          /usr/bin/ssm-preflight-other
";

    #[test]
    fn only_the_executables_read_only_mappings() {
        assert_eq!(
            executable_ranges(MAPS, "/usr/bin/ssm-preflight"),
            [
                (0x55b90abfd000, 0x359000),
                (0x55b90af56000, 0x7b7000),
                (0x55b90b70d000, 0x6a000)
            ]
        );
        // After an upgrade replaced the file, both say "(deleted)".
        let deleted = MAPS.replace("ssm-preflight\n", "ssm-preflight (deleted)\n");
        assert_eq!(
            executable_ranges(&deleted, "/usr/bin/ssm-preflight (deleted)").len(),
            3
        );
        assert!(executable_ranges(MAPS, "/usr/bin/other").is_empty());
        assert!(executable_ranges("garbage\n\n", "/usr/bin/ssm-preflight").is_empty());
    }
}
