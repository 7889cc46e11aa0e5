//! TLS trust for the endpoint and repository probes: the system's roots
//! (rustls-native-certs honours `SSL_CERT_FILE` and `SSL_CERT_DIR`) plus an
//! optional CA bundle from the config, for TLS-inspecting proxies.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use std::path::Path;
use std::sync::Arc;

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
    #[error("{0}")]
    Rustls(String),
}

pub fn client_config(extra_bundle: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for cert in native.certs {
        // One unreadable system certificate must not cost the others.
        let _ = roots.add(cert);
    }
    if let Some(path) = extra_bundle {
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
        for cert in certs {
            roots.add(cert).map_err(|e| TlsError::Unusable {
                path: path.display().to_string(),
                why: e.to_string(),
            })?;
        }
    }
    if roots.is_empty() {
        return Err(TlsError::NoRoots);
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Rustls(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(config))
}
