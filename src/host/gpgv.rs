//! A repository's signature checked by the host's own `gpgv`, the verifier
//! apt itself runs (Debian 12's apt calls gpgv with the source's keyrings),
//! so that our verdict is apt's. Its machine-readable `--status-fd` lines
//! are read, not its exit code: a file signed by two keys, one of which the
//! host lacks, is still good for apt.

use crate::host::command::{self, CommandError};
use std::path::Path;
use std::time::Duration;

/// The host's verifier.
pub const GPGV: &str = "/usr/bin/gpgv";

/// What gpgv said of a signed file.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Verdict {
    /// Good signatures by keys in the keyring.
    pub valid: Vec<Signer>,
    pub problems: Vec<Problem>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signer {
    /// The key that made the signature (a subkey, often).
    pub key: String,
    /// Its certificate's primary key.
    pub primary: String,
    /// Signed with SHA-1 or weaker, which apt no longer accepts.
    pub weak_digest: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Signed by a key the keyrings do not have (its key ID).
    NoPublicKey(String),
    /// Signed by a key that has expired.
    ExpiredKey(String),
    RevokedKey(String),
    /// The signature does not match the file.
    Bad(String),
    ExpiredSignature(String),
    /// No signature at all.
    Unsigned,
}

impl std::fmt::Display for Problem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Problem::NoPublicKey(k) => write!(
                f,
                "signed by key {k}, which is not among the keys trusted for it (NO_PUBKEY)"
            ),
            Problem::ExpiredKey(k) => write!(f, "signed by key {k}, which has expired (EXPKEYSIG)"),
            Problem::RevokedKey(k) => write!(f, "signed by key {k}, which is revoked (REVKEYSIG)"),
            Problem::Bad(k) => write!(
                f,
                "its signature by key {k} does not match its content (BADSIG)"
            ),
            Problem::ExpiredSignature(k) => {
                write!(f, "its signature by key {k} has expired (EXPSIG)")
            }
            Problem::Unsigned => write!(f, "it carries no signature"),
        }
    }
}

/// Reads gpgv's status lines.
pub fn parse_status(text: &str) -> Verdict {
    let mut v = Verdict::default();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let mut words = rest.split_whitespace();
        let keyword = words.next().unwrap_or_default();
        let fields: Vec<&str> = words.collect();
        let first = fields.first().map(|s| s.to_string()).unwrap_or_default();
        match keyword {
            "VALIDSIG" => {
                // VALIDSIG <fpr> <date> <ts> <expire> <ver> <reserved>
                // <pk-algo> <hash-algo> <class> [<primary fpr>]
                let hash = fields.get(7).and_then(|h| h.parse::<u8>().ok());
                v.valid.push(Signer {
                    key: first.clone(),
                    primary: fields.get(9).map_or(first, |p| p.to_string()),
                    // 1 MD5, 2 SHA-1, 3 RIPEMD-160 (RFC 4880 9.4).
                    weak_digest: matches!(hash, Some(1..=3)),
                });
            }
            "NO_PUBKEY" => v.problems.push(Problem::NoPublicKey(first)),
            "EXPKEYSIG" => v.problems.push(Problem::ExpiredKey(first)),
            "REVKEYSIG" => v.problems.push(Problem::RevokedKey(first)),
            "BADSIG" => v.problems.push(Problem::Bad(first)),
            "EXPSIG" => v.problems.push(Problem::ExpiredSignature(first)),
            "NODATA" if !v.problems.contains(&Problem::Unsigned) => {
                v.problems.push(Problem::Unsigned)
            }
            _ => {}
        }
    }
    // EXPKEYSIG and VALIDSIG come together for an expired key: it is not valid.
    let expired: Vec<String> = v
        .problems
        .iter()
        .filter_map(|p| match p {
            Problem::ExpiredKey(k) | Problem::RevokedKey(k) | Problem::ExpiredSignature(k) => {
                Some(k.clone())
            }
            _ => None,
        })
        .collect();
    v.valid
        .retain(|s| !expired.iter().any(|k| s.key.ends_with(k.as_str())));
    v
}

