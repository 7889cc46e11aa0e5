//! `repo.signature`: every enabled repository is signed by a key its
//! package manager trusts for it, so that `apt-get update` or dnf does not
//! refuse it on Sunday. apt sources: the `InRelease` (or `Release` with
//! `Release.gpg`) verified by the host's own `gpgv` against the keys apt
//! would use (the source's `Signed-By`, else the trusted keyrings), as apt
//! verifies it. yum/dnf/zypper: the local `gpgkey=` files read, and
//! `repomd.xml.asc` verified where `repo_gpgcheck=1`.

use super::repo::{prepare, with_unreadable};
use super::{CatalogueEntry, Context, Doc, Group, Outcome, Severity};
use crate::host::apt_keys::{self, AptKeyring, KeyringError};
use crate::host::gpgv::{self, GpgvError, Verdict};
use crate::host::openpgp::{self, Cert};
use crate::host::repos::{self, Keys, Repo};
use crate::host::Root;
use crate::network::repos::{self as fetch, SignedIndex};
use crate::network::tls::RepoTlsError;
use jiff::Timestamp;
use std::time::{Duration, SystemTime};

pub const ENTRY: CatalogueEntry = CatalogueEntry {
    id: "repo.signature",
    group: Group::Network,
    title: "Package repositories signed by trusted keys",
    severity: Severity::High,
    members: None,
    doc: Doc {
        looks_at: "each enabled apt source's `InRelease` (or `Release` + `Release.gpg`) verified by the host's `gpgv` against the keys apt uses for it (`Signed-By` files, inline key or fingerprints, else `/etc/apt/trusted.gpg` and `trusted.gpg.d/*.gpg`, `*.asc`), and its `Valid-Until`; yum/dnf/zypper `gpgkey=file://` keys, and `repomd.xml.asc` where `repo_gpgcheck=1`; fetched as `repo.reachable` fetches",
        warns: "a signing key expires within `repos.key_warn_before` (30 days); an rpm `gpgkey` key has expired where rpm ignores expiry, or its file cannot be read by this user; an index could not be fetched or a keyring read, so that source was not verified",
        fails: "apt would refuse a source: no signature (unless `allow-insecure=yes` or `Acquire::AllowInsecureRepositories`), a bad one, a key not in its keyrings (NO_PUBKEY), an expired or revoked key, a key its `Signed-By` does not allow, a SHA-1 signature, a `Release` past its `Valid-Until`; a `Signed-By` or `gpgkey` file is missing; a `gpgkey` key has expired where rpm verifies with Sequoia (RHEL 10); a `repo_gpgcheck` repository's `repomd.xml.asc` does not verify",
        fix: "install the publisher's current key where the source's `Signed-By` (or `gpgkey=`) points, or disable the source; `sudo apt-get update` / `sudo dnf makecache` shows the same refusal",
        cannot_see: "local mode; `gpgkey=` keys fetched over the network at install time; a mirror list's `repomd.xml.asc`; an apt source marked `trusted=yes` (apt takes it unverified, so nothing is asked of it)",
        reports: "`skip` / a note in the details",
    },
};

