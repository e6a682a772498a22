//! MQTT 5 session options for the ingest client: QoS 1 with manual acks, a
//! persistent session (clean start off, non-zero expiry, fixed client id),
//! a large Receive Maximum, optional TLS (rustls) and credentials.

use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::ConnectProperties;
use rumqttc::v5::MqttOptions;
use rumqttc::{TlsConfiguration, Transport};

use crate::config::MqttSettings;

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
}

/// Builds rumqttc options from validated settings.
pub fn mqtt_options(s: &MqttSettings) -> Result<MqttOptions, SessionError> {
    let mut o = MqttOptions::new(s.client_id.clone(), s.host.clone(), s.port);
    o.set_keep_alive(s.keep_alive);
    o.set_clean_start(false);
    o.set_manual_acks(true);
    let mut props = ConnectProperties::new();
    props.session_expiry_interval = Some(s.session_expiry_s);
    props.receive_maximum = Some(s.receive_maximum);
    props.max_packet_size = Some(s.max_packet_bytes);
    o.set_connect_properties(props);
    o.set_connection_timeout(10);
    if let Some((user, pass)) = &s.credentials {
        o.set_credentials(user.clone(), pass.expose().to_owned());
    }
    if let Some(path) = &s.tls {
        let ca = std::fs::read(path).map_err(|source| SessionError::CaFile {
            path: path.display().to_string(),
            source,
        })?;
        let tls = TlsConfiguration::Simple {
            ca,
            alpn: None,
            client_auth: None,
        };
        o.set_transport(Transport::tls_with_config(tls));
    }
    // Never throttle re-sending of the pending queue after a reconnect.
    o.set_pending_throttle(Duration::ZERO);
    Ok(o)
}
