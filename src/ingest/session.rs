//! Connection security of the ingest client: TLS (rustls, pure Rust) that
//! trusts only the CA in `mqtt.ca_file`, checks the broker certificate's
//! validity period and that it names `mqtt.host` (webpki), and presents the
//! client certificate of `mqtt.client_cert_file` when one is configured (the
//! broker's certificate listener takes its Common Name as the identity).
//! The session itself (MQTT 5, clean start off,
//! non-zero session expiry, fixed client id, large Receive Maximum, manual
//! acks) is set up by `connection.rs`.

use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

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
    /// The client certificate or key cannot be used (the detail never
    /// holds key material).
    #[error("mqtt.client_cert_file {cert} / mqtt.client_key_file {key}: {detail}")]
    BadClientCert {
        /// Certificate path.
        cert: String,
        /// Key path.
        key: String,
        /// What was wrong.
        detail: String,
    },
}

/// Reads the client certificate chain and key.
fn client_identity(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), SessionError> {
    let bad = |detail: String| SessionError::BadClientCert {
        cert: cert.display().to_string(),
        key: key.display().to_string(),
        detail,
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .map_err(|e| bad(format!("cannot read the certificate: {e}")))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the certificate file is not PEM: {e}")))?;
    if chain.is_empty() {
        return Err(bad("the certificate file holds no CERTIFICATE block".into()));
    }
    // The key's parse error says what kind of block is missing, never its
    // content.
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| bad(format!("no usable private key: {e}")))?;
    Ok((chain, key))
}

/// A TLS connector trusting only the certificates in `ca`, presenting the
/// client certificate and key of `client_auth` if given.
pub fn tls_connector(
    ca: &Path,
    client_auth: Option<(&Path, &Path)>,
) -> Result<tokio_rustls::TlsConnector, SessionError> {
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
    let builder = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| SessionError::BadCa {
            path: path.clone(),
            detail: e.to_string(),
        })?
        .with_root_certificates(roots);
    let config = match client_auth {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let (chain, der) = client_identity(cert, key)?;
            builder
                .with_client_auth_cert(chain, der)
                .map_err(|e| SessionError::BadClientCert {
                    cert: cert.display().to_string(),
                    key: key.display().to_string(),
                    detail: e.to_string(),
                })?
        }
    };
    Ok(tokio_rustls::TlsConnector::from(Arc::new(config)))
}