pub fn plan(ctx: &Context) -> super::Check {
    let mut check = crate::checks::task(ctx, &ENTRY, ENTRY.id, |ctx| async move {
        let ready = match prepare(&ctx, ENTRY.id).await {
            Ok(ready) => ready,
            Err(outcome) => return outcome,
        };
        let asks = ready.repos.iter().filter_map(|repo| {
            let Repo::Fetch {
                name,
                index,
                list_kind,
                tls,
                keys,
                ..
            } = repo
            else {
                return None;
            };
            let client = ready.clients.get(tls).cloned();
            let ask = Ask {
                indexes: ctx.indexes(),
                root: ctx.root.clone(),
                index: index.clone(),
                mirror_list: list_kind.is_some(),
                timeout: ctx.settings.repos.timeout,
                when: Clock {
                    now: ctx.now,
                    warn_before: ctx.settings.repos.key_warn_before,
                },
            };
            let keys = keys.clone();
            let name = name.clone();
            Some(async move {
                let found = match (client, &keys) {
                    (_, Keys::Unsaid) => return None,
                    (None, _) => Found::NotVerified("no HTTP client was made for it".into()),
                    (Some(Err(e)), _) => Found::NotVerified(match e {
                        RepoTlsError::Unusable(why) | RepoTlsError::NotReadable(why) => {
                            format!("its TLS settings cannot be used ({why}); repo.reachable says more")
                        }
                    }),
                    (_, Keys::Apt { trusted: true, .. }) => Found::Nothing(
                        "trusted=yes: apt takes it without verifying a signature".into(),
                    ),
                    (
                        Some(Ok(client)),
                        Keys::Apt {
                            signed_by,
                            check_valid_until,
                            allow_insecure,
                            ..
                        },
                    ) => {
                        let options = AptOptions {
                            check_valid_until: check_valid_until.unwrap_or(true),
                            allow_insecure: allow_insecure.unwrap_or(false),
                        };
                        ask.apt(&client, signed_by.clone(), options).await
                    }
                    (Some(Ok(client)), Keys::Rpm { gpgcheck, repo_gpgcheck, gpgkey }) => {
                        ask.rpm(&client, *gpgcheck, *repo_gpgcheck, gpgkey.clone())
                            .await
                    }
                };
                Some((name, found))
            })
        });
        let found: Vec<(String, Found)> = futures_util::future::join_all(asks)
            .await
            .into_iter()
            .flatten()
            .collect();
        with_unreadable(judge(&found), &ready.unreadable, ENTRY.id)
    });
    // An index and its signature, one after the other, then gpgv.
    check.info.timeout = check
        .info
        .timeout
        .max(ctx.settings.repos.timeout * 4 + Duration::from_secs(1));
    check
}

/// What was found of one repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// Signed as its package manager wants; what says so.
    Signed(String),
    /// Would be refused, and why.
    Refused(String),
    /// Accepted today, but not for long (a key about to expire).
    Soon(String),
    /// Could not be verified here (its index or a key file could not be
    /// read): a warning, never a pass.
    NotVerified(String),
    /// Nothing to verify ahead of time (no signature checking asked, or
    /// keys fetched at install time): a note.
    Nothing(String),
}

/// The run's clock and how early a key's expiry is announced.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    pub now: SystemTime,
    pub warn_before: Duration,
}

impl Clock {
    fn now(&self) -> i64 {
        Timestamp::try_from(self.now).map_or(0, |t| t.as_second())
    }
}

/// What a source's options and apt.conf let apt take.
#[derive(Debug, Clone, Copy)]
struct AptOptions {
    /// A `Release` past its `Valid-Until` is refused.
    check_valid_until: bool,
    /// An unsigned source is taken, with a warning.
    allow_insecure: bool,
}

/// A refusal where some trusted keyrings were not offered to gpgv: one
/// this user may not read may hold the key (apt, as root, reads it), so
/// the source is not verified rather than refused; one apt cannot use
/// either is named beside the refusal.
fn with_unread_keyrings(found: Found, ring: &AptKeyring) -> Found {
    match found {
        Found::Refused(why) if !ring.unreadable.is_empty() => Found::NotVerified(format!(
            "{why}, but {} could not be read by this user and may hold its key; run as root",
            ring.unreadable.join(", ")
        )),
        Found::Refused(why) if !ring.unusable.is_empty() => Found::Refused(format!(
            "{why}; apt ignores {} as well",
            ring.unusable.join(", ")
        )),
        other => other,
    }
}

/// gpgv found no signature at all (not a bad or unknown one).
fn unsigned(verdict: &Verdict) -> bool {
    verdict.valid.is_empty() && verdict.problems == [gpgv::Problem::Unsigned]
}

struct Ask {
    indexes: std::sync::Arc<fetch::Indexes>,
    root: Root,
    index: String,
    mirror_list: bool,
    timeout: Duration,
    when: Clock,
}

impl Ask {
    async fn apt(
        &self,
        client: &reqwest::Client,
        signed_by: Option<String>,
        options: AptOptions,
    ) -> Found {
        let root = self.root.clone();
        let ring =
            tokio::task::spawn_blocking(move || apt_keys::for_source(&root, signed_by.as_deref()))
                .await;
        let ring = match ring {
            Ok(Ok(ring)) => ring,
            Ok(Err(e @ KeyringError::NotReadable { .. })) => {
                return Found::NotVerified(e.to_string())
            }
            Ok(Err(e)) => return Found::Refused(format!("{e}: apt refuses the source")),
            Err(e) => return Found::NotVerified(format!("its keyring was not read: {e}")),
        };
        let index =
            match fetch::fetch_apt_index(&self.indexes, client, &self.index, self.timeout).await {
                Ok(index) => index,
                Err(e) => {
                    return Found::NotVerified(format!(
                        "its index could not be fetched ({e}); repo.reachable says more"
                    ))
                }
            };
        let (verdict, index) = match self.verify(ring.packets.clone(), index, true).await {
            Ok(v) => v,
            Err(found) => return found,
        };
        if options.allow_insecure && unsigned(&verdict) {
            return Found::Nothing(
                "it is unsigned, and allow-insecure lets apt take it with a warning".into(),
            );
        }
        let body = options.check_valid_until.then_some(index.body.as_slice());
        with_unread_keyrings(judge_apt(&verdict, &ring, body, self.when), &ring)
    }

