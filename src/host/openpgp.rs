//! What a keyring says about its keys: each certificate's fingerprint, user
//! ID, expiry and subkeys, read from OpenPGP packets (RFC 4880 / 9580).
//!
//! Why by hand: verifying a signature is the host's own `gpgv`'s job (as it
//! is apt's: the verdicts then agree by construction), so all we need from
//! the packets is dates and fingerprints, and the Rust OpenPGP crates bring
//! a whole implementation (rPGP: a dozen RustCrypto crates, well over the
//! issue's 1.5 MiB) for these hundred lines. Nothing here is trusted for a
//! verdict of "signed": the dates only warn before a key expires, and gpgv
//! says when one has.

use base64::Engine;

/// One certificate (a primary key with its user IDs and subkeys).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Cert {
    /// Upper-case hex, as gpgv's status lines print it.
    pub fingerprint: String,
    pub user_id: Option<String>,
    /// Unix seconds; `None`: it does not expire.
    pub expires: Option<i64>,
    pub revoked: bool,
    pub subkeys: Vec<Subkey>,
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subkey {
    pub fingerprint: String,
    pub expires: Option<i64>,
}

impl Cert {
    /// When the key with `fingerprint` (the primary or one of its subkeys)
    /// stops being valid: the earlier of its own expiry and the primary's.
    pub fn expiry_of(&self, fingerprint: &str) -> Option<Option<i64>> {
        if self.fingerprint.eq_ignore_ascii_case(fingerprint) {
            return Some(self.expires);
        }
        let sub = self
            .subkeys
            .iter()
            .find(|s| s.fingerprint.eq_ignore_ascii_case(fingerprint))?;
        Some(match (sub.expires, self.expires) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Malformed {
    #[error("it is a GnuPG keybox (.kbx), which apt does not read; export it with `gpg --no-default-keyring --keyring FILE --export > FILE.gpg`")]
    Keybox,
    #[error("its ASCII armor does not decode: {0}")]
    Armor(String),
    #[error("it is not an OpenPGP keyring: {0}")]
    Packets(&'static str),
}

/// A keyring file's bytes as binary packets: armored public key blocks
/// decoded (several blocks concatenated), binary packets as they are.
pub fn keyring(bytes: &[u8]) -> Result<Vec<u8>, Malformed> {
    if bytes.len() >= 12 && &bytes[8..12] == b"KBXf" {
        return Err(Malformed::Keybox);
    }
    let text = String::from_utf8_lossy(bytes);
    if !text.trim_start().starts_with("-----BEGIN PGP") {
        return Ok(bytes.to_vec());
    }
    let mut out = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line != "-----BEGIN PGP PUBLIC KEY BLOCK-----" {
            continue;
        }
        // Armor headers end at the first empty line.
        for header in lines.by_ref() {
            if header.is_empty() {
                break;
            }
        }
        let mut body = String::new();
        for line in lines.by_ref() {
            if line.starts_with("-----END PGP") {
                break;
            }
            // The CRC line (`=XXXX`) is optional and checked by nobody here.
            if !line.starts_with('=') {
                body.push_str(line);
            }
        }
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(body.as_bytes())
            .map_err(|e| Malformed::Armor(e.to_string()))?;
        out.extend(decoded);
    }
    if out.is_empty() {
        return Err(Malformed::Armor("no PUBLIC KEY BLOCK in it".into()));
    }
    Ok(out)
}

/// One packet: its tag and body.
struct Packet<'a> {
    tag: u8,
    body: &'a [u8],
}

fn packets(mut data: &[u8]) -> Result<Vec<Packet<'_>>, Malformed> {
    let mut out = Vec::new();
    while let Some((&first, rest)) = data.split_first() {
        if first & 0x80 == 0 {
            return Err(Malformed::Packets("a packet header lacks its high bit"));
        }
        let (tag, len, rest) = if first & 0x40 != 0 {
            let (len, rest) = new_length(rest)?;
            (first & 0x3f, len, rest)
        } else {
            let tag = (first >> 2) & 0x0f;
            let (len, rest) = match first & 3 {
                0 => (*rest.first().ok_or(SHORT)? as usize, &rest[1..]),
                1 => (be(rest.get(..2).ok_or(SHORT)?), &rest[2..]),
                2 => (be(rest.get(..4).ok_or(SHORT)?), &rest[4..]),
                _ => (rest.len(), rest),
            };
            (tag, len, rest)
        };
        let body = rest.get(..len).ok_or(SHORT)?;
        out.push(Packet { tag, body });
        data = &rest[len..];
    }
    Ok(out)
}

const SHORT: Malformed = Malformed::Packets("a packet is cut short");

fn be(bytes: &[u8]) -> usize {
    bytes.iter().fold(0, |n, &b| (n << 8) | b as usize)
}

/// A new-format length (RFC 4880 4.2.2); partial lengths never occur in keys.
fn new_length(data: &[u8]) -> Result<(usize, &[u8]), Malformed> {
    let first = *data.first().ok_or(SHORT)? as usize;
    match first {
        0..=191 => Ok((first, &data[1..])),
        192..=223 => {
            let second = *data.get(1).ok_or(SHORT)? as usize;
            Ok((((first - 192) << 8) + second + 192, &data[2..]))
        }
        255 => Ok((be(data.get(1..5).ok_or(SHORT)?), &data[5..])),
        _ => Err(Malformed::Packets("a key packet has a partial length")),
    }
}

/// A public key packet's fingerprint and creation time (v4: SHA-1 over
/// 0x99, a two-byte length and the body; v6: SHA-256 over 0x9b, a four-byte
/// length and the body).
fn key_packet(body: &[u8]) -> Option<(String, i64)> {
    let created = be(body.get(1..5)?) as i64;
    let digest = match body.first()? {
        4 => {
            let mut data = vec![0x99, (body.len() >> 8) as u8, body.len() as u8];
            data.extend_from_slice(body);
            ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, &data)
        }
        6 => {
            let mut data = vec![0x9b];
            data.extend_from_slice(&(body.len() as u32).to_be_bytes());
            data.extend_from_slice(body);
            ring::digest::digest(&ring::digest::SHA256, &data)
        }
        _ => return None, // v3 keys are long gone; v5 was never deployed
    };
    let hex = digest
        .as_ref()
        .iter()
        .map(|b| format!("{b:02X}"))
        .collect::<String>();
    Some((hex, created))
}