/// Why gpgv gave no verdict.
#[derive(Debug, thiserror::Error)]
pub enum GpgvError {
    #[error("gpgv is not installed ({GPGV}), and apt needs it to verify repositories: `sudo apt-get install gpgv`")]
    Missing,
    #[error("cannot write the files gpgv reads: {0}")]
    Scratch(std::io::Error),
    #[error("{0}")]
    Run(CommandError),
}

/// Verifies `signed` (an `InRelease`, or a `Release` when `signature` is
/// its detached `Release.gpg`) against the binary `keyring`, in a scratch
/// directory of its own (gpgv's home too: nothing of root's is read or
/// written).
pub fn verify(
    keyring: &[u8],
    signed: &[u8],
    signature: Option<&[u8]>,
    budget: Duration,
) -> Result<Verdict, GpgvError> {
    if !Path::new(GPGV).exists() {
        return Err(GpgvError::Missing);
    }
    let dir = tempfile::tempdir().map_err(GpgvError::Scratch)?;
    let write = |name: &str, bytes: &[u8]| {
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).map(|_| path.display().to_string())
    };
    let keyring = write("keyring.gpg", keyring).map_err(GpgvError::Scratch)?;
    let data = write("data", signed).map_err(GpgvError::Scratch)?;
    let home = dir.path().display().to_string();
    let mut args = vec![
        "--homedir",
        &home,
        "--status-fd",
        "1",
        "--keyring",
        &keyring,
    ];
    let sig;
    if let Some(s) = signature {
        sig = write("data.gpg", s).map_err(GpgvError::Scratch)?;
        args.push(&sig);
    }
    args.push(&data);
    let finished = command::run_with_env(Path::new(GPGV), &args, &[("LC_ALL", "C.UTF-8")], budget)
        .map_err(GpgvError::Run)?;
    Ok(parse_status(&finished.stdout))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_become_signers_and_problems() {
        let good = "[GNUPG:] NEWSIG\n[GNUPG:] KEY_CONSIDERED 1BF8 0\n[GNUPG:] SIG_ID x 2026-12-01 1\n\
[GNUPG:] GOODSIG C0AE4D80336ECEE6 Test Repo <repo@example.com>\n\
[GNUPG:] VALIDSIG 67413318A90C500D98FD9DD6C0AE4D80336ECEE6 2026-12-01 1764547200 0 4 0 22 10 01 1BF8CFADFF0798C6CFF69803E80260B0326B0F94\n";
        let v = parse_status(good);
        assert!(v.problems.is_empty());
        assert_eq!(
            v.valid,
            vec![Signer {
                key: "67413318A90C500D98FD9DD6C0AE4D80336ECEE6".into(),
                primary: "1BF8CFADFF0798C6CFF69803E80260B0326B0F94".into(),
                weak_digest: false,
            }]
        );
        let expired = "[GNUPG:] KEYEXPIRED 1700000000\n[GNUPG:] EXPKEYSIG C0AE4D80336ECEE6 Old <o@x>\n\
[GNUPG:] VALIDSIG 67413318A90C500D98FD9DD6C0AE4D80336ECEE6 2023-01-01 1672531200 0 4 0 22 2 01 1BF8\n";
        let v = parse_status(expired);
        assert!(v.valid.is_empty(), "{v:?}");
        assert_eq!(
            v.problems,
            vec![Problem::ExpiredKey("C0AE4D80336ECEE6".into())]
        );
        let v = parse_status("[GNUPG:] ERRSIG 0123456789ABCDEF 22 10 01 1764547200 9 -\n[GNUPG:] NO_PUBKEY 0123456789ABCDEF\n");
        assert_eq!(
            v.problems,
            vec![Problem::NoPublicKey("0123456789ABCDEF".into())]
        );
        assert_eq!(
            v.problems[0].to_string(),
            "signed by key 0123456789ABCDEF, which is not among the keys trusted for it (NO_PUBKEY)"
        );
        assert_eq!(
            parse_status("[GNUPG:] NODATA 1\n[GNUPG:] NODATA 2\n").problems,
            vec![Problem::Unsigned]
        );
        let weak = "[GNUPG:] VALIDSIG AB 2026-12-01 1 0 4 0 1 2 01 CD\n";
        assert!(parse_status(weak).valid[0].weak_digest);
    }
}