    async fn rpm(
        &self,
        client: &reqwest::Client,
        gpgcheck: bool,
        repo_gpgcheck: bool,
        gpgkey: Vec<String>,
    ) -> Found {
        let root = self.root.clone();
        let (keys, sequoia) = tokio::task::spawn_blocking(move || {
            (read_gpgkeys(&root, &gpgkey), repos::rpm_uses_sequoia(&root))
        })
        .await
        .unwrap_or_default();
        let mut found = judge_gpgkeys(&keys, gpgcheck || repo_gpgcheck, sequoia, self.when);
        if !repo_gpgcheck || matches!(found, Found::Refused(_)) {
            return found;
        }
        if self.mirror_list {
            return add_note(
                found,
                "repo_gpgcheck=1: repomd.xml.asc not verified (the repository is a mirror list)",
            );
        }
        let packets: Vec<u8> = keys
            .iter()
            .filter_map(|k| match &k.read {
                KeyFile::Keys(packets, _) => Some(packets.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        let index =
            match fetch::fetch_repomd(&self.indexes, client, &self.index, self.timeout).await {
                Ok(index) => index,
                Err(e) => {
                    return Found::NotVerified(format!(
                        "its repomd.xml could not be fetched ({e}); repo.reachable says more"
                    ))
                }
            };
        if index.signature.is_none() {
            return Found::Refused(format!(
                "repo_gpgcheck=1, but the repository publishes no {}.asc: dnf refuses its metadata",
                index.url
            ));
        }
        let (verdict, _) = match self.verify(packets, index, false).await {
            Ok(v) => v,
            Err(found) => return found,
        };
        if verdict.valid.is_empty() {
            found = Found::Refused(format!(
                "repo_gpgcheck=1, and repomd.xml.asc does not verify with its gpgkey keys: {}",
                problems(&verdict)
            ));
        }
        found
    }

    /// gpgv's verdict, in a blocking thread. A missing gpgv refuses an apt
    /// source (apt cannot verify without it either); dnf verifies with its
    /// own library, so there it only means this check could not.
    async fn verify(
        &self,
        packets: Vec<u8>,
        index: SignedIndex,
        apt: bool,
    ) -> Result<(Verdict, SignedIndex), Found> {
        let budget = self.timeout;
        let ran = tokio::task::spawn_blocking(move || {
            let v = gpgv::verify(&packets, &index.body, index.signature.as_deref(), budget);
            (v, index)
        })
        .await;
        match ran {
            Ok((Ok(v), index)) => Ok((v, index)),
            Ok((Err(e @ GpgvError::Missing), _)) if apt => Err(Found::Refused(e.to_string())),
            Ok((Err(GpgvError::Missing), _)) => Err(Found::NotVerified(format!(
                "repomd.xml.asc is verified here with gpgv ({}), which is not installed (`sudo dnf install gnupg2`)",
                gpgv::GPGV
            ))),
            Ok((Err(e), _)) => Err(Found::NotVerified(format!("gpgv gave no verdict: {e}"))),
            Err(e) => Err(Found::NotVerified(format!("gpgv gave no verdict: {e}"))),
        }
    }
}

fn add_note(found: Found, note: &str) -> Found {
    match found {
        Found::Signed(s) => Found::Signed(format!("{s}; {note}")),
        Found::Nothing(s) => Found::Nothing(format!("{s}; {note}")),
        Found::Soon(s) => Found::Soon(format!("{s}; {note}")),
        other => other,
    }
}

fn problems(verdict: &Verdict) -> String {
    if verdict.problems.is_empty() {
        return "gpgv found no signature it could check".into();
    }
    let said: Vec<String> = verdict.problems.iter().map(|p| p.to_string()).collect();
    said.join("; ")
}

fn date(seconds: i64) -> String {
    Timestamp::from_second(seconds).map_or_else(
        |_| format!("{seconds} s after 1970"),
        |t| t.strftime("%Y-%m-%d").to_string(),
    )
}

/// An expired signing key by its whole fingerprint, its owner and the
/// day it expired (gpgv's EXPKEYSIG gives its 16-digit ID only).
fn expired_key(id: &str, certs: &[Cert]) -> String {
    let ends =
        |fpr: &str| fpr.len() >= id.len() && fpr[fpr.len() - id.len()..].eq_ignore_ascii_case(id);
    let found = certs.iter().find_map(|c| {
        let fpr = std::iter::once(c.fingerprint.as_str())
            .chain(c.subkeys.iter().map(|s| s.fingerprint.as_str()))
            .find(|f| ends(f))?;
        Some((c, fpr.to_string(), c.expiry_of(fpr).flatten()))
    });
    match found {
        Some((cert, fpr, Some(expired))) => format!(
            "signed by {}, which expired on {} (EXPKEYSIG)",
            named(Some(cert), &fpr),
            date(expired)
        ),
        _ => gpgv::Problem::ExpiredKey(id.to_string()).to_string(),
    }
}

/// A certificate's name for a sentence: its fingerprint and user ID.
fn named(cert: Option<&Cert>, key: &str) -> String {
    match cert.and_then(|c| c.user_id.as_deref()) {
        // Escaped where it is shown, as every summary is.
        Some(uid) => format!("key {key} ({uid})"),
        None => format!("key {key}"),
    }
}

/// The verdict on one apt source, from gpgv's and the keys' dates;
/// `index`: the Release text whose `Valid-Until` apt checks (`None` where
/// `check-valid-until` is off).
pub fn judge_apt(verdict: &Verdict, ring: &AptKeyring, index: Option<&[u8]>, when: Clock) -> Found {
    let accepted: Vec<_> = verdict
        .valid
        .iter()
        .filter(|s| !s.weak_digest && apt_keys::allows(&ring.fingerprints, &s.key, &s.primary))
        .collect();
    let Some(signer) = accepted.first() else {
        // Whatever `allow-weak=yes` says: it forgives weak checksums in
        // the Release, not a weak signature (apt 2.6 refuses it either
        // way, as the referee in tests/suite/signatures.rs shows).
        if let Some(s) = verdict.valid.iter().find(|s| s.weak_digest) {
            return Found::Refused(format!(
                "its only good signature, by key {}, uses SHA-1 or weaker, which apt rejects",
                s.key
            ));
        }
        if let Some(s) = verdict.valid.first() {
            return Found::Refused(format!(
                "signed by key {}, which its Signed-By ({}) does not allow",
                s.key,
                ring.fingerprints.join(", ")
            ));
        }
        let certs = openpgp::certs(&ring.packets).unwrap_or_default();
        let said = match verdict.problems.as_slice() {
            [gpgv::Problem::ExpiredKey(id)] => expired_key(id, &certs),
            _ => problems(verdict),
        };
        return Found::Refused(format!(
            "{said} (keys from {})",
            if ring.from.is_empty() {
                "no keyring".into()
            } else {
                ring.from.join(", ")
            }
        ));
    };
    let now = when.now();
    let until = index.and_then(|i| valid_until(&String::from_utf8_lossy(i)));
    if let Some(until) = until {
        if until < now {
            return Found::Refused(format!(
                "its Release file expired on {} (Valid-Until): the mirror is no longer updated, and apt refuses it",
                date(until)
            ));
        }
    }
    let certs = openpgp::certs(&ring.packets).unwrap_or_default();
    let cert = certs.iter().find(|c| c.expiry_of(&signer.key).is_some());
    let who = named(cert, &signer.key);
    match cert.and_then(|c| c.expiry_of(&signer.key)).flatten() {
        Some(expires) if expires - now <= when.warn_before.as_secs() as i64 => {
            Found::Soon(format!(
                "signed by {who}, which expires on {} (in {} days; repos.key_warn_before is {} days)",
                date(expires),
                (expires - now).max(0) / 86_400,
                when.warn_before.as_secs() / 86_400
            ))
        }
        Some(expires) => Found::Signed(format!("signed by {who}, valid until {}", date(expires))),
        None => Found::Signed(format!("signed by {who}, which does not expire")),
    }
}

/// `Valid-Until:` of a Release file (RFC 2822, with apt's "UTC").
pub fn valid_until(release: &str) -> Option<i64> {
    let value = release
        .lines()
        .take_while(|l| !l.starts_with("-----BEGIN PGP SIGNATURE"))
        .find_map(|l| l.strip_prefix("Valid-Until:"))?
        .trim();
    let value = match value.strip_suffix(" UTC") {
        Some(v) => format!("{v} +0000"),
        None => value.to_string(),
    };
    jiff::fmt::rfc2822::parse(&value)
        .ok()
        .map(|z| z.timestamp().as_second())
}

/// One `gpgkey=` URL and what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpgKey {
    pub url: String,
    pub read: KeyFile,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyFile {
    /// Its packets and certificates.
    Keys(Vec<u8>, Vec<Cert>),
    Missing,
    NotReadable(String),
    Malformed(String),
    /// Not a local file: fetched when the package manager first needs it.
    Remote,
}

fn read_gpgkeys(root: &Root, urls: &[String]) -> Vec<GpgKey> {
    urls.iter()
        .map(|url| {
            let read = match url.strip_prefix("file://") {
                None => KeyFile::Remote,
                Some(path) => match std::fs::read(root.path(path)) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::Missing,
                    Err(e) => KeyFile::NotReadable(e.to_string()),
                    Ok(bytes) => match openpgp::keyring(&bytes)
                        .and_then(|p| openpgp::certs(&p).map(|c| (p, c)))
                    {
                        Ok((packets, certs)) => KeyFile::Keys(packets, certs),
                        Err(e) => KeyFile::Malformed(e.to_string()),
                    },
                },
            };
            GpgKey {
                url: url.clone(),
                read,
            }
        })
        .collect()
}

/// The verdict on an rpm repository's `gpgkey=` files (`checked`: gpgcheck
/// or repo_gpgcheck is on, so the keys are needed; `sequoia`: this host's
/// rpm refuses what an expired key signed).
pub fn judge_gpgkeys(keys: &[GpgKey], checked: bool, sequoia: bool, when: Clock) -> Found {
    if !checked {
        return Found::Nothing(
            "gpgcheck=0: its packages are installed without a signature check".into(),
        );
    }
    if keys.is_empty() {
        return Found::Refused(
            "gpgcheck=1 but no gpgkey= is set, and no key is imported for it: dnf refuses its packages".into(),
        );
    }
    let now = when.now();
    let mut soon = Vec::new();
    let mut unverified = Vec::new();
    let mut signed = Vec::new();
    let mut remote = Vec::new();
    for key in keys {
        let file = key.url.trim_start_matches("file://");
        match &key.read {
            KeyFile::Missing => {
                return Found::Refused(format!(
                    "its gpgkey {file} does not exist: the patch run cannot import the key, and dnf refuses the packages"
                ))
            }
            KeyFile::Malformed(why) => {
                return Found::Refused(format!("its gpgkey {file} is unusable: {why}"))
            }
            KeyFile::NotReadable(why) => {
                unverified.push(format!("its gpgkey {file} cannot be read by this user ({why})"))
            }
            KeyFile::Remote => remote.push(crate::network::proxy::redact(&key.url)),
            KeyFile::Keys(_, certs) => {
                for cert in certs {
                    let who = named(Some(cert), &cert.fingerprint);
                    match cert.expires {
                        Some(t) if t <= now && sequoia => {
                            return Found::Refused(format!(
                                "{who} in {file} expired on {}: this host's rpm (with Sequoia) refuses the packages it signed",
                                date(t)
                            ))
                        }
                        Some(t) if t <= now => soon.push(format!(
                            "{who} in {file} expired on {}; this host's rpm still accepts what it signed, rpm with Sequoia (RHEL 10, Fedora 38+) does not",
                            date(t)
                        )),
                        Some(t) if t - now <= when.warn_before.as_secs() as i64 => soon.push(format!(
                            "{who} in {file} expires on {} (in {} days)",
                            date(t),
                            (t - now) / 86_400
                        )),
                        Some(t) => signed.push(format!("{who} until {}", date(t))),
                        None => signed.push(format!("{who}, which does not expire")),
                    }
                }
            }
        }
    }
    if !soon.is_empty() {
        return Found::Soon(soon.join("; "));
    }
    if !unverified.is_empty() {
        return Found::NotVerified(unverified.join("; "));
    }
    if signed.is_empty() {
        return Found::Nothing(format!(
            "its keys are fetched from {} when first needed: not checked ahead",
            remote.join(", ")
        ));
    }
    Found::Signed(format!("keys: {}", signed.join("; ")))
}

/// The check's verdict over every repository.
pub fn judge(found: &[(String, Found)]) -> Outcome {
    let pick = |want: fn(&Found) -> Option<&String>| -> Vec<String> {
        found
            .iter()
            .filter_map(|(name, f)| want(f).map(|why| format!("{name}: {why}")))
            .collect()
    };
    let refused = pick(|f| match f {
        Found::Refused(w) => Some(w),
        _ => None,
    });
    let soon = pick(|f| match f {
        Found::Soon(w) => Some(w),
        _ => None,
    });
    let unverified = pick(|f| match f {
        Found::NotVerified(w) => Some(w),
        _ => None,
    });
    let signed = found
        .iter()
        .filter(|(_, f)| matches!(f, Found::Signed(_)))
        .count();
    let total = found.len();
    let refresh =
        "`sudo apt-get update` (or `sudo dnf makecache`) shows the package manager's own refusal";
    let mut outcome = if !refused.is_empty() {
        Outcome::fail(
            format!(
                "{} of {total} repositories would be refused by the package manager: {}",
                refused.len(),
                refused.join("; ")
            ),
            format!("Install the publisher's current signing key where the source's Signed-By (or gpgkey=) points, or disable the source; {refresh}."),
        )
    } else if !soon.is_empty() {
        Outcome::warn(
            format!("{} of {total} repositories are signed by keys that expire soon: {}", soon.len(), soon.join("; ")),
            "Install the publisher's renewed key before that date (the vendor's key package, or the key file the source's Signed-By or gpgkey= names), then `sudo apt-get update` or `sudo dnf makecache`.",
        )
    } else if !unverified.is_empty() {
        Outcome::warn(
            format!(
                "{signed} of {total} repositories are signed by trusted keys; {} could not be verified: {}",
                unverified.len(),
                unverified.join("; ")
            ),
            "Run the check as root (`sudo ssm-preflight check --only repo.signature`), and see repo.reachable for a repository that does not answer.",
        )
    } else if signed == 0 {
        Outcome::skip(format!(
            "no repository's signature can be checked ahead of the patch run ({} with nothing to verify)",
            total
        ))
    } else {
        Outcome::pass(format!(
            "all {signed} repositories that check signatures are signed by keys their package manager trusts{}",
            if signed < total { format!(" ({} with nothing to verify)", total - signed) } else { String::new() }
        ))
    };
    for (name, f) in found {
        let said = match f {
            Found::Signed(s) => s.clone(),
            Found::Refused(s) => format!("refused: {s}"),
            Found::Soon(s) => format!("expires soon: {s}"),
            Found::NotVerified(s) => format!("not verified: {s}"),
            Found::Nothing(s) => format!("not checked: {s}"),
        };
        outcome = outcome.detail(&format!("repo.{name}"), said);
    }
    outcome
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::Status;
    use crate::host::gpgv::{Problem, Signer};

    const KEY: &str = include_str!("../../tests/fixtures/openpgp/repo-key.asc");
    const PRIMARY: &str = "1BF8CFADFF0798C6CFF69803E80260B0326B0F94";
    const SUBKEY: &str = "67413318A90C500D98FD9DD6C0AE4D80336ECEE6";

    fn at(date: &str) -> Clock {
        let t: Timestamp = format!("{date}T00:00:00Z").parse().unwrap();
        Clock {
            now: SystemTime::from(t),
            warn_before: Duration::from_secs(30 * 86_400),
        }
    }

    fn ring(fingerprints: &[&str]) -> AptKeyring {
        AptKeyring {
            packets: openpgp::keyring(KEY.as_bytes()).unwrap(),
            fingerprints: fingerprints.iter().map(|f| f.to_string()).collect(),
            from: vec!["/etc/apt/keyrings/repo.asc".into()],
            unusable: vec![],
            unreadable: vec![],
        }
    }

    fn good(weak: bool) -> Verdict {
        Verdict {
            valid: vec![Signer {
                key: SUBKEY.into(),
                primary: PRIMARY.into(),
                weak_digest: weak,
            }],
            problems: vec![],
        }
    }

    #[test]
    fn an_apt_source_is_judged_as_apt_would() {
        let release = b"Origin: Test\nValid-Until: Sat, 01 Jan 2028 00:00:00 UTC\nSHA256:\n";
        let signed = judge_apt(&good(false), &ring(&[]), Some(release), at("2026-06-01"));
        assert_eq!(
            signed,
            Found::Signed(format!(
                "signed by key {SUBKEY} (Test Repo <repo@example.com>), valid until 2027-01-01"
            ))
        );
        // The signing subkey expires 2027-01-01: ten days before, a warning.
        let Found::Soon(soon) =
            judge_apt(&good(false), &ring(&[]), Some(release), at("2026-12-22"))
        else {
            panic!()
        };
        assert!(
            soon.ends_with("expires on 2027-01-01 (in 10 days; repos.key_warn_before is 30 days)"),
            "{soon}"
        );
        // Past Valid-Until: refused, with the date.
        let Found::Refused(stale) =
            judge_apt(&good(false), &ring(&[]), Some(release), at("2028-02-01"))
        else {
            panic!()
        };
        assert!(
            stale.starts_with("its Release file expired on 2028-01-01 (Valid-Until)"),
            "{stale}"
        );
        // Not where check-valid-until is off.
        let old = b"Valid-Until: Thu, 01 Jan 2026 00:00:00 UTC\n";
        assert!(matches!(
            judge_apt(&good(false), &ring(&[]), Some(old), at("2026-06-01")),
            Found::Refused(_)
        ));
        assert!(matches!(
            judge_apt(&good(false), &ring(&[]), None, at("2026-06-01")),
            Found::Signed(_)
        ));
        // Signed-By's fingerprints: the certificate, or exactly the key.
        assert!(matches!(
            judge_apt(
                &good(false),
                &ring(&[PRIMARY]),
                Some(release),
                at("2026-06-01")
            ),
            Found::Signed(_)
        ));
        let Found::Refused(other) = judge_apt(
            &good(false),
            &ring(&["0123456789ABCDEF0123456789ABCDEF01234567"]),
            Some(release),
            at("2026-06-01"),
        ) else {
            panic!()
        };
        assert!(
            other.contains(
                "which its Signed-By (0123456789ABCDEF0123456789ABCDEF01234567) does not allow"
            ),
            "{other}"
        );
        let Found::Refused(weak) =
            judge_apt(&good(true), &ring(&[]), Some(release), at("2026-06-01"))
        else {
            panic!()
        };
        assert!(weak.contains("SHA-1"), "{weak}");
        let expired = Verdict {
            valid: vec![],
            problems: vec![Problem::ExpiredKey("C0AE4D80336ECEE6".into())],
        };
        assert_eq!(
            judge_apt(&expired, &ring(&[]), Some(release), at("2027-02-01")),
            Found::Refused(format!("signed by key {SUBKEY} (Test Repo <repo@example.com>), which expired on 2027-01-01 (EXPKEYSIG) (keys from /etc/apt/keyrings/repo.asc)"))
        );
        // A keyring this user may not read may hold the key: not verified.
        let mut unread = ring(&[]);
        unread.unreadable = vec!["/etc/apt/trusted.gpg.d/vendor.gpg (Permission denied)".into()];
        let refused = Found::Refused(
            "signed by key K, which is not among the keys trusted for it (NO_PUBKEY)".into(),
        );
        assert!(
            matches!(with_unread_keyrings(refused.clone(), &unread), Found::NotVerified(w) if w.contains("vendor.gpg (Permission denied) could not be read by this user"))
        );
        let mut keybox = ring(&[]);
        keybox.unusable = vec!["/etc/apt/trusted.gpg.d/old.gpg (a keybox)".into()];
        assert!(
            matches!(with_unread_keyrings(refused, &keybox), Found::Refused(w) if w.ends_with("apt ignores /etc/apt/trusted.gpg.d/old.gpg (a keybox) as well"))
        );
        let unknown = Verdict {
            valid: vec![],
            problems: vec![Problem::NoPublicKey("C0AE4D80336ECEE6".into())],
        };
        assert_eq!(
            judge_apt(&unknown, &ring(&[]), Some(release), at("2026-06-01")),
            Found::Refused("signed by key C0AE4D80336ECEE6, which is not among the keys trusted for it (NO_PUBKEY) (keys from /etc/apt/keyrings/repo.asc)".into())
        );
    }

    #[test]
    fn valid_until_is_read_from_the_signed_part() {
        let inrelease = "-----BEGIN PGP SIGNED MESSAGE-----\nHash: SHA512\n\nOrigin: Debian\nValid-Until: Sat, 12 Dec 2026 20:21:45 UTC\n-----BEGIN PGP SIGNATURE-----\nValid-Until: Sun, 01 Jan 2040 00:00:00 UTC\n";
        assert_eq!(valid_until(inrelease), Some(1_797_106_905));
        assert_eq!(valid_until("Origin: x\n"), None);
    }

    #[test]
    fn rpm_gpgkey_files_are_read_and_dated() {
        let packets = openpgp::keyring(KEY.as_bytes()).unwrap();
        let certs = openpgp::certs(&packets).unwrap();
        let key = |read: KeyFile| GpgKey {
            url: "file:///etc/pki/rpm-gpg/RPM-GPG-KEY-test".into(),
            read,
        };
        let ok = judge_gpgkeys(
            &[key(KeyFile::Keys(packets.clone(), certs.clone()))],
            true,
            false,
            at("2026-06-01"),
        );
        assert!(
            matches!(&ok, Found::Signed(s) if s.contains("until 2030-01-01")),
            "{ok:?}"
        );
        // Expired: a warning where rpm ignores expiry, a refusal where
        // rpm verifies with Sequoia.
        let expired_key = [key(KeyFile::Keys(packets, certs))];
        let Found::Soon(expired) = judge_gpgkeys(&expired_key, true, false, at("2030-02-01"))
        else {
            panic!()
        };
        assert!(
            expired.contains("/etc/pki/rpm-gpg/RPM-GPG-KEY-test expired on 2030-01-01; this host's rpm still accepts"),
            "{expired}"
        );
        let Found::Refused(refused) = judge_gpgkeys(&expired_key, true, true, at("2030-02-01"))
        else {
            panic!()
        };
        assert!(refused.ends_with("expired on 2030-01-01: this host's rpm (with Sequoia) refuses the packages it signed"), "{refused}");
        assert_eq!(
            judge_gpgkeys(&[key(KeyFile::Missing)], true, false, at("2026-06-01")),
            Found::Refused("its gpgkey /etc/pki/rpm-gpg/RPM-GPG-KEY-test does not exist: the patch run cannot import the key, and dnf refuses the packages".into())
        );
        assert!(matches!(
            judge_gpgkeys(
                &[key(KeyFile::NotReadable("Permission denied".into()))],
                true,
                false,
                at("2026-06-01")
            ),
            Found::NotVerified(_)
        ));
        assert!(matches!(
            judge_gpgkeys(&[key(KeyFile::Missing)], false, false, at("2026-06-01")),
            Found::Nothing(_)
        ));
        let remote = GpgKey {
            url: "https://user:secret@vendor.example/key.asc".into(),
            read: KeyFile::Remote,
        };
        let Found::Nothing(said) = judge_gpgkeys(&[remote], true, false, at("2026-06-01")) else {
            panic!()
        };
        assert!(
            said.contains("user:***@vendor.example") && !said.contains("secret"),
            "{said}"
        );
    }

    #[test]
    fn the_check_fails_on_any_refusal_and_never_passes_what_it_did_not_see() {
        let f = |s: &str, found: Found| (s.to_string(), found);
        let pass = judge(&[
            f("a", Found::Signed("signed by key A".into())),
            f("b", Found::Nothing("gpgcheck=0".into())),
        ]);
        assert_eq!(pass.status, Status::Pass);
        assert_eq!(pass.summary, "all 1 repositories that check signatures are signed by keys their package manager trusts (1 with nothing to verify)");
        let fail = judge(&[
            f("a", Found::Signed("x".into())),
            f(
                "b",
                Found::Refused("signed by key K, which has expired (EXPKEYSIG)".into()),
            ),
        ]);
        fail.assert_says(
            Status::Fail,
            "1 of 2 repositories would be refused by the package manager: b: signed by key K",
        );
        let unseen = judge(&[
            f("a", Found::Signed("x".into())),
            f(
                "b",
                Found::NotVerified("its index could not be fetched".into()),
            ),
        ]);
        unseen.assert_says(
            Status::Warn,
            "1 could not be verified: b: its index could not be fetched",
        );
        assert_eq!(
            judge(&[f("a", Found::Nothing("gpgcheck=0".into()))]).status,
            Status::Skip
        );
    }
}