/// The parts of a signature that matter here.
#[derive(Default)]
struct Sig {
    kind: u8,
    created: i64,
    /// Seconds after the key's creation (subpacket 9).
    key_expiry: Option<i64>,
    /// The issuer's key ID or fingerprint, upper-case hex (subpackets 16, 33).
    issuer: Option<String>,
}

fn signature(body: &[u8]) -> Option<Sig> {
    let version = *body.first()?;
    let kind = *body.get(1)?;
    // v4: two-byte subpacket area lengths after four bytes; v6: four-byte.
    let (width, start) = match version {
        4 => (2, 4),
        6 => (4, 4),
        _ => return None,
    };
    let mut sig = Sig {
        kind,
        ..Sig::default()
    };
    let hashed_len = be(body.get(start..start + width)?);
    let hashed = body.get(start + width..start + width + hashed_len)?;
    let after = start + width + hashed_len;
    let unhashed_len = be(body.get(after..after + width)?);
    let unhashed = body.get(after + width..after + width + unhashed_len)?;
    for (area, trusted) in [(hashed, true), (unhashed, false)] {
        let mut rest = area;
        while !rest.is_empty() {
            let (len, tail) = subpacket_length(rest)?;
            let packet = tail.get(..len)?;
            rest = &tail[len..];
            let (&kind, data) = packet.split_first()?;
            match (kind & 0x7f, trusted) {
                (2, true) => sig.created = be(data.get(..4)?) as i64,
                (9, true) => sig.key_expiry = Some(be(data.get(..4)?) as i64),
                (16, _) | (33, _) if sig.issuer.is_none() => {
                    let id = if kind & 0x7f == 33 {
                        data.get(1..)?
                    } else {
                        data
                    };
                    sig.issuer = Some(id.iter().map(|b| format!("{b:02X}")).collect());
                }
                _ => {}
            }
        }
    }
    Some(sig)
}

fn subpacket_length(data: &[u8]) -> Option<(usize, &[u8])> {
    let first = *data.first()? as usize;
    match first {
        0..=191 => Some((first, &data[1..])),
        192..=254 => Some((
            ((first - 192) << 8) + *data.get(1)? as usize + 192,
            &data[2..],
        )),
        _ => Some((be(data.get(1..5)?), &data[5..])),
    }
}

/// Whether `issuer` (a key ID or a fingerprint) names `fingerprint`; a
/// signature without an issuer is taken as the key's own.
fn issued_by(sig: &Sig, fingerprint: &str) -> bool {
    sig.issuer
        .as_deref()
        .is_none_or(|i| fingerprint.ends_with(i) || fingerprint.starts_with(i))
}

/// Where a self-signature's expiry lands.
enum Target {
    Primary,
    Subkey(usize),
}

