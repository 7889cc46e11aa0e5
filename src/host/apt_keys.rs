//! The keys apt verifies one source with: its `Signed-By` (keyring files,
//! an inline key block, or fingerprints that restrict the trusted keys),
//! else every trusted keyring (`/etc/apt/trusted.gpg` and
//! `/etc/apt/trusted.gpg.d/*.gpg`, `*.asc`), as apt 2.x chooses them.

use crate::host::openpgp::{self, Malformed};
use crate::host::Root;

/// One source's keyring, ready for gpgv.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AptKeyring {
    /// Every key, as binary packets (armored files decoded).
    pub packets: Vec<u8>,
    /// Signed-By's fingerprints: only these keys (or subkeys of these
    /// certificates; with a trailing `!`, that exact key) may sign. Empty:
    /// any key in `packets`.
    pub fingerprints: Vec<String>,
    /// Where the keys came from, for the details.
    pub from: Vec<String>,
    /// Trusted keyrings that are no keyring apt can use (a keybox), with
    /// why: apt ignores them too.
    pub unusable: Vec<String>,
    /// Trusted keyrings this user may not read, with why: apt (as root)
    /// reads them, so a key missing here may be there.
    pub unreadable: Vec<String>,
}

/// Why a source's keyring cannot be made: the source's own `Signed-By`
/// names something apt cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyringError {
    #[error("its Signed-By names {0}, which does not exist")]
    Missing(String),
    #[error("its Signed-By names {file}, which this user cannot read ({why})")]
    NotReadable { file: String, why: String },
    #[error("its Signed-By names {file}, and {why}")]
    Malformed { file: String, why: Malformed },
}

const TRUSTED: &str = "/etc/apt/trusted.gpg";
const TRUSTED_PARTS: &str = "/etc/apt/trusted.gpg.d";

/// The keyring apt would verify a source with, given its `Signed-By`.
pub fn for_source(root: &Root, signed_by: Option<&str>) -> Result<AptKeyring, KeyringError> {
    let mut ring = AptKeyring::default();
    if let Some(value) = signed_by {
        if value.trim_start().starts_with("-----BEGIN PGP") {
            ring.packets =
                openpgp::keyring(value.as_bytes()).map_err(|why| KeyringError::Malformed {
                    file: "an inline key block".into(),
                    why,
                })?;
            ring.from.push("the key block inline in Signed-By".into());
            return Ok(ring);
        }
        let mut files = Vec::new();
        for item in value
            .split([',', ' ', '\t', '\n'])
            .filter(|s| !s.is_empty())
        {
            if item.starts_with('/') {
                files.push(item);
            } else {
                ring.fingerprints.push(item.to_ascii_uppercase());
            }
        }
        if !files.is_empty() {
            for file in files {
                let bytes = std::fs::read(root.path(file)).map_err(|e| match e.kind() {
                    std::io::ErrorKind::NotFound => KeyringError::Missing(file.into()),
                    _ => KeyringError::NotReadable {
                        file: file.into(),
                        why: e.to_string(),
                    },
                })?;
                let packets = openpgp::keyring(&bytes).map_err(|why| KeyringError::Malformed {
                    file: file.into(),
                    why,
                })?;
                ring.packets.extend(packets);
                ring.from.push(file.into());
            }
            return Ok(ring);
        }
    }
    trusted(root, &mut ring);
    Ok(ring)
}

