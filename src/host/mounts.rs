//! `/proc/self/mountinfo`: which mount a path lives on and with what options.

use std::path::Path;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    pub id: u64,
    /// `major:minor` of the filesystem, the same for every bind of it.
    pub device: String,
    pub mount_point: String,
    /// Per-mount options (`rw`, `noexec`, `nosuid`, …).
    pub options: Vec<String>,
    pub fs_type: String,
    pub source: String,
}

impl Mount {
    pub fn has_option(&self, option: &str) -> bool {
        self.options.iter().any(|o| o == option)
    }
}

/// Parses mountinfo, passing over lines it cannot read (counted in the second value).
pub fn parse(text: &str) -> (Vec<Mount>, usize) {
    super::parse_lines(text, parse_line)
}

// 36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
fn parse_line(line: &str) -> Option<Mount> {
    let (before, after) = line.split_once(" - ")?;
    let mut fields = before.split_whitespace();
    let id = fields.next()?.parse().ok()?;
    let _parent = fields.next()?;
    let device = fields.next()?.to_string();
    let _root = fields.next()?;
    let mount_point = unescape(fields.next()?);
    let options = fields.next()?.split(',').map(str::to_string).collect();
    let mut after = after.split_whitespace();
    let fs_type = after.next()?.to_string();
    let source = after.next().map(unescape).unwrap_or_default();
    Some(Mount {
        id,
        device,
        mount_point,
        options,
        fs_type,
        source,
    })
}

/// mountinfo writes space, tab, newline and backslash as `\040`-style octal.
fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') * 64 + (bytes[i + 2] - b'0') * 8 + (bytes[i + 3] - b'0');
            out.push(v);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The mount a host path is on: the longest mount point that contains it,
/// the last-mounted one where several stack on the same point.
pub fn mount_for<'a>(mounts: &'a [Mount], path: &str) -> Option<&'a Mount> {
    let path = Path::new(path);
    mounts
        .iter()
        .enumerate()
        .filter(|(_, m)| path.starts_with(&m.mount_point))
        .max_by_key(|(i, m)| (m.mount_point.len(), *i))
        .map(|(_, m)| m)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 254:1 / /var rw,nosuid - xfs /dev/vdb1 rw
41 40 254:1 /lib/amazon /var/lib/amazon rw,nosuid,nodev,noexec - xfs /dev/vdb1 rw
42 27 0:30 / /mnt/my\\040disk rw - tmpfs none rw
not a mountinfo line
";

    #[test]
    fn finds_the_innermost_mount() {
        let (mounts, bad) = parse(SAMPLE);
        assert_eq!(bad, 1);
        assert_eq!(mount_for(&mounts, "/var/lib/amazon/ssm").unwrap().id, 41);
        assert!(mount_for(&mounts, "/var/lib/amazon/ssm")
            .unwrap()
            .has_option("noexec"));
        assert_eq!(mount_for(&mounts, "/var/cache/apt").unwrap().id, 40);
        assert_eq!(
            mount_for(&mounts, "/variant").unwrap().id,
            27,
            "prefix must end at a path component"
        );
        assert_eq!(mount_for(&mounts, "/mnt/my disk/x").unwrap().id, 42);
    }
}