/// The certificates in binary keyring packets. The newest self-signature
/// of each key sets its expiry, as OpenPGP implementations read it.
pub fn certs(data: &[u8]) -> Result<Vec<Cert>, Malformed> {
    let mut out: Vec<Cert> = Vec::new();
    // Per certificate: (created, newest self-signature time) of the primary
    // and of each subkey, for picking the newest signature.
    let mut created: Vec<i64> = Vec::new();
    let mut newest: Vec<i64> = Vec::new();
    let mut target = Target::Primary;
    for p in packets(data)? {
        match p.tag {
            6 => {
                let (fingerprint, when) =
                    key_packet(p.body).ok_or(Malformed::Packets("a primary key is unreadable"))?;
                out.push(Cert {
                    fingerprint,
                    ..Cert::default()
                });
                created = vec![when];
                newest = vec![i64::MIN];
                target = Target::Primary;
            }
            14 => {
                let Some(cert) = out.last_mut() else { continue };
                let Some((fingerprint, when)) = key_packet(p.body) else {
                    continue;
                };
                cert.subkeys.push(Subkey {
                    fingerprint,
                    expires: None,
                });
                created.push(when);
                newest.push(i64::MIN);
                target = Target::Subkey(cert.subkeys.len() - 1);
            }
            13 => {
                if let Some(cert) = out.last_mut() {
                    if cert.user_id.is_none() {
                        cert.user_id = Some(String::from_utf8_lossy(p.body).into_owned());
                    }
                }
            }
            2 => {
                let (Some(cert), Some(sig)) = (out.last_mut(), signature(p.body)) else {
                    continue;
                };
                if !issued_by(&sig, &cert.fingerprint) {
                    continue; // a certification by someone else
                }
                let (slot, expires) = match (&target, sig.kind) {
                    (_, 0x20) => {
                        cert.revoked = true;
                        continue;
                    }
                    (Target::Primary, 0x10..=0x13 | 0x1f) => (0, &mut cert.expires),
                    (Target::Subkey(i), 0x18) => (i + 1, &mut cert.subkeys[*i].expires),
                    _ => continue,
                };
                if sig.created >= newest[slot] {
                    newest[slot] = sig.created;
                    *expires = sig.key_expiry.filter(|s| *s > 0).map(|s| created[slot] + s);
                }
            }
            _ => {}
        }
    }
    if out.is_empty() {
        return Err(Malformed::Packets("no public key in it"));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A v4 Ed25519 key made with `gpg --quick-gen-key 'Test Repo
    /// <repo@example.com>' ed25519 sign 2030-01-01` at a faked 2026-01-01,
    /// with a signing subkey expiring 2027-01-01, exported armored.
    const KEY: &str = include_str!("../../tests/fixtures/openpgp/repo-key.asc");

    #[test]
    fn an_armored_key_gives_its_fingerprint_user_and_expiry() {
        let certs = certs(&keyring(KEY.as_bytes()).unwrap()).unwrap();
        assert_eq!(certs.len(), 1);
        let c = &certs[0];
        assert_eq!(
            c.fingerprint,
            include_str!("../../tests/fixtures/openpgp/repo-key.fpr").trim()
        );
        assert_eq!(c.user_id.as_deref(), Some("Test Repo <repo@example.com>"));
        let primary: jiff::Timestamp = "2030-01-01T00:00:00Z".parse().unwrap();
        let sub: jiff::Timestamp = "2027-01-01T00:00:00Z".parse().unwrap();
        // gpg puts a date's expiry at noon UTC: within a day is what matters.
        let near = |got: Option<i64>, want: jiff::Timestamp| {
            let got = got.expect("an expiry");
            assert!((got - want.as_second()).abs() <= 86_400, "{got} vs {want}");
        };
        near(c.expires, primary);
        assert_eq!(c.subkeys.len(), 1);
        near(c.subkeys[0].expires, sub);
        // A subkey's expiry is the earlier of its own and the primary's.
        near(c.expiry_of(&c.subkeys[0].fingerprint).unwrap(), sub);
        assert_eq!(c.expiry_of("0000"), None);
        assert!(!c.revoked);
    }

    #[test]
    fn binary_and_armored_keyrings_read_alike_and_a_keybox_is_named() {
        let binary = keyring(KEY.as_bytes()).unwrap();
        assert_eq!(keyring(&binary).unwrap(), binary);
        let mut kbx = vec![0u8; 32];
        kbx[8..12].copy_from_slice(b"KBXf");
        assert_eq!(keyring(&kbx), Err(Malformed::Keybox));
        assert!(matches!(
            keyring(b"-----BEGIN PGP PUBLIC KEY BLOCK-----\n\n!!!\n-----END PGP PUBLIC KEY BLOCK-----\n"),
            Err(Malformed::Armor(_))
        ));
        assert!(certs(b"\x00\x01").is_err());
        assert!(certs(&binary[..binary.len() / 2]).is_err());
    }
}
