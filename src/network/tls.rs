//! TLS trust for the endpoint and repository probes: the system's roots
//! (rustls-native-certs honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus an
//! optional CA bundle from the config, for TLS-inspecting proxies; and a
//! repository's own TLS settings, as its package manager uses them.

use crate::host::repo_tls::{RepoTls, Setting};
use crate::host::Root;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::path::Path;
use std::sync::{Arc, OnceLock};

/// Why no TLS trust could be built; each names the file and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read the CA bundle {path}: {why}")]
    Unreadable { path: String, why: String },
    #[error("the CA bundle {path} is not PEM: {why}")]
    NotPem { path: String, why: String },
    #[error("the CA bundle {path} holds no certificate")]
    Empty { path: String },
    #[error("a certificate in {path} is not usable: {why}")]
    Unusable { path: String, why: String },
    #[error(
        "no trusted CA certificate found: install ca-certificates, or set endpoints.ca_bundle"
    )]
    NoRoots,
}

pub fn client_config(extra_bundle: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    Ok(config_trusting(system_roots(extra_bundle)?))
}

/// The system's trusted roots, read once per process.
pub struct SystemRoots {
    /// Shared by every TLS config built on it (the SDK's, the probes',
    /// each repository's), not copied into each.
    pub store: Arc<rustls::RootCertStore>,
}

/// The system's trusted roots. rustls-native-certs reads the CA bundle
/// and then every file of the certificate directory (on Debian 145 files
/// for the same roots, which it de-duplicates): 4–6 ms, which every run
/// paid up to three times (the SDK, the probes, each repository's TLS).
/// They are now read once per process and shared; a run starts reading
/// them in a thread of its own (`aws::warm`) while IMDS is asked, off the
/// path to its first signed call. The daemon keeps them for its life: a
/// changed trust store is read at its next start.
pub fn system() -> &'static SystemRoots {
    static ROOTS: OnceLock<SystemRoots> = OnceLock::new();
    ROOTS.get_or_init(|| {
        let mut store = rustls::RootCertStore::empty();
        // One unusable system certificate must not cost the others.
        let (_taken, _refused) =
            store.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
        SystemRoots {
            store: Arc::new(store),
        }
    })
}

/// TLS trusting the system's roots alone, as the AWS SDK's calls use it:
/// with no root at all (no ca-certificates) every handshake fails on the
/// certificate, which the caller reports, rather than nothing being sent.
pub fn system_config() -> Arc<rustls::ClientConfig> {
    config_trusting(system().store.clone())
}

/// TLS that trusts nothing: for a client that only ever speaks plain HTTP
/// (IMDS at `http://`), so that building it never waits for the roots.
pub fn no_roots_config() -> Arc<rustls::ClientConfig> {
    config_trusting(Arc::new(rustls::RootCertStore::empty()))
}

