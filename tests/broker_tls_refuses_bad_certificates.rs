//! TLS between the ingest and the broker, on the two TLS listeners of the
//! shipped config (test CA and server certificate made by
//! scripts/services.sh): the ingest delivers over TLS with a password and
//! with a client certificate whose Common Name is its identity; the ingest's
//! TLS client (rustls, `ingest::session::tls_connector`) refuses a broker
//! certificate of another CA, one for another host name and an expired one;
//! the broker refuses client certificates that are expired or of another
//! CA. Certificates are made here with the openssl command line.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};
use rumqttc::{TlsConfiguration, Transport};
use wastewatch::ingest::session::tls_connector;
use wastewatch::pb::DeviceKind;
use wastewatch_test_kit::*;

fn openssl(dir: &Path, args: &[&str]) {
    let out = Command::new("openssl")
        .current_dir(dir)
        .args(args)
        .output()
        .expect("run openssl (scripts/services.sh install)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new CA in `dir`: (cert, key).
fn ca(dir: &Path, name: &str) -> (PathBuf, PathBuf) {
    let (crt, key) = (format!("{name}.pem"), format!("{name}.key"));
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-days",
            "2",
            "-subj",
            &format!("/CN={name}"),
            "-keyout",
            &key,
            "-out",
            &crt,
        ],
    );
    (dir.join(crt), dir.join(key))
}

/// A certificate for `cn` signed by `ca`, valid for `days` (negative: it
/// expired that many days ago), with `ext` (e.g. `extendedKeyUsage=clientAuth`).
fn cert(
    dir: &Path,
    name: &str,
    cn: &str,
    days: i32,
    ca: &(PathBuf, PathBuf),
    ext: &str,
) -> (PathBuf, PathBuf) {
    let (crt, key, csr, extf) = (
        format!("{name}.pem"),
        format!("{name}.key"),
        format!("{name}.csr"),
        format!("{name}.ext"),
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
            "-subj",
            &format!("/CN={cn}"),
            "-keyout",
            &key,
            "-out",
            &csr,
        ],
    );
    std::fs::write(dir.join(&extf), format!("{ext}\n")).unwrap();
    // An explicit serial, not -CAcreateserial: the tests of this file sign
    // with the shared test CA in parallel, and concurrent updates of its
    // serial file corrupt it ("Unable to load number from ca.srl").
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let serial = format!(
        "{}{:06}{:04}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_micros(),
        NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
    );
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            ca.0.to_str().unwrap(),
            "-CAkey",
            ca.1.to_str().unwrap(),
            "-set_serial",
            &serial,
            "-days",
            &days.to_string(),
            "-extfile",
            &extf,
            "-out",
            &crt,
        ],
    );
    (dir.join(crt), dir.join(key))
}

fn test_ca() -> (PathBuf, PathBuf) {
    (
        env("WW_TEST_MQTT_CA").into(),
        env("WW_TEST_MQTT_CA_KEY").into(),
    )
}

fn addr(var: &str) -> (String, u16) {
    let a = env(var);
    let (h, p) = a.rsplit_once(':').unwrap();
    (h.to_owned(), p.parse().unwrap())
}

/// The ingest's TLS handshake with `host`:`port`, asking for `name`.
async fn handshake(
    ca: &Path,
    client: Option<(&Path, &Path)>,
    port: u16,
    name: &str,
) -> Result<(), String> {
    wastewatch::app::install_crypto_provider();
    let connector = tls_connector(ca, client).map_err(|e| e.to_string())?;
    let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .map_err(|e| e.to_string())?;
    let server = rustls::pki_types::ServerName::try_from(name.to_owned()).unwrap();
    connector
        .connect(server, tcp)
        .await
        .map(|_| ())
        .map_err(|e| e.to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_refuses_a_broker_certificate_of_another_ca_or_for_another_host() {
    let dir = tempfile::tempdir().unwrap();
    let rogue = ca(dir.path(), "rogue-ca");
    let (_, port) = addr("WW_TEST_MQTT_TLS");
    let ca = PathBuf::from(env("WW_TEST_MQTT_CA"));
    // The right CA and the name in the certificate: accepted.
    handshake(&ca, None, port, "127.0.0.1").await.unwrap();
    let e = handshake(&rogue.0, None, port, "127.0.0.1")
        .await
        .unwrap_err();
    assert!(e.contains("UnknownIssuer"), "{e}");
    // The broker's certificate names 127.0.0.1 only.
    let e = handshake(&ca, None, port, "localhost").await.unwrap_err();
    assert!(e.contains("not valid for name \"localhost\""), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_refuses_an_expired_broker_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let ca = ca(dir.path(), "ca");
    let expired = cert(
        dir.path(),
        "server",
        "127.0.0.1",
        -1,
        &ca,
        "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth",
    );
    // A TLS server presenting it (no broker ships an expired certificate).
    use rustls::pki_types::pem::PemObject as _;
    let chain = vec![rustls::pki_types::CertificateDer::from_pem_file(&expired.0).unwrap()];
    let key = rustls::pki_types::PrivateKeyDer::from_pem_file(&expired.1).unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(chain, key)
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = acceptor.accept(tcp).await;
        }
    });
    let e = handshake(&ca.0, None, port, "127.0.0.1").await.unwrap_err();
    assert!(e.contains("Expired"), "{e}");
}