/// Every trusted keyring: `trusted.gpg`, then `trusted.gpg.d` in name
/// order (apt ignores other extensions there, with a notice).
fn trusted(root: &Root, ring: &mut AptKeyring) {
    let mut files = vec![TRUSTED.to_string()];
    if let Ok(dir) = std::fs::read_dir(root.path(TRUSTED_PARTS)) {
        let mut parts: Vec<String> = dir
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| n.ends_with(".gpg") || n.ends_with(".asc"))
            .map(|n| format!("{TRUSTED_PARTS}/{n}"))
            .collect();
        parts.sort();
        files.extend(parts);
    }
    for file in files {
        match std::fs::read(root.path(&file)) {
            Ok(bytes) => match openpgp::keyring(&bytes) {
                Ok(packets) => {
                    ring.packets.extend(packets);
                    ring.from.push(file);
                }
                Err(why) => ring.unusable.push(format!("{file} ({why})")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => ring.unreadable.push(format!("{file} ({e})")),
        }
    }
}

/// Whether a key that made a good signature may sign for the source:
/// Signed-By's fingerprints name it, or its certificate (apt's rule; a
/// trailing `!` asks for that exact key).
pub fn allows(fingerprints: &[String], key: &str, primary: &str) -> bool {
    fingerprints.is_empty()
        || fingerprints.iter().any(|f| match f.strip_suffix('!') {
            Some(exact) => exact.eq_ignore_ascii_case(key),
            None => f.eq_ignore_ascii_case(key) || f.eq_ignore_ascii_case(primary),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = include_str!("../../tests/fixtures/openpgp/repo-key.asc");

    #[test]
    fn a_source_gets_its_signed_by_or_the_trusted_keyrings() {
        let dir = tempfile::tempdir().unwrap();
        let root = Root::new(dir.path());
        let parts = dir.path().join("etc/apt/trusted.gpg.d");
        std::fs::create_dir_all(&parts).unwrap();
        std::fs::write(parts.join("debian.asc"), KEY).unwrap();
        std::fs::write(parts.join("notes.txt"), "not a key").unwrap();
        std::fs::write(parts.join("old.gpg"), b"\0\0\0\0\0\0\0\0KBXf....").unwrap();
        std::fs::create_dir_all(dir.path().join("etc/apt/keyrings")).unwrap();
        std::fs::write(dir.path().join("etc/apt/keyrings/vendor.asc"), KEY).unwrap();

        let trusted = for_source(&root, None).unwrap();
        assert_eq!(trusted.from, vec!["/etc/apt/trusted.gpg.d/debian.asc"]);
        assert_eq!(trusted.unusable.len(), 1, "{:?}", trusted.unusable);
        assert!(
            trusted.unusable[0].starts_with("/etc/apt/trusted.gpg.d/old.gpg (it is a GnuPG keybox")
        );
        let certs = openpgp::certs(&trusted.packets).unwrap();
        assert_eq!(
            certs[0].fingerprint,
            include_str!("../../tests/fixtures/openpgp/repo-key.fpr").trim()
        );

        let own = for_source(&root, Some("/etc/apt/keyrings/vendor.asc")).unwrap();
        assert_eq!(own.from, vec!["/etc/apt/keyrings/vendor.asc"]);
        assert_eq!(own.packets, trusted.packets);
        assert!(own.fingerprints.is_empty());

        let inline = for_source(&root, Some(KEY.trim())).unwrap();
        assert_eq!(inline.packets, trusted.packets);

        let pinned = for_source(&root, Some("1bf8cfadff0798c6cff69803e80260b0326b0f94")).unwrap();
        assert_eq!(
            pinned.fingerprints,
            vec!["1BF8CFADFF0798C6CFF69803E80260B0326B0F94"]
        );
        assert_eq!(
            pinned.from, trusted.from,
            "fingerprints alone restrict the trusted keys"
        );

        assert_eq!(
            for_source(&root, Some("/etc/apt/keyrings/gone.gpg"))
                .unwrap_err()
                .to_string(),
            "its Signed-By names /etc/apt/keyrings/gone.gpg, which does not exist"
        );
        std::fs::create_dir_all(dir.path().join("etc/apt/keyrings/dir.gpg")).unwrap();
        assert!(matches!(
            for_source(&root, Some("/etc/apt/keyrings/dir.gpg")),
            Err(KeyringError::NotReadable { .. })
        ));
    }

    #[test]
    fn fingerprints_allow_the_certificate_or_exactly_the_key() {
        let (sub, primary) = ("67413318", "1BF8CFAD");
        assert!(allows(&[], sub, primary));
        assert!(allows(&["1BF8CFAD".into()], sub, primary));
        assert!(allows(&["67413318!".into()], sub, primary));
        assert!(!allows(&["1BF8CFAD!".into()], sub, primary));
        assert!(!allows(&["DEADBEEF".into()], sub, primary));
    }
}
