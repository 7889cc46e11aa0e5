//! `/proc/locks`: every fcntl, OFD and flock lock on the system, by inode.
//! Reading it takes no lock, which is the point.

/// One line of `/proc/locks`, e.g.
/// `1: POSIX  ADVISORY  WRITE 1234 fe:00:10010736 0 EOF`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// `POSIX`, `FLOCK`, `OFDLCK`, `LEASE`, …
    pub kind: String,
    pub write: bool,
    /// The holder; `None` where the kernel shows -1 (an OFD lock's owner).
    pub pid: Option<u32>,
    pub major: u32,
    pub minor: u32,
    pub inode: u64,
    /// A `->` line: a process waiting for the lock, not holding it.
    pub waiting: bool,
}

/// Parses the file, passing over lines it cannot read (counted in the second value).
pub fn parse(text: &str) -> (Vec<LockEntry>, usize) {
    super::parse_lines(text, parse_line)
}

fn parse_line(line: &str) -> Option<LockEntry> {
    let mut fields = line.split_whitespace();
    let ordinal = fields.next()?;
    ordinal.strip_suffix(':')?.parse::<u64>().ok()?;
    let mut kind = fields.next()?;
    let waiting = kind == "->";
    if waiting {
        kind = fields.next()?;
    }
    let _mandatory = fields.next()?;
    let access = fields.next()?;
    let write = match access {
        "WRITE" => true,
        "READ" | "UNLCK" => false,
        _ => return None,
    };
    let pid: i64 = fields.next()?.parse().ok()?;
    let mut dev = fields.next()?.split(':');
    let major = u32::from_str_radix(dev.next()?, 16).ok()?;
    let minor = u32::from_str_radix(dev.next()?, 16).ok()?;
    let inode = dev.next()?.parse().ok()?;
    Some(LockEntry {
        kind: kind.to_string(),
        write,
        pid: u32::try_from(pid).ok().filter(|p| *p > 0),
        major,
        minor,
        inode,
        waiting,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_holders_waiters_and_ofd() {
        let (locks, bad) = parse(
            "1: POSIX  ADVISORY  WRITE 1234 fe:00:10010736 0 EOF\n\
             1: -> POSIX  ADVISORY  WRITE 999 fe:00:10010736 0 EOF\n\
             2: FLOCK  ADVISORY  WRITE 5678 00:19:123 0 EOF\n\
             3: OFDLCK ADVISORY  READ  -1 08:01:77 0 EOF\n\
             garbage\n\
             4: POSIX ADVISORY WRITE notapid 08:01:77 0 EOF\n\
             5: POSIX ADVISORY WRITE 1 zz:01:77 0 EOF\n",
        );
        assert_eq!(bad, 3);
        assert_eq!(locks.len(), 4);
        assert_eq!(locks[0].pid, Some(1234));
        assert_eq!(
            (locks[0].major, locks[0].minor, locks[0].inode),
            (254, 0, 10010736)
        );
        assert!(locks[1].waiting);
        assert_eq!(locks[2].kind, "FLOCK");
        assert_eq!(locks[3].pid, None);
        assert!(!locks[3].write);
    }
}