/// Logs in over the client-certificate listener with `cert`; Ok on CONNACK.
async fn login_with_certificate(cert: &(PathBuf, PathBuf)) -> Result<(), String> {
    wastewatch::app::install_crypto_provider();
    let (host, port) = addr("WW_TEST_MQTT_TLS_CERT");
    let mut o = MqttOptions::new(client_id(&unique("cert")), host, port);
    o.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(env("WW_TEST_MQTT_CA")).unwrap(),
        alpn: None,
        client_auth: Some((
            std::fs::read(&cert.0).unwrap(),
            std::fs::read(&cert.1).unwrap(),
        )),
    }));
    let (_client, mut el) = AsyncClient::new(o, 10);
    tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match el.poll().await {
                Ok(Event::Incoming(Packet::ConnAck(_))) => return Ok(()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    })
    .await
    .unwrap_or_else(|_| Err("no answer in 10 s".into()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_refuses_client_certificates_that_are_expired_or_of_another_ca() {
    let tag = unique("clientcert");
    let zone = Zone::new(&tag);
    zone.ingest_identity(&format!("ww-{tag}"));
    let dir = tempfile::tempdir().unwrap();
    let rogue = ca(dir.path(), "rogue-ca");
    let client = "extendedKeyUsage=clientAuth";
    let good = cert(dir.path(), "good", &zone.bin, 2, &test_ca(), client);
    login_with_certificate(&good)
        .await
        .expect("a valid device certificate logs in");
    let expired = cert(dir.path(), "expired", &zone.bin, -1, &test_ca(), client);
    assert!(
        login_with_certificate(&expired).await.is_err(),
        "an expired certificate was accepted"
    );
    let foreign = cert(dir.path(), "foreign", &zone.bin, 2, &rogue, client);
    assert!(
        login_with_certificate(&foreign).await.is_err(),
        "a certificate of another CA was accepted"
    );
}

/// Settings of a service reaching the broker over TLS.
fn over_tls(setup: &V1Setup, port: u16, extra: &[(&str, String)]) -> Vec<(String, String)> {
    let mut envs = setup.envs.clone();
    envs.push(("WASTEWATCH__MQTT__PORT".into(), port.to_string()));
    envs.push(("WASTEWATCH__MQTT__TLS".into(), "true".into()));
    envs.push(("WASTEWATCH__MQTT__CA_FILE".into(), env("WW_TEST_MQTT_CA")));
    for (k, v) in extra {
        envs.push(((*k).into(), v.clone()));
    }
    envs
}

async fn delivers(setup: &V1Setup, svc: Service) {
    let msgs = vec![Msg::pb(
        &setup.zone,
        &setup.zone.envelope(DeviceKind::Storage, 1, now_ms() - 1000),
    )];
    assert_eq!(
        publish_all(format!("pub-{}", setup.tag), msgs, None).await,
        1
    );
    assert!(
        eventually(Duration::from_secs(20), || stored_seqs(
            &setup.db,
            "storage_reading"
        )
        .len()
            == 1),
        "nothing stored; log:\n{}",
        setup.log()
    );
    svc.stop();
    assert!(setup.log().contains("mqtt connected"), "{}", setup.log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_delivers_over_tls_with_its_password() {
    let setup = V1Setup::new("tlspw", &[]);
    let (_, port) = addr("WW_TEST_MQTT_TLS");
    let svc = Service::start(over_tls(&setup, port, &[]), setup.log_path.clone());
    delivers(&setup, svc).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_ingest_delivers_over_tls_with_a_client_certificate_as_its_identity() {
    let setup = V1Setup::new("tlscert", &[]);
    let ingest = format!("ww-{}", setup.tag);
    let dir = tempfile::tempdir().unwrap();
    let (crt, key) = cert(
        dir.path(),
        "ingest",
        &ingest,
        2,
        &test_ca(),
        "extendedKeyUsage=clientAuth",
    );
    let (_, port) = addr("WW_TEST_MQTT_TLS_CERT");
    // No password: the certificate is the identity.
    let envs: Vec<(String, String)> = over_tls(
        &setup,
        port,
        &[
            (
                "WASTEWATCH__MQTT__CLIENT_CERT_FILE",
                crt.display().to_string(),
            ),
            (
                "WASTEWATCH__MQTT__CLIENT_KEY_FILE",
                key.display().to_string(),
            ),
        ],
    )
    .into_iter()
    .filter(|(k, _)| k != "WASTEWATCH__MQTT__USERNAME" && k != "WASTEWATCH__MQTT__PASSWORD_FILE")
    .collect();
    let svc = Service::start(envs, setup.log_path.clone());
    delivers(&setup, svc).await;
}
