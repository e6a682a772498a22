//! Connection security of the ingest client: TLS (rustls, pure Rust) with
//! the CA from `mqtt.ca_file`. The session itself (MQTT 5, clean start off,
//! non-zero session expiry, fixed client id, large Receive Maximum, manual
//! acks) is set up by `connection.rs`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::CertificateDer;

/// Errors building the session.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The CA file could not be read.
    #[error("cannot read mqtt.ca_file {path}: {source}")]
    CaFile {
        /// Path.
        path: String,
        /// Cause.
        source: std::io::Error,
    },
    /// The CA file holds no usable certificate.
    #[error("mqtt.ca_file {path} holds no usable PEM certificate: {detail}")]
    BadCa {
        /// Path.
        path: String,
        /// What was wrong.
        detail: String,
    },
}

/// A TLS connector trusting only the certificates in `ca`.
pub fn tls_connector(ca: &Path) -> Result<tokio_rustls::TlsConnector, SessionError> {
    let path = ca.display().to_string();
    let pem = std::fs::read(ca).map_err(|source| SessionError::CaFile {
        path: path.clone(),
        source,
    })?;
    let mut roots = rustls::RootCertStore::empty();
    let mut n = 0;
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| SessionError::BadCa {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| SessionError::BadCa {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        n += 1;
    }
    if n == 0 {
        return Err(SessionError::BadCa {
            path,
            detail: "no CERTIFICATE block".into(),
        });
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SessionError::BadCa {
            path: path.clone(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