fn config_trusting(roots: Arc<rustls::RootCertStore>) -> Arc<rustls::ClientConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("ring supports rustls's default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

/// The system's roots plus the config's bundle: the system's own, shared,
/// when there is no bundle.
fn system_roots(extra_bundle: Option<&Path>) -> Result<Arc<rustls::RootCertStore>, TlsError> {
    let system = &system().store;
    let Some(path) = extra_bundle else {
        if system.is_empty() {
            return Err(TlsError::NoRoots);
        }
        return Ok(system.clone());
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| TlsError::Unreadable {
            path: path.display().to_string(),
            why: e.to_string(),
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::NotPem {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    if certs.is_empty() {
        return Err(TlsError::Empty {
            path: path.display().to_string(),
        });
    }
    let mut roots = (**system).clone();
    for cert in certs {
        roots.add(cert).map_err(|e| TlsError::Unusable {
            path: path.display().to_string(),
            why: e.to_string(),
        })?;
    }
    Ok(Arc::new(roots))
}

/// The TLS a package manager uses for one repository (`RepoTls`): its own
/// CA bundle instead of the system's roots, its client certificate and
/// key, or no verification. Every file is read under `root`; one that
/// cannot be used is an error naming it and where it is set — the patch
/// run would fail on it the same way, so it is never asked without.
pub fn repo_config(
    tls: &RepoTls,
    root: &Root,
    extra_bundle: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, RepoTlsError> {
    // A file this user may not read (the entitlement key is root's) says
    // nothing about the patch run, which runs as root.
    for s in [&tls.ca, &tls.client_cert, &tls.client_key]
        .into_iter()
        .flatten()
    {
        if let Err(e) = std::fs::File::open(root.path(&s.path)) {
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                return Err(RepoTlsError::NotReadable(format!(
                    "{} cannot be read by this user ({e})",
                    s.describe()
                )));
            }
        }
    }
    repo_config_readable(tls, root, extra_bundle).map_err(RepoTlsError::Unusable)
}

/// Why a repository's TLS settings could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RepoTlsError {
    /// A file is missing or not what it should be: the patch run fails too.
    #[error("{0}")]
    Unusable(String),
    /// A file this user may not read: not checked.
    #[error("{0}")]
    NotReadable(String),
}

fn repo_config_readable(
    tls: &RepoTls,
    root: &Root,
    extra_bundle: Option<&Path>,
) -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?;
    let builder = if !tls.verify {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(Unverified(provider)))
    } else {
        let roots = match &tls.ca {
            Some(ca) => {
                let mut roots = rustls::RootCertStore::empty();
                for cert in certificates(ca, root)? {
                    roots.add(cert).map_err(|e| {
                        format!("{} is not a usable CA certificate: {e}", ca.describe())
                    })?;
                }
                Arc::new(roots)
            }
            None => system_roots(extra_bundle).map_err(|e| e.to_string())?,
        };
        builder.with_root_certificates(roots)
    };
    let config = match &tls.client_cert {
        None => builder.with_no_client_auth(),
        Some(cert) => {
            let chain = certificates(cert, root)?;
            // As libcurl: without a key file, the key is in the certificate's.
            let key_setting = tls.client_key.as_ref().unwrap_or(cert);
            let key = PrivateKeyDer::from_pem_file(root.path(&key_setting.path))
                .map_err(|e| unusable(key_setting, "a PEM private key", &e.to_string()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| {
                format!(
                    "{} and {} do not make a client certificate: {e}",
                    cert.describe(),
                    key_setting.describe()
                )
            })?
        }
    };
    Ok(Arc::new(config))
}

fn unusable(setting: &Setting, what: &str, why: &str) -> String {
    format!("{} cannot be used as {what}: {why}", setting.describe())
}

/// The PEM certificates of a setting's file, at least one.
fn certificates(setting: &Setting, root: &Root) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(root.path(&setting.path))
            .map_err(|e| unusable(setting, "PEM certificates", &e.to_string()))?
            .collect::<Result<_, _>>()
            .map_err(|e| unusable(setting, "PEM certificates", &e.to_string()))?;
    if certs.is_empty() {
        return Err(unusable(setting, "PEM certificates", "it holds none"));
    }
    Ok(certs)
}

/// `sslverify=0` / `Verify-Peer "false"`: the package manager accepts any
/// server certificate, so the probe does too (it still checks that the
/// handshake's signatures match the certificate presented).
#[derive(Debug)]
struct Unverified(Arc<rustls::crypto::CryptoProvider>);

type Der<'a> = CertificateDer<'a>;
type Dss = rustls::DigitallySignedStruct;
type Signed = Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error>;

impl rustls::client::danger::ServerCertVerifier for Unverified {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(&self, msg: &[u8], cert: &Der, dss: &Dss) -> Signed {
        verify_tls12_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(&self, msg: &[u8], cert: &Der, dss: &Dss) -> Signed {
        verify_tls13_signature(msg, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
